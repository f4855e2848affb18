"""``tidings export``: stored events streamed to a file as NDJSON or CSV."""

from __future__ import annotations

import itertools
import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

from tidings.cli.choices import ExportFormat, Order
from tidings.cli.filters import EventFilter, filter_options
from tidings.cli.http import USAGE, KeyOption, UrlOption, api, err, fail
from tidings.client._calls import Call


@contextmanager
def _target(output: Path | None) -> Iterator[BinaryIO]:
    """stdout, or ``output`` written whole: a failed export leaves no half-written file."""
    if output is None or str(output) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    # A sibling temporary file, renamed over ``output`` once complete; created with the
    # ordinary permissions (umask), unlike mkstemp's owner-only ones.
    temporary = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
    try:
        stream = temporary.open("xb")
    except OSError as error:
        raise fail(f"cannot write {output}: {error.strerror}", USAGE) from None
    try:
        with stream:
            yield stream
        temporary.replace(output)
    finally:
        temporary.unlink(missing_ok=True)


def _export_error(tail: bytes) -> str | None:
    """The server's message when the export ended with its error line (NDJSON or CSV)."""
    last = tail.rstrip(b"\n").rpartition(b"\n")[2]
    if last.startswith(b'{"error":'):
        try:
            return str(json.loads(last)["error"]["message"])
        except (ValueError, KeyError, TypeError):
            return last.decode(errors="replace")
    if last.startswith(b"error,store_error,"):
        return last.decode(errors="replace").split(",", 2)[2].strip('"')
    return None


def register(app: typer.Typer) -> None:
    @app.command()
    @filter_options(history=True)
    def export(
        filters: EventFilter,
        format: Annotated[
            ExportFormat, typer.Option("--format", help="One event per line, or CSV.")
        ] = ExportFormat.ndjson,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o", help="Write here instead of stdout.", show_default=False
            ),
        ] = None,
        order: Annotated[
            Order, typer.Option("--order", help="Oldest first (asc) or newest first.")
        ] = Order.asc,
        limit: Annotated[
            int | None,
            typer.Option(
                "--limit",
                "-n",
                min=1,
                help="Stop after this many events (default: all).",
                show_default=False,
            ),
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")
        ] = False,
        url: UrlOption = None,
        key: KeyOption = None,
    ) -> None:
        """Export stored events that match the filters, oldest first, streamed as they are read.

        It covers what was stored when it started, so it ends while events keep coming.

        CSV has one column per event field, from seq to metadata; data and metadata as JSON.

        Examples:

          tidings export --output events.ndjson

          tidings export --type 'order.#' --since 7d --format csv --output orders.csv

          tidings export --source smartthings | gzip > smartthings.ndjson.gz
        """
        params = filters.params()
        params += [("format", format.value), ("order", order.value)]
        if limit is not None:
            params.append(("limit", str(limit)))
        progress = Progress(
            SpinnerColumn(),
            TextColumn("exporting"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[events]} events"),
            console=err,
            disable=quiet or not err.is_terminal,
        )
        size = lines = 0
        call = Call("GET", "/v1/events/export", tuple(params), safe=True)
        with api(url) as client, closing(client.chunks(call)) as chunks:
            first = next(chunks, b"")  # a refusal is raised here, before any file is made
            with _target(output) as stream, progress:
                task = progress.add_task("exporting", total=None, events=0)
                tail = b""
                for chunk in itertools.chain((first,), chunks):
                    stream.write(chunk)
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    tail = (tail + chunk)[-4096:]
                    events = lines - 1 if format is ExportFormat.csv else lines
                    progress.update(task, completed=size, events=max(events, 0))
                cut_short = _export_error(tail)
                if cut_short:  # the output file is not kept: it would look complete
                    raise fail(f"the export is incomplete: {cut_short}")
        if not quiet:
            events = max(lines - 1, 0) if format is ExportFormat.csv else lines
            target = f" to {output}" if output is not None and str(output) != "-" else ""
            err.print(f"exported {events} events ({size} bytes){target}", markup=False)
