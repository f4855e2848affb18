"""The event filter as command-line options, shared by every command that reads history.

The options map one to one onto the query parameters of DESIGN.md section 4, so the server
stays the only judge of what a filter means; the client only adds relative times (``15m``).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

TypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        "-t",
        help="Type patterns, comma list or repeated; * is one segment, # the rest (device.#).",
        show_default=False,
    ),
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", help="Sources, comma list or repeated.", show_default=False),
]
ExcludeSourceOption = Annotated[
    list[str] | None,
    typer.Option("--exclude-source", help="Sources to leave out.", show_default=False),
]
SubjectOption = Annotated[
    list[str] | None,
    typer.Option("--subject", help="Subjects, comma list or repeated.", show_default=False),
]
TraceIdOption = Annotated[
    list[str] | None,
    typer.Option("--trace-id", help="Trace ids, comma list or repeated.", show_default=False),
]
WhereOption = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        "-w",
        help="data.<path>=v or metadata.<path>=v; v1,v2 matches either. Repeatable.",
        show_default=False,
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Received at or after: ISO 8601, or a duration ago (30s, 15m, 2h, 7d).",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until", help="Received at or before: ISO 8601 or a duration ago.", show_default=False
    ),
]
AfterOption = Annotated[
    int | None, typer.Option("--after", help="Only seq greater than this.", show_default=False)
]
BeforeOption = Annotated[
    int | None, typer.Option("--before", help="Only seq less than this.", show_default=False)
]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def resolve_time(value: str, now: datetime | None = None) -> str:
    """``15m`` as the ISO time 15 minutes before ``now``; anything else unchanged."""
    match = _AGO.match(value.strip())
    if match is None:
        return value
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    moment = (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_where(condition: str) -> tuple[str, str]:
    """``data.room=kitchen`` as ``("data.room", "kitchen")``; a usage error otherwise."""
    key, sep, value = condition.partition("=")
    key = key.strip()
    if not sep or not key.startswith(("data.", "metadata.")) or key in ("data.", "metadata."):
        raise typer.BadParameter(
            f"{condition!r} is not data.<path>=value or metadata.<path>=value",
            param_hint="--where",
        )
    return key, value


def filter_params(
    *,
    types: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    exclude_sources: Iterable[str] | None = None,
    subjects: Iterable[str] | None = None,
    trace_ids: Iterable[str] | None = None,
    where: Iterable[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = None,
    before: int | None = None,
) -> list[tuple[str, str]]:
    """The query parameters for these options; repeats are kept (the server joins them)."""
    params: list[tuple[str, str]] = []
    for name, values in (
        ("type", types),
        ("source", sources),
        ("exclude_source", exclude_sources),
        ("subject", subjects),
        ("trace_id", trace_ids),
    ):
        params.extend((name, value) for value in values or ())
    params.extend(parse_where(condition) for condition in where or ())
    if since is not None:
        params.append(("since", resolve_time(since)))
    if until is not None:
        params.append(("until", resolve_time(until)))
    if after is not None:
        params.append(("after", str(after)))
    if before is not None:
        params.append(("before", str(before)))
    return params


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The filter options a command was given (None where not given)."""

    types: list[str] | None = None
    sources: list[str] | None = None
    exclude_sources: list[str] | None = None
    subjects: list[str] | None = None
    trace_ids: list[str] | None = None
    where: list[str] | None = None
    since: str | None = None
    until: str | None = None
    after: int | None = None
    before: int | None = None

    def params(self) -> list[tuple[str, str]]:
        """The query parameters of :func:`filter_params`."""
        return filter_params(**{f.name: getattr(self, f.name) for f in fields(self)})


# What an event is, then (for history) where in it to read; in the order ``--help`` lists them.
_SELECTION_OPTIONS: dict[str, Any] = {
    "types": TypeOption,
    "sources": SourceOption,
    "exclude_sources": ExcludeSourceOption,
    "subjects": SubjectOption,
    "trace_ids": TraceIdOption,
    "where": WhereOption,
}
_RANGE_OPTIONS: dict[str, Any] = {
    "since": SinceOption,
    "until": UntilOption,
    "after": AfterOption,
    "before": BeforeOption,
}


def filter_options(*, history: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the filter options, before its own, passed to it as ``filters``.

    Every command that reads events takes the same options with the same help; ``history``
    adds the time and position range (``--since``, ``--until``, ``--after``, ``--before``),
    which a live stream does not have.
    """
    added = {**_SELECTION_OPTIONS, **(_RANGE_OPTIONS if history else {})}

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != "filters"]
        options = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
            for name, hint in added.items()
        ]

        @functools.wraps(command)
        def run(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in added}
            command(filters=EventFilter(**given), **kwargs)

        # typer reads the options from the signature and the annotations.
        parameters = [*options, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return run

    return decorate
