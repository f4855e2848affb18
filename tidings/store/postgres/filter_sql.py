"""Translate a Filter and a Query into a PostgreSQL WHERE clause with ``$n`` parameters.

``data.<path>`` and ``metadata.<path>`` equalities become JSONB containment (``@>``), which the
``jsonb_path_ops`` GIN indexes serve. Containment compares numbers as numbers (5 matches 5.0),
keeps true apart from 1, and never looks into an array below the top level: the same answers
as ``Filter.matches``.
"""

from __future__ import annotations

import json
from typing import Any

from tidings.envelope import Filter
from tidings.envelope.types import is_literal, pattern_regex

EVENT_COLUMNS = (
    "seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key, "
    "data_text, metadata_text, tenant"
)


class Params:
    """Collects parameter values and hands out their ``$n`` placeholders."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def document_text(json_text: str) -> str | None:
    """The JSON text to store as JSONB, when it is not ``json_text`` itself (None).

    JSONB cannot hold the NUL character, so ``\\u0000`` escapes become U+FFFD there; the
    served text keeps them. Filter values go through the same mapping, so an equal value
    still matches; the rare false match this allows is removed by ``needs_recheck``.
    """
    return json_text.replace("\\u0000", "\\ufffd") if "\\u0000" in json_text else None


def needs_recheck(flt: Filter) -> bool:
    """Whether rows found by SQL must pass ``Filter.matches`` too (see ``document_text``)."""
    return any(
        isinstance(value, str) and ("\x00" in value or "\ufffd" in value or "\\" in value)
        for condition in flt.fields
        for value in condition.values
    )


def _containment(path: tuple[str, ...], value: Any) -> str:
    document: Any = value
    for segment in reversed(path):
        document = {segment: document}
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    return document_text(text) or text


def _any(column: str, values: list[str], params: Params) -> str:
    """``column`` equals one of ``values``; one value as ``=``, so an index gives seq order."""
    if len(values) == 1:
        return f"{column} = {params.add(values[0])}"
    return f"{column} = ANY({params.add(values)}::text[])"


def filter_clause(flt: Filter, params: Params, *, walk: bool = False) -> list[str]:
    """SQL conditions (to AND together) for ``flt``; their values go into ``params``.

    ``walk``: the rows are read in a short range of positions, where walking ``seq`` and
    testing each row beats any index. ``data.<path>`` conditions are then written as the
    function behind ``@>``, which the GIN index cannot serve: otherwise the planner may
    take every match of a common value from it (20,000 rows for one in fifty) to sort them.
    """
    conditions: list[str] = []
    if flt.types:
        literals = [p for p in flt.types if is_literal(p)]
        parts = []
        if literals:
            parts.append(_any("type", literals, params))
        for pattern in flt.types:
            if not is_literal(pattern):
                # Python's pattern is also a valid PostgreSQL ARE: (?:...), \Z, escapes
                parts.append(f"type ~ {params.add(pattern_regex(pattern).pattern)}")
        conditions.append("(" + " OR ".join(parts) + ")")
    if flt.sources:
        conditions.append(_any("source", list(flt.sources), params))
    if flt.exclude_sources:
        conditions.append(f"source <> ALL({params.add(list(flt.exclude_sources))}::text[])")
    if flt.subjects:
        conditions.append(_any("subject", list(flt.subjects), params))
    if flt.trace_ids:
        conditions.append(_any("trace_id", list(flt.trace_ids), params))
    for condition in flt.fields:
        column = "data" if condition.root == "data" else "metadata"
        test = "jsonb_contains({}, {}::jsonb)" if walk else "{} @> {}::jsonb"
        ors = [
            test.format(column, params.add(_containment(condition.path, value)))
            for value in condition.values
        ]
        conditions.append("(" + " OR ".join(ors) + ")")
    return conditions
