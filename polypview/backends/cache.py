"""Where converted models live: beside the weights, keyed by what they were built from."""

from __future__ import annotations

import os
import re
from pathlib import Path

from polypview.modelfile import ModelCard, file_sha256


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "polypview"


def converted_model_path(card: ModelCard, key: str, suffix: str) -> Path:
    """A path for ``card``'s weights converted by a runtime, changing whenever the weights do.

    ``key`` names the runtime and its version, so an upgrade rebuilds too. The cache sits in
    ``.cache/`` beside the weights, or in the user's cache folder when that is read-only.
    """
    digest = (card.sha256 or file_sha256(card.weights_path))[:16]
    name = f"{card.name}-{digest}-{key}{suffix}"
    for folder in (card.folder / ".cache", user_cache_dir()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder / name
    return Path(os.environ.get("TMPDIR", "/tmp")) / name


def cache_key(**parts: str) -> str:
    """``parts`` as one file-name-safe key, e.g. ``gpu-nvidia-h100_torch-2.11.0+cu130``.

    Each part is what a converted model depends on (a runtime's version, the GPU it was built
    for), so changing any of them names a different file and the model is rebuilt.
    """
    return "_".join(
        f"{name.replace('_', '-')}-{re.sub(r'[^a-z0-9.+]+', '-', value.lower()).strip('-')}"
        for name, value in parts.items()
    )
