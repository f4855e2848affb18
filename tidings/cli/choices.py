"""The closed sets of values some options take: shown in --help and completed by the shell."""

from __future__ import annotations

from enum import StrEnum


class Order(StrEnum):
    asc = "asc"  # oldest first
    desc = "desc"  # newest first


class ExportFormat(StrEnum):
    ndjson = "ndjson"  # one event's JSON per line
    csv = "csv"  # a header row, then one row per event


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class LogFormatChoice(StrEnum):
    text = "text"  # time LEVEL logger: message
    json = "json"  # one JSON object a line
