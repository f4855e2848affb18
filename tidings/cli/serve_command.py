"""``tidings serve`` and ``tidings purge``: the commands that own a store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings import logs
from tidings.cli.choices import LogFormatChoice
from tidings.ingest.config import load_ingest_config
from tidings.settings import ConfigError, Settings, load_settings
from tidings.store.errors import StoreOpenError

err = Console(stderr=True, soft_wrap=True)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(dict(overrides))
    except ConfigError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None


async def _check_store(settings: Settings) -> None:
    """Open the store once before serving: it is migrated, and a store that cannot start
    fails here with one line (ValueError) instead of a traceback from the server's start."""
    from tidings.store import open_backend

    backend = open_backend(
        settings.store, settings.data_dir, synchronous=settings.sqlite_synchronous
    )
    await backend.open()
    await backend.close()


def _print_settings(settings: Settings) -> None:
    table = Table(title="tidings settings", show_header=False, box=None, pad_edge=False)
    for key, value in settings.describe().items():
        if value in ({}, [], None) and key in ("sources", "mqtt", "pg_notify", "config"):
            continue
        table.add_row(f"[bold]{key}[/bold]", str(value))
    err.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str | None = typer.Option(
            None, "--host", help="Listen address (env TIDINGS_HOST, default 127.0.0.1)."
        ),
        port: int | None = typer.Option(
            None, "--port", help="Port (env TIDINGS_PORT, default 8000)."
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="SQLite data directory (env TIDINGS_DATA_DIR, default ./data)."
        ),
        store: str | None = typer.Option(
            None,
            "--store",
            help="Store URL: sqlite:///path or postgresql://... (env TIDINGS_STORE).",
        ),
        config: Path | None = typer.Option(
            None, "--config", help="TOML config file (env TIDINGS_CONFIG)."
        ),
        log_level: str | None = typer.Option(
            None, "--log-level", help="critical|error|warning|info|debug (env TIDINGS_LOG_LEVEL)."
        ),
        log_format: LogFormatChoice | None = typer.Option(
            None, "--log-format", help="text, or json: one object a line (env TIDINGS_LOG_FORMAT)."
        ),
        access_log: bool | None = typer.Option(
            None,
            "--access-log/--no-access-log",
            help="One info line per HTTP request (env TIDINGS_ACCESS_LOG, default on).",
            show_default=False,
        ),
        auth: bool | None = typer.Option(
            None,
            "--auth/--no-auth",
            help="Require API keys (env TIDINGS_AUTH=on|off; default: off on loopback only).",
            show_default=False,
        ),
    ) -> None:
        """Run the hub: HTTP API, store and background work.

        Examples:

          tidings serve

          tidings serve --port 9000 --data-dir /var/lib/tidings

          TIDINGS_RETENTION_DAYS=7 tidings serve --config tidings.toml
        """
        from tidings.server import serve as run

        settings = _settings(
            host=host,
            port=port,
            data_dir=data_dir,
            store=store,
            config=config,
            log_level=log_level,
            log_format=log_format.value if log_format else None,
            access_log=access_log,
            auth=auth,
        )
        try:  # sources, MQTT and PG NOTIFY tables: refuse a bad one before anything starts
            load_ingest_config(settings)
        except ConfigError as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
            raise typer.Exit(2) from None
        logs.configure(settings.log_level, settings.log_format, settings.access_log)
        _print_settings(settings)
        try:
            asyncio.run(_check_store(settings))  # unreachable, refused, too new: one line
            run(settings)
        except (ValueError, StoreOpenError) as error:  # an unusable store URL, file or directory
            err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    @app.command()
    def purge(
        older_than_days: float | None = typer.Option(
            None,
            "--older-than-days",
            help="Delete events received more than this many days ago "
            "(default: TIDINGS_RETENTION_DAYS).",
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="SQLite data directory (env TIDINGS_DATA_DIR)."
        ),
        store: str | None = typer.Option(None, "--store", help="Store URL (env TIDINGS_STORE)."),
        config: Path | None = typer.Option(
            None, "--config", help="TOML config file (env TIDINGS_CONFIG)."
        ),
    ) -> None:
        """Delete events past retention now, in small chunks (safe while the server runs).

        Examples:

          tidings purge

          tidings purge --older-than-days 7 --data-dir /var/lib/tidings
        """
        from tidings.auth.audit import record_purge
        from tidings.auth.service import auth_enabled
        from tidings.retention import purge_backend
        from tidings.store import open_backend

        settings = _settings(data_dir=data_dir, store=store, config=config)
        days = settings.retention_days if older_than_days is None else older_than_days
        if days <= 0 and older_than_days is None:
            err.print(
                "retention is off (TIDINGS_RETENTION_DAYS=0); pass --older-than-days to purge"
            )
            raise typer.Exit(0)

        async def run() -> int:
            backend = open_backend(
                settings.store, settings.data_dir, synchronous=settings.sqlite_synchronous
            )
            await backend.open()
            try:  # events any sink still needs stay, as in the scheduled purge
                deleted = await purge_backend(backend, days)
                if auth_enabled(settings):  # with keys required, the trail says who purged
                    await record_purge(backend.events, days, deleted)
                return deleted
            finally:
                await backend.close()

        try:
            deleted = asyncio.run(run())
        except (ValueError, StoreOpenError) as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        typer.echo(f"deleted {deleted} events received more than {days:g} days ago")
