"""``tidings publish``: one event from options, or many from NDJSON in batches."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from tidings.cli.http import (
    FAILED,
    USAGE,
    KeyOption,
    UrlOption,
    api,
    err,
    fail,
    no_answer,
    print_error,
    print_server_error,
)
from tidings.cli.ndjson import BadLine, Line, failed_items, read_batches
from tidings.client import Client, TidingsError

# Refusals about the request's size rather than its events: smaller batches may pass.
_TOO_LARGE = ("body_too_large", "batch_too_large")


class BatchRefused(Exception):
    """The server refused a whole batch for a reason that names none of its events."""

    def __init__(self, first: int, last: int, error: TidingsError) -> None:
        super().__init__(error.message)
        self.first = first  # the batch's first line number
        self.last = last  # its last line number
        self.error = error  # what the server answered


@dataclass
class BulkPublisher:
    """Sends batches and keeps the tally; a refused event is reported by its line number."""

    client: Client
    stored: int = 0  # events the server stored
    duplicates: int = 0  # events it already had (same idempotency key)
    failed: list[int] = field(default_factory=list)  # line numbers not published
    last_line: int = 0  # the last line of the last batch sent

    def summary(self) -> str:
        text = f"{self.stored} stored, {self.duplicates} duplicates"
        return f"{text}, {len(self.failed)} failed" if self.failed else text

    def bad_line(self, line: BadLine) -> None:
        print_error(escape(f"line {line.number}: {line.reason}"))
        self.failed.append(line.number)

    def send(self, lines: list[Line]) -> None:
        """Publish ``lines``; events the server names as invalid are reported and dropped.

        A refused batch stores nothing, so sending the rest again cannot store twice.
        """
        while lines:
            try:
                results = self.client.publish_batch([line.event for line in lines])
            except TidingsError as error:
                if error.status is None:
                    raise  # no answer: the publisher stops here
                refused = failed_items(error.details, len(lines))
                if refused:
                    for index, messages in sorted(refused.items()):
                        text = f"line {lines[index].number}: {error.code}: " + "; ".join(messages)
                        print_error(escape(text))
                        self.failed.append(lines[index].number)
                    lines = [line for index, line in enumerate(lines) if index not in refused]
                elif error.code in _TOO_LARGE and len(lines) > 1:
                    middle = len(lines) // 2
                    self.send(lines[:middle])
                    self.send(lines[middle:])
                    return
                else:
                    raise BatchRefused(lines[0].number, lines[-1].number, error) from None
            else:
                repeats = sum(1 for result in results if result.duplicate)
                self.stored += len(results) - repeats
                self.duplicates += repeats
                self.last_line = lines[-1].number
                return


def _json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise typer.BadParameter(f"not valid JSON: {error}", param_hint=option) from None


def _open_input(file: str) -> tuple[BinaryIO, int | None]:
    """The NDJSON input, and its size when known (so the progress bar has an end)."""
    if file == "-":
        return sys.stdin.buffer, None
    path = Path(file)
    try:
        return path.open("rb"), path.stat().st_size
    except OSError as error:
        raise fail(f"cannot read {file}: {error.strerror}", USAGE) from None


def _publish_stream(publisher: BulkPublisher, file: str, batch_size: int, quiet: bool) -> None:
    stream, total = _open_input(file)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("publishing"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[stored]} stored, {task.fields[duplicates]} duplicates"),
        console=err,
        disable=quiet or not err.is_terminal,
    )
    try:
        with progress:
            task = progress.add_task("publishing", total=total, stored=0, duplicates=0)
            for item in read_batches(stream, batch_size):
                if isinstance(item, BadLine):
                    publisher.bad_line(item)
                    continue
                publisher.send(item.lines)
                progress.update(
                    task,
                    advance=item.consumed,
                    stored=publisher.stored,
                    duplicates=publisher.duplicates,
                )
    finally:
        if file != "-":
            stream.close()


def _bulk(file: str, batch_size: int, quiet: bool, url: str | None) -> None:
    """Publish an NDJSON input; when it has to stop, say how far it got."""
    with api(url) as client:
        publisher = BulkPublisher(client)
        try:
            _publish_stream(publisher, file, batch_size, quiet)
        except BatchRefused as refused:
            print_server_error(refused.error, prefix=f"lines {refused.first}-{refused.last}: ")
            code = FAILED
        except TidingsError as error:  # no answer came
            message, code = no_answer(error)
            print_error(escape(message))
        else:
            if not quiet:
                typer.echo(f"published: {publisher.summary()}")
            if publisher.failed:
                raise typer.Exit(FAILED)
            return
    where = f" after line {publisher.last_line}" if publisher.last_line else ""
    err.print(f"stopped{where}: {publisher.summary()}", markup=False)
    raise typer.Exit(code)


def _one(
    event_type: str | None, options: dict[str, str | None], json_output: bool, url: str | None
) -> None:
    if event_type is None:
        raise typer.BadParameter("give the event TYPE, or --file for NDJSON", param_hint="TYPE")
    data = _json_option(options["data"], "--data")
    metadata = _json_option(options["metadata"], "--metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--metadata")
    with api(url) as client:
        answer = client.publish(
            event_type,
            data,
            source=options["source"],
            subject=options["subject"],
            metadata=metadata,
            idempotency_key=options["idempotency_key"],
            time=options["time"],
        )
    if json_output:
        typer.echo(orjson.dumps(dataclasses.asdict(answer)).decode())
    else:
        duplicate = "true" if answer.duplicate else "false"
        typer.echo(f"id={answer.id} seq={answer.seq} duplicate={duplicate}")


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        event_type: Annotated[
            str | None,
            typer.Argument(
                metavar="TYPE", help="The event type, e.g. door.opened.", show_default=False
            ),
        ] = None,
        data: Annotated[str | None, _opt("--data", "-d", help="The event's data, as JSON.")] = None,
        source: Annotated[
            str | None,
            _opt("--source", "-s", help="Where it comes from (the server's default: api)."),
        ] = None,
        subject: Annotated[
            str | None, _opt("--subject", help="What it is about, e.g. a device id.")
        ] = None,
        metadata: Annotated[
            str | None, _opt("--metadata", help="Metadata, as a JSON object.")
        ] = None,
        idempotency_key: Annotated[
            str | None,
            _opt("--idempotency-key", "-k", help="Publishing the same key again stores once."),
        ] = None,
        time: Annotated[
            str | None, _opt("--time", help="When it happened, ISO 8601 (default: now).")
        ] = None,
        file: Annotated[
            str | None,
            _opt("--file", "-f", help="Publish each line of this NDJSON file instead; - is stdin."),
        ] = None,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, help="Events per request with --file.")
        ] = 1000,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="With --file: no progress bar, no summary.")
        ] = False,
        json_output: Annotated[
            bool, typer.Option("--json", help="Print the server's answer as JSON.")
        ] = False,
        url: UrlOption = None,
        key: KeyOption = None,
    ) -> None:
        """Publish one event, or every event of an NDJSON file.

        One event prints its id, its seq and whether it was a duplicate.

        With --file, events go in batches of --batch-size, one event object per line.

        A line that is not JSON, or that the server refuses, is reported by its line number.

        The other lines are still published, and the exit code is then 1.

        Examples:

          tidings publish door.opened --data '{"door": "front"}' --source hallway

          tidings publish order.paid -d '{"total": 42}' --idempotency-key order-7-paid

          tidings publish --file events.ndjson

          gzip -dc events.ndjson.gz | tidings publish --file - --quiet
        """
        options = {
            "data": data,
            "source": source,
            "subject": subject,
            "metadata": metadata,
            "idempotency_key": idempotency_key,
            "time": time,
        }
        if file is None:
            _one(event_type, options, json_output, url)
            return
        if event_type is not None or any(value is not None for value in options.values()):
            raise typer.BadParameter(
                "with --file each line is a whole event; TYPE, --data, --source, --subject, "
                "--metadata, --idempotency-key and --time describe one event",
                param_hint="--file",
            )
        _bulk(file, batch_size, quiet, url)
