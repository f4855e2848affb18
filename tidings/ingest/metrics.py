"""Prometheus metrics of the ingest adapters, on ``tidings.metrics.REGISTRY``.

Stored events are counted by the publisher (``tidings_events_ingested_total`` with transport
``webhook``, ``mqtt`` or ``pg_notify``). Labels stay bounded: sources are capped by
``tidings.metrics.source_label``, reasons are the fixed codes of ``mapping.REASON_CODES``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from tidings.ingest.mapping import REASON_CODES
from tidings.metrics import REGISTRY, source_label

DEAD_LETTERS = Counter(
    "tidings_dead_letters_total",
    "Input parked as a dead letter, by source and reason code.",
    ["source", "reason"],
    registry=REGISTRY,
)
WEBHOOKS_REFUSED = Counter(
    "tidings_ingest_refused_total",
    "Inbound webhooks refused before anything was stored, by source and error code.",
    ["source", "code"],
    registry=REGISTRY,
)
REDRIVES = Counter(
    "tidings_dead_letters_redriven_total",
    "Dead letters redriven, by source and outcome (stored, failed).",
    ["source", "outcome"],
    registry=REGISTRY,
)
ADAPTER_CONNECTED = Gauge(
    "tidings_ingest_adapter_connected",
    "1 while an ingest adapter holds its connection (and, for PG NOTIFY, listens).",
    ["adapter", "source"],
    registry=REGISTRY,
)
_REFUSAL_CODES = ("missing_signature", "invalid_signature", "stale_timestamp")


def dead_letter(source: str, reason_code: str) -> None:
    code = reason_code if reason_code in REASON_CODES else "other"
    DEAD_LETTERS.labels(source_label(source), code).inc()


def refused(source: str, code: str) -> None:
    WEBHOOKS_REFUSED.labels(source_label(source), code if code in _REFUSAL_CODES else "other").inc()


def redriven(source: str, stored: bool) -> None:
    REDRIVES.labels(source_label(source), "stored" if stored else "failed").inc()


def connected(adapter: str, source: str, up: bool) -> None:
    ADAPTER_CONNECTED.labels(adapter, source_label(source)).set(1 if up else 0)
