"""Tidings: a self-hosted event hub that takes events in, keeps them and hands them out."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
