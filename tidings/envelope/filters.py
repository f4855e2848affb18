"""Event filters: the same everywhere (query, SSE, WebSocket, webhook endpoints, MQTT bridge).

A filter is parsed once from query parameters or a JSON object and then answers ``matches``
without I/O. Stores translate the same filter into their query language; a property test keeps
the two in agreement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings.envelope.model import Event
from tidings.envelope.types import split_pattern, type_matches
from tidings.errors import TidingsError

FILTER_FIELDS = ("type", "source", "exclude_source", "subject", "trace_id")
_MISSING = object()
# A path segment the stores can address: no double quote (it ends a quoted JSON path label),
# no backslash or control character (JSON escapes them in keys, and SQLite compares a path
# label with the escaped key text, so such a key could never be found in SQL).
_BAD_SEGMENT = re.compile(r'["\\\x00-\x1f]')


@dataclass(frozen=True, slots=True)
class FieldEquals:
    """``data.<path>`` or ``metadata.<path>`` equals one of ``values`` (scalars)."""

    root: str  # "data" or "metadata"
    path: tuple[str, ...]
    values: tuple[Any, ...]
    text: str = ""  # the comma list as given, to show the filter back

    def matches(self, document: Any) -> bool:
        value = document
        for key in self.path:
            if not isinstance(value, dict):
                return False
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return False
        if isinstance(value, dict | list) or (value is None and None not in self.values):
            return False
        return any(_scalar_equal(value, wanted) for wanted in self.values)


def _scalar_equal(value: Any, wanted: Any) -> bool:
    # bool is an int in Python; true must not equal 1.
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    return bool(value == wanted)


def scalar_candidates(text: str) -> tuple[Any, ...]:
    """What a query-string value may mean: ``5`` matches 5 and "5"; ``true`` matches true."""
    options: list[Any] = [text]
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = _MISSING
    if parsed is not _MISSING and not isinstance(parsed, dict | list | str):
        options.append(parsed)
    return tuple(options)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events a consumer wants. Empty fields mean "any"."""

    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    exclude_sources: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    fields: tuple[FieldEquals, ...] = field(default=())
    trace_ids: tuple[str, ...] = ()  # the correlation key users look events up by

    def matches(self, event: Event, *, types_checked: bool = False) -> bool:
        """Whether ``event`` passes; ``types_checked`` when an index already matched the type."""
        if (
            self.types
            and not types_checked
            and not any(type_matches(p, event.type) for p in self.types)
        ):
            return False
        if self.sources and event.source not in self.sources:
            return False
        if event.source in self.exclude_sources:
            return False
        if self.subjects and event.subject not in self.subjects:
            return False
        if self.trace_ids and event.trace_id not in self.trace_ids:
            return False
        if self.fields:
            data, metadata = event.parsed()
            for condition in self.fields:
                if not condition.matches(data if condition.root == "data" else metadata):
                    return False
        return True

    @property
    def is_empty(self) -> bool:
        return not (
            self.types
            or self.sources
            or self.exclude_sources
            or self.subjects
            or self.trace_ids
            or self.fields
        )

    def to_dict(self) -> dict[str, Any]:
        """The filter as the API shows it back (query-parameter form)."""
        out: dict[str, Any] = {}
        if self.types:
            out["type"] = ",".join(self.types)
        if self.sources:
            out["source"] = ",".join(self.sources)
        if self.exclude_sources:
            out["exclude_source"] = ",".join(self.exclude_sources)
        if self.subjects:
            out["subject"] = ",".join(self.subjects)
        if self.trace_ids:
            out["trace_id"] = ",".join(self.trace_ids)
        for condition in self.fields:
            key = ".".join((condition.root, *condition.path))
            out[key] = condition.text
        return out


def _split(value: str | Iterable[Any]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    parts: list[str] = []
    for item in items:
        # A JSON filter object may list scalars: [true, null] means "true,null", not "True,None".
        text = item if isinstance(item, str) else json.dumps(item)
        parts.extend(p.strip() for p in text.split(","))
    return tuple(p for p in parts if p)


def _error(loc: list[str | int], message: str) -> TidingsError:
    return TidingsError(400, "invalid_filter", message, details=[{"loc": loc, "msg": message}])


def parse_filter(
    params: Mapping[str, str | list[str]],
    *,
    location: str = "query",
    ignore: Iterable[str] = (),
) -> Filter:
    """Build a filter from query parameters or a JSON object; unknown keys are a 400.

    ``ignore`` names the other parameters the caller accepts (``limit``, ``since``...).
    """
    skip = set(ignore)
    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    fields: list[FieldEquals] = []
    for key, raw in params.items():
        if key in skip:
            continue
        scalar = raw is None or isinstance(raw, bool | int | float)
        if scalar and key.startswith(("data.", "metadata.")):
            raw = json.dumps(raw)
        nested = isinstance(raw, list | tuple) and any(isinstance(v, dict | list) for v in raw)
        if not isinstance(raw, str | list | tuple) or nested:
            raise _error([location, key], f"filter {key!r} must be a string or a list of strings")
        values = _split(raw)
        if key == "type":
            for pattern in values:
                try:
                    split_pattern(pattern)
                except ValueError as error:
                    raise _error([location, key], str(error)) from None
            types = values
        elif key == "source":
            sources = values
        elif key == "exclude_source":
            exclude = values
        elif key == "subject":
            subjects = values
        elif key == "trace_id":
            trace_ids = values
        elif key.startswith(("data.", "metadata.")):
            root, _, path = key.partition(".")
            segments = tuple(path.split("."))
            if not all(segments) or any(_BAD_SEGMENT.search(s) for s in segments):
                raise _error(
                    [location, key],
                    f"filter {key!r} has an empty path segment, a double quote, a backslash "
                    "or a control character",
                )
            if not values:
                raise _error([location, key], f"filter {key!r} needs a value")
            candidates = tuple(c for v in values for c in scalar_candidates(v))
            fields.append(FieldEquals(root, segments, candidates, ",".join(values)))
        else:
            known = ", ".join([*FILTER_FIELDS, "data.<path>", "metadata.<path>", *sorted(skip)])
            raise _error([location, key], f"unknown filter field {key!r}; known: {known}")
    return Filter(types, sources, exclude, subjects, tuple(fields), trace_ids)
