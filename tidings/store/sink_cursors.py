"""Durable positions of the sinks that follow the log besides webhook endpoints (the MQTT
bridge's rules): every event with ``seq <= position`` is handled by that sink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SinkCursor:
    sink: str  # the sink's stable name, e.g. ``mqtt:<hash of the rule>``
    tenant: str  # whose events the sink follows
    position: int
    updated_at_us: int


class SinkCursors(Protocol):
    async def sink_cursor(self, sink: str) -> int | None:
        """The sink's position, None when it has none yet (a new sink)."""

    async def set_sink_cursor(self, sink: str, tenant: str, position: int, now_us: int) -> None:
        """Move the cursor forward (never back) and remember when; creates it when new."""

    async def list_sink_cursors(self) -> list[SinkCursor]:
        """Every stored cursor, by sink name."""

    async def delete_sink_cursor(self, sink: str) -> bool:
        """Forget a sink that no longer exists (its hold on retention ends); False when none."""

    async def retention_floor(self) -> int | None:
        """The lowest position a sink still needs (the lowest cursor + 1), None without any."""
