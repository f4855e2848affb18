"""``tidings dlq``: look at dead letters, redrive them (one, or all that match), delete them."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings.cli.filters import resolve_time
from tidings.cli.http import USAGE, KeyOption, TenantOption, UrlOption, api, err, fail

out = Console(highlight=False, soft_wrap=True)
dlq = typer.Typer(
    name="dlq",
    help="Dead letters: input that could not become events. list, show, redrive, delete.",
    no_args_is_help=True,
)
RAW_WIDTH = 60  # characters of the raw input shown in the table
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]
SourceOpt = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", help="Sources, comma list or repeated.", show_default=False),
]
TopicOpt = Annotated[
    list[str] | None,
    typer.Option("--topic", help="MQTT topics or PG NOTIFY channels.", show_default=False),
]
ReasonOpt = Annotated[
    list[str] | None,
    typer.Option("--reason", help="Reason codes (not_json, invalid_event...).", show_default=False),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="Received at or after: ISO 8601 or 15m, 2h, 7d ago.", show_default=False
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until", help="Received at or before: ISO 8601 or a duration ago.", show_default=False
    ),
]


def _filters(
    sources: list[str] | None,
    topics: list[str] | None,
    reasons: list[str] | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    """The filter options given, as the client's keyword arguments (the same for listing
    and for redriving)."""
    given = {
        "source": sources,
        "topic": topics,
        "reason": reasons,
        "since": resolve_time(since) if since else None,
        "until": resolve_time(until) if until else None,
    }
    return {name: value for name, value in given.items() if value}


def _print_json(body: Any) -> None:
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= RAW_WIDTH else flat[: RAW_WIDTH - 1] + "…"


def letter_table(letters: list[dict[str, Any]]) -> Table:
    """Dead letters as rows; every cell is plain text, so input is never read as markup."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("received_at", no_wrap=True)
    for name in ("source", "topic", "reason", "raw"):
        table.add_column(name, overflow="fold")
    for d in letters:
        raw = str(d.get("raw") or "")
        table.add_row(
            Text(str(d["id"])),
            Text(str(d.get("received_at", ""))),
            Text(str(d.get("source", ""))),
            Text(str(d.get("topic") or "")),
            Text(_shorten(str(d.get("reason", "")))),
            Text("(base64) " + _shorten(raw) if d.get("raw_encoding") else _shorten(raw)),
        )
    return table


@dlq.command("list")
def list_(
    sources: SourceOpt = None,
    topics: TopicOpt = None,
    reasons: ReasonOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 100,
    follow: Annotated[bool, typer.Option("--all", help="Follow the pages to the end.")] = False,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List dead letters, newest first.

    Examples:

      tidings dlq list --source mqtt --since 1h

      tidings dlq list --reason not_json --all --json
    """
    filters = _filters(sources, topics, reasons, since, until)
    shown: list[dict[str, Any]] = []
    cursor: str | None = None
    with api(url) as client:
        while True:
            page = client.dead_letters_page(**filters, limit=limit, cursor=cursor, tenant=tenant)
            shown.extend(letter.raw for letter in page.items)
            cursor = page.next
            if not cursor or not follow:
                break
    if as_json:
        for letter in shown:
            typer.echo(orjson.dumps(letter).decode())
    elif shown:
        out.print(letter_table(shown))
    else:
        err.print("no dead letters match", markup=False)
    if cursor:
        err.print("more dead letters: add --all", markup=False)


@dlq.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id.")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show one dead letter with its whole raw input."""
    with api(url) as client:
        letter = client.get_dead_letter(letter_id)
    if as_json:
        _print_json(letter.raw)
        return
    for key in ("id", "source", "topic", "received_at", "reason"):
        out.print(Text(f"{key:12} {letter.raw.get(key) or ''}"))
    encoding = " (base64)" if letter.raw.get("raw_encoding") else ""
    out.print(Text(f"raw{encoding}:"))
    typer.echo(letter.raw_text or "")


@dlq.command("redrive")
def redrive(
    letter_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="One dead letter; else use filters.")
    ] = None,
    sources: SourceOpt = None,
    topics: TopicOpt = None,
    reasons: ReasonOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Redrive every dead letter (no filter).")
    ] = False,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Map dead letters again with their source's current configuration.

    Those that now map are stored and deleted; the others stay, with the error shown.

    Examples:

      tidings dlq redrive 0193a5f0-...

      tidings dlq redrive --source github --since 1d
    """
    filters = _filters(sources, topics, reasons, since, until)
    if letter_id is not None and (filters or everything):
        raise fail("give an ID or filters, not both", USAGE)
    if letter_id is None and not filters and not everything:
        raise fail("give an ID, filters (--source, --topic...), or --all", USAGE)
    if letter_id is not None and tenant is not None:
        raise fail("--tenant goes with filters or --all; an ID is found in any tenant", USAGE)
    with api(url) as client:
        if letter_id is not None:
            stored = client.redrive_dead_letter(letter_id)
            if as_json:
                events = [dataclasses.asdict(event) for event in stored]
                _print_json({"dead_letter": letter_id, "events": events})
            else:
                ids = ", ".join(event.id for event in stored) or "none"
                err.print(f"stored {len(stored)} event(s): {ids}", markup=False)
            return
        counts = client.redrive_dead_letters(**filters, tenant=tenant)
    if as_json:
        _print_json(dataclasses.asdict(counts))
        return
    err.print(
        f"redriven {counts.redriven} ({counts.events} events), failed {counts.failed}",
        markup=False,
    )
    for failure in counts.failures:
        err.print(f"  {failure['id']}: {failure['error']}", markup=False)
    if counts.failed:
        raise typer.Exit(1)


@dlq.command("delete")
def delete(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Delete one dead letter (its input is gone for good)."""
    with api(url) as client:
        client.delete_dead_letter(letter_id)
    err.print(f"deleted {letter_id}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq)
