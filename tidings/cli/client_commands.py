"""The commands that talk to a running server: ``publish``, ``query`` and ``export``."""

from __future__ import annotations

import typer

from tidings.cli import export_command, publish_command, query_command


def register(app: typer.Typer) -> None:
    publish_command.register(app)
    query_command.register(app)
    export_command.register(app)
