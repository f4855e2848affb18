"""``tidings backup``: a consistent copy of the store, safe while the server runs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tidings.settings import ConfigError, load_settings

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        path: Path = typer.Argument(..., help="The backup file to write."),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="SQLite data directory (env TIDINGS_DATA_DIR)."
        ),
        store: str | None = typer.Option(None, "--store", help="Store URL (env TIDINGS_STORE)."),
        config: Path | None = typer.Option(
            None, "--config", help="TOML config file (env TIDINGS_CONFIG)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
    ) -> None:
        """Copy the store to PATH while Tidings runs, and check the copy.

        SQLite is copied through its online backup API (one consistent snapshot; never cp a
        database in WAL mode) and the copy is verified with PRAGMA quick_check. For a
        PostgreSQL store the pg_dump command to run is printed instead.

        Examples:

          tidings backup /backups/tidings-$(date +%F).db

          tidings backup backup.db --data-dir /var/lib/tidings --overwrite
        """
        from tidings.store.backup import BackupError, ExternalBackup
        from tidings.store.backup import backup as run_backup

        try:
            settings = load_settings({"data_dir": data_dir, "store": store, "config": config})
            done = run_backup(settings.store, settings.data_dir, path, overwrite=overwrite)
        except (ConfigError, ValueError) as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(2) from None
        except BackupError as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None
        if isinstance(done, ExternalBackup):
            err.print(done.note, highlight=False)
            typer.echo(done.command)
            return
        typer.echo(done.describe())
