"""Reading one TOML table of the ingest configuration, key by key, with errors that name the
key (``sources.github.verifier: ...``)."""

from __future__ import annotations

import logging
from typing import Any

from tidings.auth.scopes import TENANT_ID
from tidings.envelope import DEFAULT_TENANT, type_error
from tidings.settings import ConfigError

log = logging.getLogger("tidings.ingest")


class Table:
    """One TOML table, read key by key; every error names ``<path>.<key>``."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a table")
        self.raw: dict[str, Any] = raw
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}.{key}: {message}")

    def only(self, allowed: tuple[str, ...]) -> None:
        for key in self.raw:
            if key not in allowed:
                raise self.fail(key, f"unknown key; expected one of {', '.join(allowed)}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw.get(key, default)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def number(self, key: str, default: float, *, low: float = 0.0) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= low:
            raise self.fail(key, f"must be a number greater than {low:g}")
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be an integer from {low} to {high}")
        return value


def check_default_type(table: Table, default_type: str) -> None:
    """An invalid default type is reported but not refused: what maps to it is parked as a
    dead letter, and redriven once the type is fixed (nothing is lost meanwhile)."""
    problem = type_error(default_type)
    if problem:
        log.warning(
            "%s.type: %r is not a valid event type (%s); input of that type will be parked "
            "as dead letters until it is fixed",
            table.path,
            default_type,
            problem,
        )


def read_tenant(table: Table) -> str:
    """``tenant = "..."``: whose log the input's events and dead letters go to."""
    tenant = table.text("tenant", DEFAULT_TENANT)
    if tenant is None or not TENANT_ID.fullmatch(tenant):
        raise table.fail("tenant", f"{tenant!r} is not a tenant id ([a-z0-9][a-z0-9-]{{0,62}})")
    return tenant
