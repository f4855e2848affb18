"""``tidings serve`` and ``tidings purge``: the commands that own a store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings.ingest.config import load_ingest_config
from tidings.settings import ConfigError, Settings, load_settings

err = Console(stderr=True, soft_wrap=True)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(dict(overrides))
    except ConfigError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None


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
            None, "--store", help="Store URL, sqlite:///path (env TIDINGS_STORE)."
        ),
        config: Path | None = typer.Option(
            None, "--config", help="TOML config file (env TIDINGS_CONFIG)."
        ),
        log_level: str | None = typer.Option(
            None, "--log-level", help="critical|error|warning|info|debug (env TIDINGS_LOG_LEVEL)."
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
            host=host, port=port, data_dir=data_dir, store=store, config=config, log_level=log_level
        )
        try:  # sources, MQTT and PG NOTIFY tables: refuse a bad one before anything starts
            load_ingest_config(settings)
        except ConfigError as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
            raise typer.Exit(2) from None
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        _print_settings(settings)
        try:
            run(settings)
        except ValueError as error:  # an unusable store URL and the like
            err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
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
        from tidings.retention import purge_once
        from tidings.store import open_store_from_url
        from tidings.store.sqlite import SqliteStore
        from tidings.store.sqlite.deliveries import SqliteDeliveryStore

        settings = _settings(data_dir=data_dir, store=store, config=config)
        days = settings.retention_days if older_than_days is None else older_than_days
        if days <= 0 and older_than_days is None:
            err.print(
                "retention is off (TIDINGS_RETENTION_DAYS=0); pass --older-than-days to purge"
            )
            raise typer.Exit(0)

        async def run() -> int:
            the_store = open_store_from_url(
                settings.store, settings.data_dir, synchronous=settings.sqlite_synchronous
            )
            await the_store.open()
            try:
                floor = None
                if isinstance(the_store, SqliteStore):  # events a delivery still needs stay
                    floor = SqliteDeliveryStore(the_store).retention_floor
                return await purge_once(the_store, days, floor)
            finally:
                await the_store.close()

        try:
            deleted = asyncio.run(run())
        except ValueError as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
            raise typer.Exit(2) from None
        typer.echo(f"deleted {deleted} events received more than {days:g} days ago")
