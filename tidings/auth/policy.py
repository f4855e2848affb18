"""Which scope a request needs, decided from its method and path alone (no I/O).

The table is default-deny: a path not named as open needs a valid key, whatever it is, so a
route added later is never reachable without one by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tidings.auth.scopes import Scope


class Access(Enum):
    OPEN = "open"  # no key: liveness, readiness, the page's files, signed ingest
    ANY_KEY = "any_key"  # any valid key (a path no route answers: it then gets its 404)


Need = Scope | Access

# Paths that need no key. Ingest is authenticated by each source's signature instead.
_OPEN_EXACT = frozenset({"/healthz", "/readyz", "/", "/favicon.ico", "/docs", "/openapi.json"})
_OPEN_PREFIXES = ("/static/", "/v1/ingest/", "/docs/")
STREAM_PATHS = frozenset({"/v1/events/stream", "/v1/ws"})  # counted against max_streams
# Where a browser cannot set headers (EventSource, WebSocket, a download link to the export):
# ?access_token= is read too.
TOKEN_IN_QUERY = STREAM_PATHS | {"/v1/events/export"}


@dataclass(frozen=True, slots=True)
class _Rule:
    prefix: str
    need: Need
    methods: frozenset[str] | None = None  # None: every method


_RULES = (
    _Rule("/v1/events", Scope.PUBLISH, frozenset({"POST"})),
    _Rule("/v1/events", Scope.SUBSCRIBE),
    _Rule("/v1/ws", Scope.SUBSCRIBE),
    _Rule("/v1/webhooks", Scope.ADMIN),
    _Rule("/v1/deliveries", Scope.ADMIN),
    _Rule("/v1/dead-letters", Scope.ADMIN),
    _Rule("/v1/stats", Scope.ADMIN),
    _Rule("/v1/keys", Scope.ADMIN),  # its own tenant; another tenant's keys need root
    _Rule("/v1/tenants", Scope.ROOT),
    _Rule("/metrics", Scope.ROOT),
)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def required(method: str, path: str) -> Need:
    """What a request for ``method path`` needs."""
    if path in _OPEN_EXACT or path.startswith(_OPEN_PREFIXES):
        return Access.OPEN
    for rule in _RULES:
        if _under(path, rule.prefix) and (rule.methods is None or method in rule.methods):
            return rule.need
    return Access.ANY_KEY
