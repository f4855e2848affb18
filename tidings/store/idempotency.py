"""The idempotency rules every store applies the same way (DESIGN.md section 3, "Idempotency").

A repeat of a stored deduplication key is a duplicate when its type, source, subject and data
are the same; otherwise it is a conflict. Other fields (id, time, trace_id, metadata) may differ.
"""

from __future__ import annotations

from typing import Any

import orjson

from tidings.envelope import Candidate
from tidings.errors import TidingsError


def same_content(
    type_: str, source: str, subject: str | None, data_json: str, candidate: Candidate
) -> bool:
    """Whether ``candidate`` repeats a stored event with these fields."""
    if (type_, source, subject) != (candidate.type, candidate.source, candidate.subject):
        return False
    if data_json == candidate.data_json:
        return True
    try:
        stored, offered = orjson.loads(data_json), orjson.loads(candidate.data_json)
    except orjson.JSONDecodeError:  # not JSON: only the identical text is the same
        return False
    return json_equal(stored, offered)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: key order does not matter, and ``true`` is not ``1`` (as it is in Python)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(value, b[key]) for key, value in a.items())
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, int | float):
        return isinstance(b, int | float) and a == b
    return type(a) is type(b) and bool(a == b)


def conflict_error(index: int, key: str | None) -> TidingsError:
    """409 for the candidate at ``index`` of a call whose key was stored with other content."""
    return TidingsError(
        409,
        "idempotency_conflict",
        "an event with this idempotency key was stored with a different type, source, "
        "subject or data",
        details=[{"loc": ["body", index], "msg": f"idempotency key {key!r} is taken"}],
    )
