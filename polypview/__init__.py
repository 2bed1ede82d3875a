"""polypview: real-time polyp segmentation overlaid on colonoscopy video."""

__version__ = "0.1.0"
