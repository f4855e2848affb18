"""Outbound deliveries end to end: a real server process POSTs to a real receiver on loopback.

The receiver's behaviour is scripted per request (errors, timeouts, dropped connections,
throttling, redirects, 410), and the server's attempt log is read back through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.module_server import server_and_client
from tests.integration.receiver import (
    Action,
    Receiver,
    create_endpoint,
    deliveries,
    drop,
    hang,
    poll,
    publish,
    respond,
    wait_delivery,
)
from tests.integration.server import ServerProcess
from tidings import __version__

SCHEDULE = "0,0.3,0.3,0.3,0.3"
ATTEMPTS = 5
TIMEOUT_S = 1.0
THROTTLE_S = 0.5
ENV = {
    "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
    "TIDINGS_WEBHOOK_RETRY_SCHEDULE": SCHEDULE,
    "TIDINGS_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
    "TIDINGS_WEBHOOK_THROTTLE_S": str(THROTTLE_S),
}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


server, client = server_and_client("delivery", ENV)


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """Start receivers; all are shut down at the end of the test."""
    started: list[Receiver] = []

    def start() -> Receiver:
        started.append(Receiver().start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.shutdown()


@pytest.fixture
def receiver(receivers: Callable[[], Receiver]) -> Receiver:
    return receivers()


@pytest.fixture
def endpoints(client: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create endpoints; they are deleted at the end of the test so they stop receiving."""
    created: list[str] = []

    def create(url: str, **fields: Any) -> dict[str, Any]:
        endpoint = create_endpoint(client, url, **fields)
        created.append(endpoint["id"])
        return endpoint

    yield create
    for webhook_id in created:
        client.delete(f"/v1/webhooks/{webhook_id}")


def prefix() -> str:
    return "d" + uuid.uuid4().hex[:10]


