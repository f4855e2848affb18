"""The event model: validation, CloudEvents mapping, filters and type patterns (no I/O)."""

from __future__ import annotations

from tidings.envelope.filters import FieldEquals, Filter, parse_filter
from tidings.envelope.model import DEFAULT_TENANT, AppendResult, Candidate, Event
from tidings.envelope.types import type_error, type_matches
from tidings.envelope.validate import Limits, PublishContext, candidates_from_json

__all__ = [
    "DEFAULT_TENANT",
    "AppendResult",
    "Candidate",
    "Event",
    "FieldEquals",
    "Filter",
    "Limits",
    "PublishContext",
    "candidates_from_json",
    "parse_filter",
    "type_error",
    "type_matches",
]
