"""Errors a user may see: each carries one plain line, printed without a traceback."""


class PolypviewError(Exception):
    """Base of every error the CLI and GUI show as a single line."""


class VideoError(PolypviewError):
    """A video cannot be opened, decoded or written."""


class ModelError(PolypviewError):
    """A model file is missing, corrupted or does not fit its architecture."""


class BackendError(PolypviewError):
    """An inference backend is unavailable or failed."""


class OutputError(PolypviewError):
    """An output location cannot be written (missing folder, not writable, disk full)."""
