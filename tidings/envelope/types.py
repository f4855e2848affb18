"""Event types and type patterns.

A type is 1-200 characters: segments of letters, digits, ``_``, ``-`` and ``:``, separated by
``.`` (``user.created``, ``device.switch.switchLevel``). A pattern is a type whose segments may
also be ``*`` (exactly one segment) or, as the last segment, ``#`` (zero or more segments), so
``device.#`` matches ``device`` and ``device.switch.on``.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_TYPE_LENGTH = 200
_SEGMENT = r"[A-Za-z0-9_\-:]+"
# Used with fullmatch: "$" would also accept a trailing newline ("user.created\n").
TYPE_RE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_SEGMENT_RE = re.compile(_SEGMENT)


def type_error(value: str) -> str | None:
    """Why ``value`` is not a valid event type, or None when it is."""
    if not value:
        return "type must not be empty"
    if len(value) > MAX_TYPE_LENGTH:
        return f"type is longer than {MAX_TYPE_LENGTH} characters"
    if not TYPE_RE.fullmatch(value):
        return (
            "type must be segments of letters, digits, '_', '-' or ':' separated by '.', "
            "such as 'user.created'"
        )
    return None


def split_pattern(pattern: str) -> tuple[str, ...]:
    """The segments of a valid pattern; raises ValueError naming what is wrong."""
    if not pattern or len(pattern) > MAX_TYPE_LENGTH:
        raise ValueError(f"type pattern must be 1-{MAX_TYPE_LENGTH} characters")
    segments = tuple(pattern.split("."))
    for index, segment in enumerate(segments):
        if segment == "#":
            if index != len(segments) - 1:
                raise ValueError(f"'#' may only be the last segment of a pattern: {pattern!r}")
        elif segment != "*" and not _SEGMENT_RE.fullmatch(segment):
            raise ValueError(f"invalid type pattern {pattern!r}")
    return segments


@lru_cache(maxsize=4096)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regular expression equivalent to ``pattern`` over whole types."""
    segments = split_pattern(pattern)
    parts: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "#":
            # zero or more further segments: "a.#" matches "a" and "a.b.c"; "#" matches all
            parts.append(rf"(?:\.{_SEGMENT})*" if index else rf"{_SEGMENT}(?:\.{_SEGMENT})*")
            continue
        piece = _SEGMENT if segment == "*" else re.escape(segment)
        parts.append(("\\." if index else "") + piece)
    return re.compile("^" + "".join(parts) + r"\Z")


def type_matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern`` (see the module docstring)."""
    return pattern_regex(pattern).match(event_type) is not None


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` has no wildcard, so plain equality (and an index) can match it."""
    return "*" not in pattern and "#" not in pattern.split(".")
