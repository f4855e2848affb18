"""``tidings tail``: follow the live stream, resuming after disconnects with Last-Event-ID."""

from __future__ import annotations

import random
import sys
import time
from typing import Annotated, Any

import httpx2
import orjson
import typer
from rich.console import Console
from rich.markup import escape

from tidings import __version__
from tidings.cli.filters import (
    ExcludeSourceOption,
    SourceOption,
    SubjectOption,
    TraceIdOption,
    TypeOption,
    WhereOption,
    filter_params,
    resolve_time,
)
from tidings.cli.http import (
    FAILED,
    KeyOption,
    ServerError,
    UrlOption,
    auth_headers,
    err,
    explain,
    print_server_error,
    server_url,
)
from tidings.cli.sse_client import Frame, SSEParser

out = Console(highlight=False, soft_wrap=True)
MAX_BACKOFF_S = 30.0
READ_TIMEOUT_S = 75.0  # several missed heartbeats (15 s) before the stream counts as dead


class Follower:
    """Keeps the resume point and prints what arrives."""

    def __init__(self, *, as_json: bool, limit: int | None) -> None:
        self.as_json = as_json  # raw event JSON lines instead of pretty lines
        self.limit = limit  # stop after this many events
        self.last_id: int | None = None  # the resume point: the last event or heartbeat id
        self.count = 0
        self.retry_ms: int | None = None  # what the server asked for at shutdown

    def handle(self, frame: Frame) -> bool:
        """Process one frame; True when tail should stop."""
        if frame.id is not None and frame.id.isdigit():
            self.last_id = int(frame.id)
        if frame.event == "event":
            self.count += 1
            if self.as_json:
                sys.stdout.write(frame.data + "\n")
                sys.stdout.flush()
            else:
                out.print(pretty(orjson.loads(frame.data)))
            return self.limit is not None and self.count >= self.limit
        if frame.event == "system":
            info = _json(frame.data)
            code, message = escape(str(info.get("code"))), escape(str(info.get("message", "")))
            err.print(f"[yellow]{code}[/yellow]: {message}")
        elif frame.event == "shutdown":
            self.retry_ms = frame.retry_ms
            err.print("[yellow]server shutting down[/yellow]; reconnecting")
        return False


def _json(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def pretty(event: dict[str, Any]) -> str:
    data = orjson.dumps(event.get("data")).decode()
    subject = f" [cyan]{escape(str(event['subject']))}[/cyan]" if event.get("subject") else ""
    return (
        f"[dim]#{event.get('seq')} {escape(str(event.get('received_at', '')))}[/dim] "
        f"[bold]{escape(str(event.get('type')))}[/bold] "
        f"[green]{escape(str(event.get('source')))}[/green]"
        f"{subject} {escape(data)}"
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def tail(
        types: TypeOption = None,
        sources: SourceOption = None,
        exclude_sources: ExcludeSourceOption = None,
        subjects: SubjectOption = None,
        trace_ids: TraceIdOption = None,
        where: WhereOption = None,
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
        base = server_url(url)
        params = filter_params(
            types=types,
            sources=sources,
            exclude_sources=exclude_sources,
            subjects=subjects,
            trace_ids=trace_ids,
            where=where,
        )
        follower = Follower(as_json=as_json, limit=count)
        follower.last_id = last_event_id
        start_since = resolve_time(since) if since else None
        try:
            follow(base, params, follower, start_since)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None


def follow(base: str, params: list[tuple[str, str]], follower: Follower, since: str | None) -> None:
    """Connect, print, and reconnect until the event count is reached (or forever)."""
    backoff = 1.0
    timeout = httpx2.Timeout(10.0, read=READ_TIMEOUT_S)
    headers_base = {
        "User-Agent": f"tidings-cli/{__version__}",
        "Accept": "text/event-stream",
        **auth_headers(),
    }
    with httpx2.Client(base_url=base, timeout=timeout, headers=headers_base) as client:
        while True:
            query: list[tuple[str, str | int | float | bool | None]] = list(params)
            headers: dict[str, str] = {}
            if follower.last_id is not None:
                headers["Last-Event-ID"] = str(follower.last_id)
            elif since:
                query.append(("since", since))
            follower.retry_ms = None
            try:
                with client.stream(
                    "GET", "/v1/events/stream", params=query, headers=headers
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = ServerError.from_response(response)
                        if response.status_code != 503:
                            print_server_error(error)
                            raise typer.Exit(FAILED)
                        raise httpx2.TransportError(error.message)
                    backoff = 1.0
                    parser = SSEParser()
                    for line in response.iter_lines():
                        frame = parser.feed(line)
                        if frame is not None and follower.handle(frame):
                            return
            except httpx2.TransportError as error:
                if (
                    isinstance(error, httpx2.ConnectError)
                    and follower.count == 0
                    and follower.last_id is None
                ):
                    message, _ = explain(error, base)
                    err.print(f"[yellow]{escape(message)}[/yellow] retrying in {backoff:.0f}s")
                else:
                    err.print(
                        "[yellow]stream interrupted[/yellow] "
                        f"({escape(str(error) or type(error).__name__)}); "
                        f"reconnecting in {backoff:.0f}s"
                    )
            if follower.retry_ms is not None:
                time.sleep(follower.retry_ms / 1000)
            else:
                time.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
