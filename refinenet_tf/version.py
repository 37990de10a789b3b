"""The project's version (``refinenet_tf.__version__``), here so that any module can read it."""

from __future__ import annotations

__version__ = "0.3.0"
