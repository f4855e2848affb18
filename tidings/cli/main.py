"""The typer application that gathers every command."""

from __future__ import annotations

import typer

from tidings import __version__
from tidings.cli import (
    backup_command,
    client_commands,
    dlq_command,
    keys_command,
    migrate_command,
    serve_command,
    tail_command,
    webhooks_command,
)

app = typer.Typer(
    name="tidings",
    help="Tidings, a self-hosted event hub: publish, store, query, stream and deliver events.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tidings {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Tidings, a self-hosted event hub."""


serve_command.register(app)
client_commands.register(app)
tail_command.register(app)
webhooks_command.register(app)
dlq_command.register(app)
backup_command.register(app)
keys_command.register(app)
migrate_command.register(app)


def main() -> None:
    app()
