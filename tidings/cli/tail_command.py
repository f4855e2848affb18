"""``tidings tail``: follow the live stream with the Python client, which reconnects by itself
and resumes with Last-Event-ID."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from tidings import __version__
from tidings.cli.filters import EventFilter, filter_options, parse_where, resolve_time
from tidings.cli.http import (
    FAILED,
    KeyOption,
    UrlOption,
    api_key,
    err,
    print_server_error,
    server_url,
)
from tidings.client import Client, Event, StreamItem, TidingsError

out = Console(highlight=False, soft_wrap=True)
READ_TIMEOUT_S = 75.0  # several missed heartbeats (15 s) before the stream counts as dead


class Follower:
    """Prints what arrives and says why the stream reconnects."""

    def __init__(self, *, as_json: bool, limit: int | None) -> None:
        self.as_json = as_json  # raw event JSON lines instead of pretty lines
        self.limit = limit  # stop after this many events
        self.count = 0  # events printed

    def handle(self, item: StreamItem) -> bool:
        """Print one stream item; True when tail should stop."""
        if isinstance(item, Event):
            self.count += 1
            if self.as_json:
                sys.stdout.write(orjson.dumps(item.raw).decode() + "\n")
                sys.stdout.flush()
            else:
                out.print(pretty(item))
            return self.limit is not None and self.count >= self.limit
        if item.kind == "system":
            err.print(f"[yellow]{escape(item.code)}[/yellow]: {escape(item.message)}")
        elif item.kind == "shutdown":
            err.print("[yellow]server shutting down[/yellow]; reconnecting")
        return False

    def reconnecting(self, error: Exception | None, wait: float) -> None:
        reason = escape(str(error.message if isinstance(error, TidingsError) else error or ""))
        err.print(
            f"[yellow]stream interrupted[/yellow] ({reason or 'closed'}); "
            f"reconnecting in {wait:.1f}s"
        )


def pretty(event: Event) -> str:
    data = orjson.dumps(event.data).decode()
    subject = f" [cyan]{escape(event.subject)}[/cyan]" if event.subject else ""
    received = event.raw.get("received_at", "")
    return (
        f"[dim]#{event.seq} {escape(str(received))}[/dim] "
        f"[bold]{escape(event.type)}[/bold] "
        f"[green]{escape(event.source)}[/green]"
        f"{subject} {escape(data)}"
    )


def where_filter(conditions: Iterable[str] | None) -> dict[str, list[str]]:
    """``--where data.room=hall`` options as the client's ``where`` (repeats: any of)."""
    found: dict[str, list[str]] = {}
    for condition in conditions or ():
        key, value = parse_where(condition)
        found.setdefault(key, []).append(value)
    return found


def register(app: typer.Typer) -> None:
    @app.command()
    @filter_options(history=False)
    def tail(
        filters: EventFilter,
        last_event_id: Annotated[
            int | None,
            typer.Option("--last-event-id", help="Start after this position.", show_default=False),
        ] = None,
        since: Annotated[
            str | None,
            typer.Option(
                "--since",
                help="Start from this time: ISO 8601 or a duration ago (15m).",
                show_default=False,
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print each event's JSON on one line.")
        ] = False,
        count: Annotated[
            int | None,
            typer.Option(
                "--count", "-n", min=1, help="Exit after this many events.", show_default=False
            ),
        ] = None,
        url: UrlOption = None,
        key: KeyOption = None,
    ) -> None:
        """Follow events live. Reconnects by itself and resumes with no gap and no duplicate.

        Examples:

          tidings tail

          tidings tail --type 'door.*' --exclude-source mqtt

          tidings tail --since 1h --json | jq .data

          tidings tail --last-event-id 1200 --count 10
        """
        follower = Follower(as_json=as_json, limit=count)
        client = Client(
            server_url(url),
            key=api_key(),
            retries=0,
            stream_read_timeout=READ_TIMEOUT_S,
            headers={"User-Agent": f"tidings-cli/{__version__}"},
        )
        items = client.stream(
            type=filters.types or None,
            source=filters.sources or None,
            exclude_source=filters.exclude_sources or None,
            subject=filters.subjects or None,
            trace_id=filters.trace_ids or None,
            where=where_filter(filters.where),
            last_event_id=last_event_id,
            since=resolve_time(since) if since else None,
            on_reconnect=follower.reconnecting,
        )
        try:
            with client:
                for item in items:
                    if follower.handle(item):
                        return
        except TidingsError as error:
            print_server_error(error)
            raise typer.Exit(FAILED) from None
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
        finally:
            items.close()
