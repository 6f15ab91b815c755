"""launcher: serve your own models and put a coding agent on top."""

__version__ = "0.1.0"
