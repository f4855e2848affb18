"""Crashes and shutdowns under load: what was acknowledged survives, with its position.

A server with ``TIDINGS_SQLITE_SYNCHRONOUS=FULL`` is killed with SIGKILL (or stopped with
SIGTERM) while publishers are writing; after a restart on the same data directory every
acknowledged event must be there with the seq it was acknowledged with, and nothing may be
half-written: every stored event is one that was sent, complete, and every batch is all there
or not at all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, ServerStore
from tests.integration.test_concurrency_api import LeanClient

PUBLISHERS = 16
BATCH_EVERY = 4  # every 4th request of a publisher is a batch
BATCH_SIZE = 5
ACKS_BEFORE_SIGNAL = 1000  # events acknowledged before the signal is sent
FIELDS = {
    "id", "seq", "type", "source", "subject", "time", "received_at", "trace_id",
    "idempotency_key", "data", "metadata",
}  # fmt: skip


@pytest.fixture
def durable(tmp_path: Path, server_store: ServerStore) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "data", env={"TIDINGS_SQLITE_SYNCHRONOUS": "FULL"}, store=server_store
    )
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


@dataclass
class Ledger:
    """What the publishers sent and what the server acknowledged."""

    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # by event id
    batches: list[list[str]] = field(default_factory=list)  # ids of each batch request
    acked: dict[str, int] = field(default_factory=dict)  # event id -> acknowledged seq
    refusals: list[tuple[int, Any]] = field(default_factory=list)  # answers other than 201


async def flood(server: ServerProcess, ledger: Ledger, cycle: int, stop: asyncio.Event) -> None:
    """Publish singles and batches from many connections until ``stop`` or the connection
    breaks (the server died)."""

    async def publisher(number: int) -> None:
        async with LeanClient(server.url) as client:
            n = 0
            while not stop.is_set():
                count = BATCH_SIZE if n % BATCH_EVERY == 0 else 1
                events: list[dict[str, Any]] = []
                for _ in range(count):
                    event: dict[str, Any] = {
                        "id": f"c{cycle}-p{number}-{n}-{uuid.uuid4().hex[:6]}",
                        "type": "durable.write",
                        "source": f"publisher-{number}",
                        "subject": f"cycle-{cycle}",
                        "data": {"n": n, "text": "x" * (n % 50), "nested": {"list": [n, None]}},
                        "metadata": {"cycle": cycle},
                    }
                    ledger.sent[event["id"]] = event
                    events.append(event)
                    n += 1
                if count > 1:
                    ledger.batches.append([e["id"] for e in events])
                try:
                    status, body = await client.post(
                        "/v1/events", events if count > 1 else events[0]
                    )
                except (OSError, asyncio.IncompleteReadError):
                    return  # the server is gone; what was in flight may or may not be stored
                if status != 201:
                    ledger.refusals.append((status, body))
                    return
                results = body["events"] if count > 1 else [body]
                for event, result in zip(events, results, strict=True):
                    assert result["id"] == event["id"] and result["duplicate"] is False
                    ledger.acked[result["id"]] = result["seq"]

    await asyncio.gather(*(publisher(p) for p in range(PUBLISHERS)))


async def load_then(server: ServerProcess, ledger: Ledger, cycle: int, sig: int) -> int:
    """Flood, send ``sig`` once enough is acknowledged, let the publishers notice; the exit
    code."""
    stop = asyncio.Event()
    publishing = asyncio.create_task(flood(server, ledger, cycle, stop))
    goal = len(ledger.acked) + ACKS_BEFORE_SIGNAL
    for _ in range(600):
        if len(ledger.acked) >= goal or publishing.done():
            break
        await asyncio.sleep(0.05)
    if publishing.done():
        publishing.result()  # raises what stopped the publishers, if anything did
        raise AssertionError("the publishers stopped before the signal")
    code = await asyncio.to_thread(server.stop, sig)
    stop.set()
    await asyncio.wait_for(publishing, 60)
    return code


def read_back(server: ServerProcess) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=120.0) as client:
        answer = client.get("/v1/events/export", params={"order": "asc"})
        assert answer.status_code == 200
    return [json.loads(line) for line in answer.text.splitlines()]


def parse_time(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_store(server: ServerProcess, ledger: Ledger) -> list[dict[str, Any]]:
    """Every acknowledged event with its seq, ordered and complete; nothing half-written."""
    stored = read_back(server)
    by_id = {e["id"]: e for e in stored}
    assert len(by_id) == len(stored), "an event id is stored twice"
    missing = [i for i in ledger.acked if i not in by_id]
    assert not missing, f"{len(missing)} acknowledged events were lost, e.g. {missing[:3]}"
    moved = [i for i, seq in ledger.acked.items() if by_id[i]["seq"] != seq]
    assert not moved, f"acknowledged events changed position: {moved[:3]}"
    seqs = [e["seq"] for e in stored]
    assert all(a < b for a, b in itertools.pairwise(seqs)), "seqs are not increasing"
    stamps = [parse_time(e["received_at"]) for e in stored]
    assert stamps == sorted(stamps), "received_at went backwards"
    for event in stored:
        assert set(event) == FIELDS
        sent = ledger.sent.get(event["id"])
        assert sent is not None, f"stored an event nobody sent: {event['id']}"
        for name in ("type", "source", "subject", "data", "metadata"):
            assert event[name] == sent[name], (event["id"], name)
        assert re.fullmatch(r"[0-9a-f]{32}", event["trace_id"])
        parse_time(event["time"])
    for batch in ledger.batches:
        present = [i in by_id for i in batch]
        assert all(present) or not any(present), f"a batch was stored in part: {batch}"
    return stored


async def test_events_acknowledged_before_a_kill_9_survive_with_their_positions(
    durable: ServerProcess,
) -> None:
    ledger = Ledger()
    highest = 0
    await asyncio.to_thread(durable.start)
    for cycle in range(2):  # the second crash hits a store that already recovered once
        code = await load_then(durable, ledger, cycle, signal.SIGKILL)
        assert code == -signal.SIGKILL
        await asyncio.to_thread(durable.start)
        stored = await asyncio.to_thread(check_store, durable, ledger)
        assert len(ledger.acked) >= ACKS_BEFORE_SIGNAL * (cycle + 1)
        assert stored[-1]["seq"] > highest
        highest = stored[-1]["seq"]
    async with LeanClient(durable.url) as client:
        status, body = await client.post("/v1/events", {"type": "after.restart"})
    assert status == 201
    assert body["seq"] > highest, "a position was reused after the crash"


async def test_sigterm_during_load_exits_zero_and_keeps_every_acknowledged_event(
    durable: ServerProcess,
) -> None:
    ledger = Ledger()
    await asyncio.to_thread(durable.start)
    code = await load_then(durable, ledger, 0, signal.SIGTERM)
    assert code == 0, durable.log()
    assert "Traceback" not in durable.log()
    for status, body in ledger.refusals:
        assert status == 503, (status, body)
        assert body["error"]["code"] in {"store_closed", "shutting_down", "not_ready"}
    await asyncio.to_thread(durable.start)
    stored = await asyncio.to_thread(check_store, durable, ledger)
    assert len(stored) >= len(ledger.acked) >= ACKS_BEFORE_SIGNAL
