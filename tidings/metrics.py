"""Prometheus metrics (single-process mode).

Labels have bounded cardinality only: ``source`` is capped (the first ``MAX_SOURCES`` distinct
sources get their own series, the rest count as ``other``) and the user-chosen event type is
never a label.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from tidings import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
MAX_SOURCES = 100

EVENTS_INGESTED = Counter(
    "tidings_events_ingested_total",
    "Events stored, by source and transport.",
    ["source", "transport"],
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "tidings_events_duplicate_total",
    "Publishes answered with an already-stored event (same idempotency key).",
    ["source", "transport"],
    registry=REGISTRY,
)
PUBLISH_REJECTED = Counter(
    "tidings_publish_rejected_total",
    "Publish requests refused, by error code.",
    ["code"],
    registry=REGISTRY,
)
PUBLISH_LATENCY = Histogram(
    "tidings_publish_latency_seconds",
    "Time from a publish request's arrival to its durable commit.",
    ["transport"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
COMMIT_BATCH_EVENTS = Histogram(
    "tidings_store_commit_batch_events",
    "Events written per group commit.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "tidings_store_commit_seconds",
    "Time to write and commit one group.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
STORE_HEAD = Gauge("tidings_store_head_seq", "Highest committed position.", registry=REGISTRY)
STORE_BYTES = Gauge("tidings_store_size_bytes", "Size of the store on disk.", registry=REGISTRY)
RETENTION_PURGED = Counter(
    "tidings_retention_purged_total", "Events deleted by retention.", registry=REGISTRY
)
HTTP_REQUESTS = Counter(
    "tidings_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)

_sources: set[str] = set()
_sources_lock = threading.Lock()


def source_label(source: str) -> str:
    """``source`` itself for the first MAX_SOURCES distinct sources, else ``other``."""
    if source in _sources:
        return source
    with _sources_lock:
        if len(_sources) < MAX_SOURCES:
            _sources.add(source)
            return source
    return "other"


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, resolved once per label set.

    prometheus_client takes a lock and checks the values on every ``labels`` call; on the
    publish path that was a measurable share of each request. Label sets here are bounded
    (see MAX_SOURCES), so the cache is too; no metric here is ever cleared.
    """
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def record_commit(events: int, seconds: float) -> None:
    COMMIT_BATCH_EVENTS.observe(events)
    COMMIT_SECONDS.observe(seconds)


STREAM_CONNECTIONS = Gauge(
    "tidings_stream_connections",
    "Open stream connections, by transport.",
    ["transport"],
    registry=REGISTRY,
)
STREAM_EVENTS = Counter(
    "tidings_stream_events_delivered_total",
    "Events written to stream connections, by transport.",
    ["transport"],
    registry=REGISTRY,
)
STREAM_CATCHUP = Gauge(
    "tidings_stream_subscriptions_behind",
    "Subscriptions being fed from the store because they are behind the head.",
    registry=REGISTRY,
)
STREAM_CLOSED = Counter(
    "tidings_stream_closed_total",
    "Stream connections closed, by transport and reason (client, stalled, shutdown, error).",
    ["transport", "reason"],
    registry=REGISTRY,
)

DELIVERIES = Counter(
    "tidings_webhook_deliveries_total",
    "Webhook deliveries finished, by outcome (succeeded, failed, cancelled).",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERY_ATTEMPTS = Counter(
    "tidings_webhook_attempts_total",
    "Webhook attempts, by result (success, http_error, timeout, network_error, refused).",
    ["result"],
    registry=REGISTRY,
)
ATTEMPT_LATENCY = Histogram(
    "tidings_webhook_attempt_latency_seconds",
    "Time for one webhook attempt.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
DELIVERY_QUEUE = Gauge(
    "tidings_webhook_queue_depth",
    "Deliveries waiting in this node's memory for a free slot.",
    registry=REGISTRY,
)
CURSOR_LAG = Gauge(
    "tidings_webhook_cursor_lag",
    "Log positions the furthest-behind active endpoint has yet to dispatch.",
    registry=REGISTRY,
)
OLDEST_PENDING = Gauge(
    "tidings_webhook_oldest_pending_seconds",
    "Age of the oldest pending delivery.",
    registry=REGISTRY,
)

# -- the process, the build, HTTP latency, and attempts per endpoint --------------------------

GCCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
ProcessCollector(registry=REGISTRY)

BUILD_INFO = Gauge(
    "tidings_build_info",
    "Always 1; the labels say which Tidings and Python run.",
    ["version", "python"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

HTTP_DURATION = Histogram(
    "tidings_http_request_duration_seconds",
    "Time from a request's start to the end of its answer, by route template and method "
    "(a stream's whole life for /v1/events/stream).",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

# Endpoints are created by admins, so an endpoint id is a bounded label; its series are
# removed when the endpoint is deleted.
ENDPOINT_ATTEMPTS = Counter(
    "tidings_webhook_endpoint_attempts_total",
    "Webhook attempts per endpoint, by result (success, http_error, timeout, network_error, "
    "refused).",
    ["webhook_id", "result"],
    registry=REGISTRY,
)
ENDPOINT_LATENCY = Histogram(
    "tidings_webhook_endpoint_attempt_latency_seconds",
    "Time for one webhook attempt per endpoint, by result.",
    ["webhook_id", "result"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
_endpoint_results: dict[str, set[str]] = {}


def record_attempt(webhook_id: str, result: str, seconds: float) -> None:
    """One finished attempt, in the totals and in its endpoint's series."""
    ATTEMPT_LATENCY.observe(seconds)
    DELIVERY_ATTEMPTS.labels(result).inc()
    ENDPOINT_ATTEMPTS.labels(webhook_id, result).inc()
    ENDPOINT_LATENCY.labels(webhook_id, result).observe(seconds)
    _endpoint_results.setdefault(webhook_id, set()).add(result)


def forget_endpoint(webhook_id: str) -> None:
    """Drop a deleted endpoint's series, so deleted endpoints do not pile up."""
    for result in _endpoint_results.pop(webhook_id, ()):
        for metric in (ENDPOINT_ATTEMPTS, ENDPOINT_LATENCY):
            with contextlib.suppress(KeyError):
                metric.remove(webhook_id, result)


# Routes answered outside the routers that set ``scope["route"]``: each gets its own template.
FIXED_ROUTES = frozenset({"/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/favicon.ico"})
STATIC_PREFIX = "/static/"


def route_template(route_path: str | None, path: str) -> str:
    """The bounded ``route`` label of a request: its route's template, else a fixed name."""
    if route_path:
        return route_path
    if path in FIXED_ROUTES:
        return path
    if path.startswith(STATIC_PREFIX):
        return STATIC_PREFIX + "{path}"
    return "unmatched"
