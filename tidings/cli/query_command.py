"""``tidings query``: history as a table, or as one JSON object per line."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings.cli.choices import Order
from tidings.cli.filters import EventFilter, filter_options
from tidings.cli.http import KeyOption, UrlOption, api, err
from tidings.client._calls import Call, Pager

DATA_WIDTH = 60  # characters of data shown in the table before it is cut


def shorten(text: str, width: int = DATA_WIDTH) -> str:
    """``text`` cut to ``width`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def event_table(events: list[dict[str, Any]]) -> Table:
    """The events as rows; every cell is plain text, so event content is never read as markup."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    for name in ("type", "source", "subject"):
        table.add_column(name, overflow="fold")
    table.add_column("data", overflow="fold")
    for event in events:
        data = orjson.dumps(event.get("data")).decode()
        table.add_row(
            Text(str(event.get("seq", ""))),
            Text(str(event.get("time", ""))),
            Text(str(event.get("type", ""))),
            Text(str(event.get("source", ""))),
            Text(str(event.get("subject") or "")),
            Text(shorten(data)),
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    @filter_options(history=True)
    def query(
        filters: EventFilter,
        order: Annotated[
            Order, typer.Option("--order", help="Newest first (desc) or oldest first.")
        ] = Order.desc,
        limit: Annotated[
            int, typer.Option("--limit", "-n", min=1, max=1000, help="Events per page.")
        ] = 100,
        follow: Annotated[
            bool, typer.Option("--all", help="Follow the pages to the end, not just the first.")
        ] = False,
        cursor: Annotated[
            str | None,
            typer.Option(
                "--cursor",
                help="Start at this page (the cursor a previous query printed).",
                show_default=False,
            ),
        ] = None,
        json_output: Annotated[
            bool, typer.Option("--json", help="One JSON object per line: the events as stored.")
        ] = False,
        url: UrlOption = None,
        key: KeyOption = None,
    ) -> None:
        """Show stored events that match the filters, newest first.

        The filters are those of GET /v1/events. For a large history use --json, or export.

        Examples:

          tidings query --type 'device.#' --since 1h

          tidings query --source smartthings --where data.switch=on --limit 20

          tidings query --type order.paid --order asc --all --json > paid.ndjson
        """
        params = filters.params()
        params += [("order", order.value), ("limit", str(limit))]
        shown: list[dict[str, Any]] = []
        pages = Pager(Call("GET", "/v1/events", tuple(params), safe=True), "events", dict)
        with api(url) as client:
            call = pages.after(cursor) if cursor else pages.call
            while True:
                page = pages.read(client.send(call))
                if json_output:
                    for event in page.items:
                        typer.echo(orjson.dumps(event).decode())
                else:
                    shown.extend(page.items)
                cursor = page.next
                if not cursor or not follow:
                    break
                call = pages.after(cursor)
            if not json_output:
                if shown:
                    Console(highlight=False).print(event_table(shown))
                else:
                    err.print("no events match")
        if cursor:
            err.print(f"more events: add --all, or --cursor {cursor}", markup=False)
