"""Concurrent publishers against a real server: nothing lost, nothing doubled, causal order
kept, and racing idempotency keys store once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, ServerStore

PUBLISHERS = 20
EVENTS = 10_000


class LeanClient:
    """A minimal HTTP/1.1 keep-alive JSON client for floods of small requests.

    httpx spends about a millisecond of CPU per request; on a small shared machine that starves
    the server under test more than the load itself does, so the floods use this instead. The
    server sees ordinary HTTP/1.1 requests either way.
    """

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host = host  # the server's address
        self.port = int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def post(
        self, path: str, payload: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST ``payload`` as JSON; the status and the decoded answer. Raises OSError or
        asyncio.IncompleteReadError when the connection breaks."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            answer_headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                answer_headers[name.strip().lower()] = value.strip()
            content = await self._reader.readexactly(int(answer_headers["content-length"]))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self.close()
            raise
        if answer_headers.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split(" ", 2)[1]), json.loads(content)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):  # the server may already have gone away
                await writer.wait_closed()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("concurrency") / "data", store=server_store
    ).start()
    yield process
    process.stop()


def exported(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=120.0) as client:
        answer = client.get("/v1/events/export", params={"order": "asc", **params})
        assert answer.status_code == 200
        return [json.loads(line) for line in answer.text.splitlines()]


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def noise(server: ServerProcess, source: str, stop: asyncio.Event) -> int:
    """Publish small batches until ``stop``; how many events."""
    sent = 0
    async with LeanClient(server.url) as client:
        while not stop.is_set():
            batch = [{"type": "noise", "source": source, "data": sent + i} for i in range(3)]
            status, _ = await client.post("/v1/events", batch)
            assert status == 201
            sent += 3
    return sent


async def test_concurrent_publishers_lose_nothing_and_duplicate_nothing(
    server: ServerProcess,
) -> None:
    source = f"flood-{uuid.uuid4().hex[:8]}"
    commits_before = metric(server, "tidings_store_commit_batch_events_count")
    acked: dict[str, int] = {}
    statuses: list[int] = []

    async def publisher(number: int) -> None:
        async with LeanClient(server.url) as client:
            for n in range(EVENTS // PUBLISHERS):
                event = {"type": "flood.item", "source": source, "data": {"p": number, "n": n}}
                status, body = await client.post("/v1/events", event)
                statuses.append(status)
                if status == 201:
                    assert body["duplicate"] is False
                    assert body["id"] not in acked
                    acked[body["id"]] = body["seq"]

    await asyncio.gather(*(publisher(p) for p in range(PUBLISHERS)))
    assert statuses == [201] * EVENTS
    assert len(acked) == EVENTS
    assert len(set(acked.values())) == EVENTS, "every acknowledged seq is unique"
    stored = await asyncio.to_thread(exported, server, source=source)
    assert len(stored) == EVENTS
    assert {e["id"]: e["seq"] for e in stored} == acked
    seqs = [e["seq"] for e in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == EVENTS
    per_publisher: dict[int, list[int]] = {}
    for event in stored:
        per_publisher.setdefault(event["data"]["p"], []).append(event["data"]["n"])
    assert len(per_publisher) == PUBLISHERS
    assert all(ns == list(range(EVENTS // PUBLISHERS)) for ns in per_publisher.values())
    commits = metric(server, "tidings_store_commit_batch_events_count") - commits_before
    assert 0 < commits < EVENTS, "concurrent publishes share group commits"


async def test_an_event_sent_after_another_was_acknowledged_always_comes_later(
    server: ServerProcess,
) -> None:
    """Relay chains pass a baton between connections: each hop is sent on another connection
    only once the previous hop was acknowledged, while other publishers keep the writer busy."""
    source = f"causal-{uuid.uuid4().hex[:8]}"
    chains, hops = 8, 80
    stop = asyncio.Event()
    pairs: list[tuple[int, int]] = []

    async def chain(number: int) -> None:
        runners = [LeanClient(server.url) for _ in range(3)]
        try:
            previous: int | None = None
            for hop in range(hops):
                event = {"type": "causal.hop", "source": source, "data": {"c": number, "hop": hop}}
                status, body = await runners[hop % len(runners)].post("/v1/events", event)
                assert status == 201
                if previous is not None:
                    pairs.append((previous, body["seq"]))
                previous = body["seq"]
        finally:
            for runner in runners:
                await runner.close()

    background = [asyncio.create_task(noise(server, f"{source}-noise", stop)) for _ in range(4)]
    try:
        await asyncio.gather(*(chain(c) for c in range(chains)))
    finally:
        stop.set()
        noise_sent = await asyncio.gather(*background)
    assert sum(noise_sent) > 0
    assert len(pairs) == chains * (hops - 1)
    assert all(a < b for a, b in pairs), [p for p in pairs if p[0] >= p[1]]
    stored = await asyncio.to_thread(exported, server, source=source)
    assert len(stored) == chains * hops
    for number in range(chains):
        in_seq_order = [e["data"]["hop"] for e in stored if e["data"]["c"] == number]
        assert in_seq_order == list(range(hops))


async def test_an_acknowledged_batch_precedes_a_single_event_sent_afterwards(
    server: ServerProcess,
) -> None:
    """Many pairs across two connections: batch A acknowledged on one, then B sent on the
    other; every event of A comes before B."""
    source = f"pairs-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()

    async def pair_maker(rounds: int) -> list[tuple[int, int]]:
        made = []
        async with LeanClient(server.url) as first, LeanClient(server.url) as second:
            for n in range(rounds):
                batch = [{"type": "pair.a", "source": source, "data": n} for _ in range(3)]
                status_a, body_a = await first.post("/v1/events", batch)
                single = {"type": "pair.b", "source": source, "data": n}
                status_b, body_b = await second.post("/v1/events", single)
                assert (status_a, status_b) == (201, 201)
                made.append((max(r["seq"] for r in body_a["events"]), body_b["seq"]))
        return made

    background = [asyncio.create_task(noise(server, f"{source}-noise", stop)) for _ in range(6)]
    try:
        results = await asyncio.gather(*(pair_maker(60) for _ in range(4)))
    finally:
        stop.set()
        await asyncio.gather(*background)
    pairs = [p for made in results for p in made]
    assert len(pairs) == 240
    assert all(a < b for a, b in pairs)


async def test_racing_the_same_idempotency_key_stores_one_event_and_answers_both_alike(
    server: ServerProcess,
) -> None:
    source = f"race-{uuid.uuid4().hex[:8]}"
    rounds = 300
    clients = [LeanClient(server.url) for _ in range(8)]
    try:

        async def race(round_number: int) -> list[tuple[int, Any]]:
            key = f"{source}-{round_number}"
            event = {"type": "race.won", "source": source, "data": {"round": round_number}}
            pair = clients[2 * (round_number % 4) : 2 * (round_number % 4) + 2]
            racing = (c.post("/v1/events", event, {"Idempotency-Key": key}) for c in pair)
            return list(await asyncio.gather(*racing))

        outcomes: list[list[tuple[int, Any]]] = []
        for start in range(0, rounds, 4):  # four races at a time, each on its own connections
            outcomes.extend(await asyncio.gather(*(race(start + i) for i in range(4))))
    finally:
        for client in clients:
            await client.close()

    for answers in outcomes:
        assert sorted(status for status, _ in answers) == [200, 201], answers
        assert sorted(body["duplicate"] for _, body in answers) == [False, True]
        assert len({(body["id"], body["seq"]) for _, body in answers}) == 1
    stored = await asyncio.to_thread(exported, server, source=source)
    assert len(stored) == rounds
    assert sorted(e["data"]["round"] for e in stored) == list(range(rounds))
    assert {e["idempotency_key"] for e in stored} == {f"{source}-{n}" for n in range(rounds)}
    assert {answers[0][1]["id"] for answers in outcomes} == {e["id"] for e in stored}


async def test_racing_batches_with_the_same_key_store_each_item_once(
    server: ServerProcess,
) -> None:
    source = f"batch-race-{uuid.uuid4().hex[:8]}"
    async with LeanClient(server.url) as one, LeanClient(server.url) as two:
        for round_number in range(50):
            key = f"{source}-{round_number}"
            batch = [
                {"type": "race.item", "source": source, "data": [round_number, i]} for i in range(4)
            ]
            answers = await asyncio.gather(
                *(c.post("/v1/events", batch, {"Idempotency-Key": key}) for c in (one, two))
            )
            assert sorted(status for status, _ in answers) == [200, 201]
            first, second = (body["events"] for _, body in answers)
            assert [(r["id"], r["seq"]) for r in first] == [(r["id"], r["seq"]) for r in second]
    stored = await asyncio.to_thread(exported, server, source=source)
    assert len(stored) == 50 * 4


async def test_racing_the_same_key_with_different_data_stores_one_and_refuses_the_other(
    server: ServerProcess,
) -> None:
    source = f"clash-{uuid.uuid4().hex[:8]}"
    async with LeanClient(server.url) as one, LeanClient(server.url) as two:
        for round_number in range(50):
            key = f"{source}-{round_number}"
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/v1/events",
                        {"type": "clash", "source": source, "data": {"by": who}},
                        {"Idempotency-Key": key},
                    )
                    for who, client in enumerate((one, two))
                )
            )
            assert sorted(status for status, _ in answers) == [201, 409]
            refused = next(body for status, body in answers if status == 409)
            assert refused["error"]["code"] == "idempotency_conflict"
    stored = await asyncio.to_thread(exported, server, source=source)
    assert len(stored) == 50
