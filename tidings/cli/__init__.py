"""The ``tidings`` command line: ``serve`` runs the hub; the other commands talk to one."""

from __future__ import annotations

from tidings.cli.main import app, main

__all__ = ["app", "main"]
