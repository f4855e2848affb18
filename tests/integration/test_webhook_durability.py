"""Deliveries survive crashes: a server killed with SIGKILL while deliveries are pending or
queued delivers every event after a restart (at least once), and fans out to many endpoints.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.receiver import (
    Receiver,
    create_endpoint,
    deliveries,
    poll,
    respond,
)
from tests.integration.server import ServerProcess
from tidings.store import open_backend
from tidings.store.deliveries import Delivery

ORPHAN = "01a21300-0000-7000-8000-00000000beef"
ENV = {
    "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
    "TIDINGS_WEBHOOK_TIMEOUT_S": "5",
    "TIDINGS_SQLITE_SYNCHRONOUS": "FULL",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def publish_batches(http: httpx.Client, type_: str, count: int, size: int = 50) -> list[str]:
    """Publish ``count`` events in batches; their ids, as acknowledged."""
    ids: list[str] = []
    for start in range(0, count, size):
        batch = [{"type": type_, "data": {"n": n}} for n in range(start, min(count, start + size))]
        answer = http.post("/v1/events", json=batch)
        assert answer.status_code == 201, answer.text
        ids.extend(e["id"] for e in answer.json()["events"])
    return ids


def assert_one_delivery_per_event(
    http: httpx.Client, webhook_id: str, published: list[str]
) -> list[dict[str, Any]]:
    """The dispatcher created exactly one delivery per matching event, crash or not."""
    found = deliveries(http, webhook_id)
    counts = Counter(d["event_id"] for d in found)
    assert set(counts) == set(published)
    assert max(counts.values()) == 1, counts.most_common(3)
    return found


def test_deliveries_waiting_for_a_retry_survive_a_kill_and_arrive_after_restart(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    env = {**ENV, "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0,1,2,2,2,2,2,2,2,2"}
    server = start_server(env=env)
    receiver.stop()  # down: every first attempt is refused and waits for a retry
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        endpoint = create_endpoint(http, receiver.url, events=["crash.#"])
        published = publish_batches(http, "crash.pending", 300)
        poll(
            lambda: deliveries(http, endpoint["id"]),
            lambda found: sum(1 for d in found if d["attempts"]) >= 50,
            what="refused first attempts",
        )
        published += publish_batches(http, "crash.late", 200)  # some not even dispatched yet
    server.kill()

    server.start()
    receiver.start()
    receiver.wait_events(published, timeout=60)
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        found = poll(
            lambda: assert_one_delivery_per_event(http, endpoint["id"], published),
            lambda found: all(d["status"] == "succeeded" for d in found),
            timeout=60,
            what="every delivery succeeded",
        )
    assert len(found) == len(published)
    refused_then_sent = [d for d in found if len(d["attempts"]) > 1]
    assert refused_then_sent, "some deliveries were attempted before the crash"
    for delivery in refused_then_sent:
        assert all(a["status_code"] is None for a in delivery["attempts"][:-1])
        assert delivery["attempts"][-1]["status_code"] == 200


def test_a_queue_being_delivered_survives_a_kill_and_completes_after_restart(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    env = {**ENV, "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0,0.5,1,1,1"}
    server = start_server(env=env)
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        endpoint = create_endpoint(http, receiver.url, events=["queue.#"], rate_limit=100)
        published = publish_batches(http, "queue.item", 600, size=100)
        receiver.wait_count(60)
    server.kill()
    before_restart = len(receiver.received())
    assert before_restart < len(published), "the kill came after everything was delivered"

    server.start()
    got = receiver.wait_events(published, timeout=60)
    counts = Counter(r.event_id for r in got)
    assert set(counts) == set(published)
    # Sent again: only what was in flight or not yet recorded when the process died.
    again = sum(counts.values()) - len(published)
    assert again <= 40, again
    ids_by_event: dict[str, set[str]] = {}  # every copy of an event has the same webhook-id
    for request in got:
        ids_by_event.setdefault(request.event_id, set()).add(request.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in ids_by_event.values())
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        poll(
            lambda: assert_one_delivery_per_event(http, endpoint["id"], published),
            lambda found: all(d["status"] == "succeeded" for d in found),
            timeout=60,
            what="every delivery succeeded",
        )


def test_a_hundred_endpoints_matching_everything_each_get_every_event(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = start_server(env={**ENV, "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0,0.5,1,1,1"})
    receiver.fail_first(20, respond(503, b"warming up"))  # a few need a retry
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        hooks = [create_endpoint(http, f"{receiver.url}?n={n}", events=["#"]) for n in range(100)]
        published = [
            http.post("/v1/events", json={"type": "fan.single", "data": {"n": n}}).json()["id"]
            for n in range(4)
        ]
        published += publish_batches(http, "fan.batch", 6, size=3)
        expected = {(f"/hook?n={n}", e) for n in range(100) for e in published}
        got = receiver.wait_for(
            lambda seen: expected <= {(r.path, r.event_id) for r in seen},
            timeout=90,
            what="every event at every endpoint",
        )
        assert {(r.path, r.event_id) for r in got} == expected
        for hook in hooks[::25]:
            assert_one_delivery_per_event(http, hook["id"], published)


async def dispatch_behind_the_servers_back(server: ServerProcess, delivery: Delivery) -> None:
    """Write a delivery into the stopped server's store, as a crash in between would leave it."""
    backend = open_backend(server.store_url(), server.data_dir)
    await backend.open()
    try:
        await backend.deliveries.dispatch([delivery], {})
    finally:
        await backend.close()


def test_a_pending_delivery_left_for_a_deleted_endpoint_is_cancelled_and_frees_retention(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    """A delivery the dispatcher wrote just after its endpoint was deleted (a race, or a crash
    in between) must not stay pending: it would keep retention from deleting anything."""
    server = start_server(env={**ENV, "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0,0.5"})
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        endpoint = create_endpoint(http, receiver.url, events=["orphan.#"])
        event = http.post("/v1/events", json={"type": "orphan.x"}).json()
        receiver.wait_events([event["id"]])
    assert server.stop() == 0
    orphan = Delivery(
        ORPHAN, "default", "wh_deleted", event["seq"], event["id"], "msg_orphan", "pending",
        0, 2, 0, 0, 0,
    )  # fmt: skip
    asyncio.run(dispatch_behind_the_servers_back(server, orphan))

    server.start()
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        poll(
            lambda: http.get(f"/v1/deliveries/{ORPHAN}").json()["status"],
            lambda status: status == "cancelled",
            what="the orphaned delivery cancelled",
        )
        purge = subprocess.run(
            [
                sys.executable, "-m", "tidings", "purge",
                *server.store_options(), "--older-than-days", "0",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert purge.returncode == 0, purge.stderr
        assert http.get(f"/v1/events/{event['id']}").status_code in (404, 410)
        assert http.get(f"/v1/webhooks/{endpoint['id']}").json()["active"] is True
    assert receiver.event_ids() == [event["id"]]