def attempts_of(client: httpx.Client, delivery: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/v1/deliveries/{delivery['id']}").json()["attempts"]
    return found


def at(attempt: dict[str, Any]) -> float:
    return datetime.fromisoformat(attempt["at"]).timestamp()


# -- the request ---------------------------------------------------------------------------


def test_the_request_is_a_signed_json_post_with_the_event_and_the_documented_headers(
    client: httpx.Client, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    p = prefix()
    endpoint = endpoints(
        receiver.url + "?tenant=blue&x=1",
        events=[f"{p}.#"],
        headers={"Authorization": "Bearer abc", "X-Team": "ops"},
    )
    published = publish(
        client,
        f"{p}.order.created",
        source="shop",
        subject="order-7",
        data={"total": 12.5, "items": ["a", "b"]},
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    sent_at = time.time()
    request = receiver.wait_events([published["id"]])[0]

    assert request.method == "POST"
    assert request.path == "/hook?tenant=blue&x=1"
    body = request.json()
    assert set(body) == {"event", "delivered_at"}
    assert body["event"] == client.get(f"/v1/events/{published['id']}").json()
    assert body["event"]["seq"] == published["seq"]
    delivered_at = datetime.fromisoformat(body["delivered_at"]).timestamp()
    assert abs(delivered_at - sent_at) < 30

    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"tidings/{__version__}"
    assert headers["authorization"] == "Bearer abc" and headers["x-team"] == "ops"
    assert headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - sent_at) < 30
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01") and len(parent_id) == 16
    assert (
        Webhook(endpoint["secret"]).verify(request.body, headers)["event"]["id"]
        == (published["id"])
    )
    key = endpoint["secret"].encode()
    assert headers["x-signature"] == "sha256=" + (
        hmac.new(key, request.body, hashlib.sha256).hexdigest()
    )
    delivery = wait_delivery(client, endpoint["id"], published["id"], "succeeded")
    assert delivery["message_id"] == headers["webhook-id"]


def test_a_plain_secret_signs_as_its_utf8_bytes(
    client: httpx.Client, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    p = prefix()
    secret = "plain secret, sixteen+ characters"
    endpoints(receiver.url, events=[f"{p}.#"], secret=secret)
    event_id = publish(client, f"{p}.x")["id"]
    request = receiver.wait_events([event_id])[0]
    Webhook(secret.encode()).verify(request.body, request.headers)
    digest = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-signature"] == f"sha256={digest}"


# -- which events go where -----------------------------------------------------------------


def test_each_endpoint_gets_exactly_the_events_its_filter_matches(
    client: httpx.Client, receivers: Callable[[], Receiver], endpoints: Callable[..., Any]
) -> None:
    p = prefix()
    specs: dict[str, dict[str, Any]] = {
        "orders": {"events": [f"{p}.order.*"]},
        "everything": {"events": [f"{p}.#"]},
        "created": {"events": [f"{p}.*.created"]},
        "two": {"events": [f"{p}.order.created", f"{p}.invoice.paid"]},
        "no_echo": {"events": [f"{p}.#"], "exclude_source": "erp"},
        "from_shop": {"events": [f"{p}.#"], "source": ["shop", "pos"]},
        "subject": {"events": [f"{p}.#"], "subject": "door-1"},
        "data": {"events": [f"{p}.#"], "filter": {"data.category": "access,security"}},
        "inactive": {"events": [f"{p}.#"], "active": False},
    }
    hooks = {name: endpoints(receivers().url, **spec) for name, spec in specs.items()}
    published = {
        "order_created": publish(client, f"{p}.order.created", source="shop")["id"],
        "order_deep": publish(client, f"{p}.order.line.added", source="erp")["id"],
        "invoice_paid": publish(client, f"{p}.invoice.paid", source="pos", subject="door-1")["id"],
        "user_created": publish(
            client, f"{p}.user.created", source="erp", data={"category": "security"}
        )["id"],
        "bare": publish(client, p, data={"category": "other"})["id"],
    }
    expected = {
        "orders": {"order_created"},
        "everything": set(published),
        "created": {"order_created", "user_created"},
        "two": {"order_created", "invoice_paid"},
        "no_echo": {"order_created", "invoice_paid", "bare"},
        "from_shop": {"order_created", "invoice_paid"},
        "subject": {"invoice_paid"},
        "data": {"user_created"},
        "inactive": set(),
    }
    # A last event every active endpoint matches: once its delivery exists, the deliveries of
    # every earlier event exist too (the dispatcher writes a page's deliveries together).
    last = publish(
        client, f"{p}.order.created", source="shop", subject="door-1", data={"category": "access"}
    )["id"]
    for name, endpoint in hooks.items():
        if name == "inactive":
            continue
        wait_delivery(client, endpoint["id"], last, "succeeded")
        got = {d["event_id"] for d in deliveries(client, endpoint["id"])} - {last}
        assert got == {published[k] for k in expected[name]}, name
    assert deliveries(client, hooks["inactive"]["id"]) == []
    # Every active endpoint has dispatched the log: nothing waits behind a cursor, and with
    # no publishes queueing delivery is not taking turns.
    state = client.get("/v1/stats").json()["deliveries"]
    assert state["cursor_lag"] == 0
    assert state["yielding_to_publishes"] is False
    assert "tidings_webhook_cursor_lag 0.0" in client.get("/metrics").text


def test_an_inactive_endpoint_receives_nothing_and_a_reenabled_one_only_new_events(
    client: httpx.Client, receivers: Callable[[], Receiver], endpoints: Callable[..., Any]
) -> None:
    p = prefix()
    quiet, witness = receivers(), receivers()
    endpoint = endpoints(quiet.url, events=[f"{p}.#"], active=False)
    endpoints(witness.url, events=[f"{p}.#"])
    missed = publish(client, f"{p}.one")["id"]
    witness.wait_events([missed])
    assert client.patch(f"/v1/webhooks/{endpoint['id']}", json={"active": True}).status_code == 200
    fresh = publish(client, f"{p}.two")["id"]
    witness.wait_events([fresh])
    quiet.wait_events([fresh])
    assert quiet.event_ids() == [fresh]


# -- failures, retries and the attempt log -------------------------------------------------


FAILURES: dict[str, tuple[Action, int | None, str | None]] = {
    # name: (what the receiver does, status code logged, error text logged)
    "500": (respond(500, b"boom: database is down"), 500, None),
    "timeout": (hang(TIMEOUT_S + 2), None, "timed out"),
    "dropped": (drop(), None, "disconnected"),
    "429": (respond(429, b"slow down", {"Retry-After": "1"}), 429, None),
}


@pytest.mark.parametrize("kind", list(FAILURES))
@pytest.mark.parametrize("k", [2])
def test_a_receiver_that_fails_k_times_gets_the_event_on_attempt_k_plus_1_all_logged(
    client: httpx.Client,
    receiver: Receiver,
    endpoints: Callable[..., dict[str, Any]],
    kind: str,
    k: int,
) -> None:
    action, status_code, error = FAILURES[kind]
    receiver.fail_first(k, action)
    p = prefix()
    endpoint = endpoints(receiver.url, events=[f"{p}.#"])
    event_id = publish(client, f"{p}.x")["id"]

    delivery = wait_delivery(client, endpoint["id"], event_id, "succeeded", timeout=60)
    requests = receiver.received()
    assert len(requests) == k + 1
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # the same for every attempt
    assert {r.event_id for r in requests} == {event_id}
    attempts = delivery["attempts"]
    assert len(attempts) == k + 1
    for attempt in attempts[:k]:
        assert attempt["status_code"] == status_code
        assert attempt["latency_ms"] is not None and attempt["latency_ms"] >= 0
        if error is None:
            assert attempt["error"] is None
            assert attempt["response_body"] == action.body.decode()
        else:
            assert error in attempt["error"] and attempt["response_body"] is None
    assert attempts[-1]["status_code"] == 200 and attempts[-1]["error"] is None
    assert attempts[-1]["response_body"] == "ok"
    assert delivery["next_attempt_at"] is None
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert all(g >= 0.3 * 0.8 for g in gaps)  # the schedule's delay, less the jitter
    if kind == "timeout":
        assert all(a["latency_ms"] >= TIMEOUT_S * 1000 * 0.9 for a in attempts[:k])
        assert all(a["latency_ms"] < TIMEOUT_S * 1000 * 1.9 for a in attempts[:k])
        assert all(g >= TIMEOUT_S + THROTTLE_S * 0.9 for g in gaps)
    if kind == "429":
        # Retry-After: 1 is measured from the answer, and replaces the 0.3 s of the schedule
        assert all(g >= 0.95 for g in gaps)


def test_a_refused_connection_is_retried_until_the_receiver_listens(
    client: httpx.Client, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    p = prefix()
    endpoint = endpoints(receiver.url, events=[f"{p}.#"])
    receiver.stop()
    event_id = publish(client, f"{p}.x")["id"]
    refused = poll(
        lambda: deliveries(client, endpoint["id"]),
        lambda found: bool(found) and len(found[0]["attempts"]) >= 1,
        what="a refused attempt",
    )[0]
    receiver.start()
    delivery = wait_delivery(client, endpoint["id"], event_id, "succeeded")
    attempts = delivery["attempts"]
    assert refused["id"] == delivery["id"] and 2 <= len(attempts) <= ATTEMPTS
    assert all(a["status_code"] is None for a in attempts[:-1])
    assert all("ConnectError" in a["error"] for a in attempts[:-1])
    assert attempts[-1]["status_code"] == 200
    assert receiver.event_ids() == [event_id]


@pytest.mark.parametrize(
    "answer",
    [("x" * 1000 + "\n") * 10, "é" * 3000],  # two-byte characters: 4096 cuts none in half
    ids=["ascii", "utf8"],
)
def test_the_attempt_log_keeps_at_most_4_kib_of_the_answer(
    client: httpx.Client,
    receiver: Receiver,
    endpoints: Callable[..., dict[str, Any]],
    answer: str,
) -> None:
    receiver.fail_first(1, respond(500, ("!" + answer).encode()))  # "!" shifts é off 2 bytes
    p = prefix()
    endpoint = endpoints(receiver.url, events=[f"{p}.#"])
    event_id = publish(client, f"{p}.x")["id"]
    attempts = wait_delivery(client, endpoint["id"], event_id, "succeeded")["attempts"]
    kept = attempts[0]["response_body"]
    assert 4000 < len(kept.encode()) <= 4096
    assert ("!" + answer).startswith(kept)  # a prefix, never a half character at the end


def test_a_redirect_is_a_failure_and_is_not_followed_until_the_schedule_is_exhausted(
    client: httpx.Client, receivers: Callable[[], Receiver], endpoints: Callable[..., Any]
) -> None:
    moved, elsewhere = receivers(), receivers()
    moved.default = respond(307, b"", {"Location": elsewhere.url})
    p = prefix()
    endpoint = endpoints(moved.url, events=[f"{p}.#"])
    event_id = publish(client, f"{p}.x")["id"]
    delivery = wait_delivery(client, endpoint["id"], event_id, "failed", timeout=60)
    assert [a["status_code"] for a in delivery["attempts"]] == [307] * ATTEMPTS
    assert delivery["next_attempt_at"] is None
    assert len(moved.received()) == ATTEMPTS
    assert elsewhere.received() == []


def test_manual_retry_and_replay_send_again_with_the_same_webhook_id(
    client: httpx.Client, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    receiver.default = respond(500, b"down")
    p = prefix()
    endpoint = endpoints(receiver.url, events=[f"{p}.#"])
    before = datetime.now().astimezone().isoformat()
    event_ids = [publish(client, f"{p}.x", data={"n": n})["id"] for n in range(3)]
    # Every delivery has used up its attempts before the receiver recovers: a retry is never
    # due sooner than scheduled, so the last one of a delivery may come well after another's.
    failed = [wait_delivery(client, endpoint["id"], e, "failed", timeout=60) for e in event_ids]
    receiver.default = respond(200)
    receiver.choose = lambda r: respond(500) if r.json()["event"]["id"] == event_ids[1] else None
    first_ids = {r.event_id: r.headers["webhook-id"] for r in receiver.received()}
    seen = len(receiver.received())

    # manual retry: one more attempt of the same delivery
    answer = client.post(f"/v1/deliveries/{failed[0]['id']}/retry")
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    retried = wait_delivery(client, endpoint["id"], event_ids[0], "succeeded")
    assert retried["id"] == failed[0]["id"]
    assert len(retried["attempts"]) == ATTEMPTS + 1
    request = receiver.wait_count(seen + 1)[-1]
    assert request.event_id == event_ids[0]
    assert request.headers["webhook-id"] == first_ids[event_ids[0]]

    # replay only the failed ones: event 1 (still failing) and event 2
    seen = len(receiver.received())
    answer = client.post(
        f"/v1/webhooks/{endpoint['id']}/replay", json={"since": before, "only_failed": True}
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"replayed": 2}
    replayed = receiver.wait_for(
        lambda got: {event_ids[1], event_ids[2]} <= {r.event_id for r in got[seen:]}
    )[seen:]
    assert event_ids[0] not in {r.event_id for r in replayed}
    for request in replayed:
        assert request.headers["webhook-id"] == first_ids[request.event_id]
    Webhook(endpoint["secret"]).verify(replayed[0].body, replayed[0].headers)
    wait_delivery(client, endpoint["id"], event_ids[2], "succeeded")


def test_replay_sends_the_window_of_events_under_the_current_filter(
    client: httpx.Client, receivers: Callable[[], Receiver], endpoints: Callable[..., Any]
) -> None:
    p = prefix()
    receiver = receivers()
    # received_at has millisecond precision: a pause keeps each group in its own milliseconds
    early = [publish(client, f"{p}.a", data={"n": 0})["id"]]
    time.sleep(0.01)
    early.append(publish(client, f"{p}.a", data={"n": 1})["id"])
    middle_start = client.get(f"/v1/events/{early[-1]}").json()["received_at"]
    time.sleep(0.01)
    middle = [publish(client, f"{p}.a", data={"n": n})["id"] for n in range(2, 5)]
    skipped = publish(client, f"{p}.b")["id"]
    middle_end = client.get(f"/v1/events/{skipped}").json()["received_at"]
    time.sleep(0.01)
    late = publish(client, f"{p}.a", data={"n": 9})["id"]
    endpoint = endpoints(receiver.url, events=[f"{p}.a"])  # registered after the fact

    answer = client.post(
        f"/v1/webhooks/{endpoint['id']}/replay",
        json={"since": middle_start, "until": middle_end},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["replayed"] == len(middle) + 1  # since is inclusive: early[-1] too
    receiver.wait_events([*middle, early[-1]])  # attempts run concurrently: wait for all
    got = set(receiver.event_ids())
    assert got == {*middle, early[-1]}
    assert skipped not in got and late not in got and early[0] not in got

    everything = client.post(f"/v1/webhooks/{endpoint['id']}/replay", json={})
    assert everything.json()["replayed"] == len(early) + len(middle) + 1
    receiver.wait_events([*early, *middle, late])
    ids = {r.event_id: r.headers["webhook-id"] for r in receiver.received()}
    for request in receiver.received():
        assert request.headers["webhook-id"] == ids[request.event_id]

    client.patch(f"/v1/webhooks/{endpoint['id']}", json={"active": False})
    refused = client.post(f"/v1/webhooks/{endpoint['id']}/replay", json={})
    assert refused.status_code == 409
    bad = client.post(f"/v1/webhooks/{endpoint['id']}/replay", json={"since": "yesterday"})
    assert bad.status_code == 422


def test_a_410_disables_the_endpoint_cancels_its_deliveries_and_says_so_in_an_event(
    client: httpx.Client, receivers: Callable[[], Receiver], endpoints: Callable[..., Any]
) -> None:
    receiver, witness = receivers(), receivers()
    p = prefix()
    receiver.default = respond(410, b"gone for good")
    endpoint = endpoints(receiver.url, events=[f"{p}.#"], rate_limit=1)
    event_ids = [
        e["id"]
        for e in client.post(
            "/v1/events", json=[{"type": f"{p}.x", "data": {"n": n}} for n in range(5)]
        ).json()["events"]
    ]
    shown = poll(
        lambda: client.get(f"/v1/webhooks/{endpoint['id']}").json(),
        lambda e: e["active"] is False,
        what="the endpoint disabled",
    )
    assert "410" in shown["disabled_reason"]
    found = poll(
        lambda: client.get(
            "/v1/events", params={"type": "tidings.webhook.disabled", "subject": endpoint["id"]}
        ).json()["events"],
        lambda events: len(events) == 1,
        what="the tidings.webhook.disabled event",
    )
    assert found[0]["source"] == "tidings"
    assert found[0]["data"]["webhook_id"] == endpoint["id"]
    assert found[0]["data"]["url"] == endpoint["url"]
    by_event = poll(
        lambda: {d["event_id"]: d for d in deliveries(client, endpoint["id"])},
        lambda ds: len(ds) == 5 and all(d["status"] != "pending" for d in ds.values()),
        what="no delivery pending",
    )
    statuses = [by_event[e]["status"] for e in event_ids]
    assert statuses.count("failed") >= 1 and "succeeded" not in statuses
    assert statuses.count("cancelled") >= 1  # rate limited: the rest were still waiting
    received = len(receiver.received())
    witness_hook = endpoints(witness.url, events=[f"{p}.#"])
    after = publish(client, f"{p}.after")["id"]
    wait_delivery(client, witness_hook["id"], after, "succeeded")  # dispatched past it
    assert after not in {d["event_id"] for d in deliveries(client, endpoint["id"])}
    assert len(receiver.received()) == received


def test_retry_of_a_delivery_whose_event_was_purged_answers_410(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = start_server(env=ENV)
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        receiver.default = respond(500, b"no")
        endpoint = create_endpoint(http, receiver.url, events=["purge.#"])
        doomed = publish(http, "purge.old")["id"]
        failed = wait_delivery(http, endpoint["id"], doomed, "failed", timeout=60)
        receiver.default = respond(429, b"later", {"Retry-After": "600"})
        kept = publish(http, "purge.kept")["id"]
        pending = wait_delivery(http, endpoint["id"], kept, "pending")
        poll(
            lambda: http.get(f"/v1/deliveries/{pending['id']}").json()["attempts"],
            lambda attempts: len(attempts) == 1,
            what="the first attempt of the kept event",
        )

        purge = subprocess.run(
            [
                sys.executable, "-m", "tidings", "purge",
                *server.store_options(), "--older-than-days", "0",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert purge.returncode == 0, purge.stderr
        assert http.get(f"/v1/events/{doomed}").status_code in (404, 410)
        assert http.get(f"/v1/events/{kept}").status_code == 200  # a delivery still needs it

        answer = http.post(f"/v1/deliveries/{failed['id']}/retry")
        assert answer.status_code == 410, answer.text
        assert answer.json()["error"]["code"] == "event_purged"


HANGING_TIMEOUT_S = 15.0  # an attempt to a hanging receiver lasts this long
HANGING_ENV = {
    **ENV,
    "TIDINGS_WEBHOOK_TIMEOUT_S": str(HANGING_TIMEOUT_S),
    "TIDINGS_DELIVERY_CONCURRENCY": "8",
}


def test_a_hanging_receiver_does_not_delay_deliveries_to_another(
    start_server: Callable[..., ServerProcess], receivers: Callable[[], Receiver]
) -> None:
    timeout_s = HANGING_TIMEOUT_S
    server = start_server(env=HANGING_ENV)
    stuck, healthy = receivers(), receivers()
    stuck.default = hang(timeout_s + 5)
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        stuck_hook = create_endpoint(http, stuck.url, events=["slow.#", "both.#"])
        create_endpoint(http, healthy.url, events=["fast.#", "both.#"])
        http.post("/v1/events", json=[{"type": "slow.x", "data": {"n": n}} for n in range(40)])
        stuck.wait_count(2)
        # One event at a time, each delivered to the healthy receiver before the next is
        # published ...
        for n in range(15):
            kind = "both" if n % 3 == 0 else "fast"
            event_id = publish(http, f"{kind}.x", data={"n": n})["id"]
            healthy.wait_events([event_id], timeout=timeout_s)
        # ... all while the hanging receiver still held its first attempts: none has ended.
        assert all(not d["attempts"] for d in deliveries(http, stuck_hook["id"]))


def test_retries_of_a_hanging_receiver_do_not_hold_up_retries_to_another(
    start_server: Callable[..., ServerProcess], receivers: Callable[[], Receiver]
) -> None:
    timeout_s = HANGING_TIMEOUT_S
    server = start_server(env=HANGING_ENV)
    stuck, healthy = receivers(), receivers()
    stuck.fail_first(40, respond(500, b"first no"))
    stuck.default = hang(timeout_s + 5)  # every retry hangs
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        stuck_hook = create_endpoint(http, stuck.url, events=["slow.#"])
        healthy_hook = create_endpoint(http, healthy.url, events=["fast.#"])
        http.post("/v1/events", json=[{"type": "slow.x", "data": {"n": n}} for n in range(40)])
        poll(
            lambda: deliveries(http, stuck_hook["id"]),
            lambda found: len(found) == 40 and all(len(d["attempts"]) >= 1 for d in found),
            what="the first attempts of the stuck endpoint",
        )
        stuck.wait_count(42)  # retries have started hanging; the others wait for a slot
        gaps = []
        for n in range(3):
            healthy.fail_first(1, respond(500, b"once"))
            event_id = publish(http, "fast.x", data={"n": n})["id"]
            got = healthy.wait_for(
                lambda seen, e=event_id: sum(r.event_id == e for r in seen) == 2,
                timeout=timeout_s,
                what="the retry of the healthy endpoint",
            )
            first, second = [r.at for r in got if r.event_id == event_id]
            gaps.append(second - first)
        delivery = wait_delivery(http, healthy_hook["id"], event_id, "succeeded")
        assert len(delivery["attempts"]) == 2
    assert max(gaps) < 3.0, gaps  # 0.3 s scheduled; a slot held by the other would be 15 s


def test_changing_an_endpoint_while_events_flow_creates_one_delivery_per_event(
    client: httpx.Client, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    p = prefix()
    endpoint = endpoints(receiver.url, events=[f"{p}.#"])
    published: list[str] = []
    stop = threading.Event()

    def flow() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30.0) as http:
            while not stop.is_set():
                answer = http.post("/v1/events", json=[{"type": f"{p}.x"}] * 5)
                published.extend(e["id"] for e in answer.json()["events"])

    publishers = [threading.Thread(target=flow) for _ in range(2)]
    for publisher in publishers:
        publisher.start()
    path = f"/v1/webhooks/{endpoint['id']}"
    try:
        changes = 0
        while changes < 40 or len(published) < 200:  # change it while events keep coming
            changes += 1
            if changes % 2:
                answer = client.post(f"{path}/rotate-secret")
            else:
                answer = client.patch(path, json={"description": str(changes)})
            assert answer.status_code == 200, answer.text
    finally:
        stop.set()
        for publisher in publishers:
            publisher.join(30)
    receiver.wait_events(published, timeout=60)
    found = poll(
        lambda: deliveries(client, endpoint["id"]),
        lambda found: len(found) >= len(published),
        what="a delivery for every event",
    )
    counts = Counter(d["event_id"] for d in found)
    assert set(counts) == set(published)
    assert max(counts.values()) == 1, counts.most_common(3)


def test_the_rate_limit_of_an_endpoint_is_respected(
    client: httpx.Client, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    p = prefix()
    endpoints(receiver.url, events=[f"{p}.#"], rate_limit=5)
    answer = client.post(
        "/v1/events", json=[{"type": f"{p}.x", "data": {"n": n}} for n in range(20)]
    )
    ids = [e["id"] for e in answer.json()["events"]]
    got = receiver.wait_events(ids, timeout=60)
    times = sorted(r.at for r in got)
    assert times[-1] - times[0] >= (20 - 5) / 5 * 0.9  # a burst of 5, then 5 per second
    for start in times:  # at most the burst plus a second's worth in any second
        assert sum(1 for t in times if start <= t < start + 1.0) <= 5 + 5
    assert len(got) == 20
