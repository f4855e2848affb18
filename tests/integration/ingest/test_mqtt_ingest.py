"""MQTT ingest against a real Mosquitto started by the test and a real server process:
stored, parked and republished, and nothing lost across restarts of Tidings or the broker."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.ingest.harness import Broker, IngestServer, dead_letters, events, wait_for
from tidings.envelope import Limits
from tidings.ingest.backoff import Backoff
from tidings.ingest.intake import Intake
from tidings.ingest.mqtt import MqttIngest
from tidings.ingest.mqtt_config import parse_mqtt
from tidings.publish import Publisher
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor
from tidings.testing import MemoryDeadLetters, MemoryStore

pytestmark = pytest.mark.mqtt
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = Broker(tmp_path).start()
    yield running
    running.stop()


def config(path: Path, broker: Broker, protocol: str = "3.1.1") -> Path:
    path.write_text(
        f"""
[mqtt]
url = "{broker.url}"
client_id = "tidings-test-{uuid.uuid4().hex[:8]}"
protocol = "{protocol}"
keepalive_s = 5

[[mqtt.subscribe]]
filter = "tracker/events/#"
qos = 1
strip_prefix = "tracker/events"
dlq_prefix = "tracker/dlq"
"""
    )
    return path


def server_for(tmp_path: Path, broker: Broker, protocol: str = "3.1.1") -> IngestServer:
    env = {"TIDINGS_CONFIG": str(config(tmp_path / "tidings.toml", broker, protocol))}
    return IngestServer(tmp_path / "data", env=env)


class Client:
    """A paho client of the test's own: publishes with QoS 1, or collects a subscription."""

    def __init__(self, broker: Broker, subscribe: str | None = None) -> None:
        self.received: list[paho.MQTTMessage] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = lambda c, u, m: self.received.append(m)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if subscribe is not None:
            self.client.subscribe(subscribe, qos=1)
            assert self._subscribed.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def envelope(key: str, payload: Any) -> bytes:
    return orjson.dumps(
        {
            "trace_id": TRACE,
            "ts": "2026-11-23T10:00:00Z",
            "kind": "tracker",
            "idempotency_key": key,
            "payload": payload,
        }
    )


def wait_subscribed(server: IngestServer, broker: Broker) -> None:
    """Publish probes until one is stored: the server's subscription is in place."""
    probe = Client(broker)
    try:
        marker = uuid.uuid4().hex

        def arrived() -> bool:
            probe.publish("tracker/events/probe/ready", orjson.dumps({"marker": marker}))
            time.sleep(0.1)
            return any(
                e["data"] == {"marker": marker} for e in events(server.url, type="probe.ready")
            )

        wait_for(arrived, 20, "the server to subscribe")
    finally:
        probe.close()


def keys(server: IngestServer, event_type: str) -> list[str]:
    return [e["idempotency_key"] for e in events(server.url, type=event_type)]


def test_valid_messages_are_stored_and_invalid_ones_parked_and_sent_to_the_dlq(
    tmp_path: Path, broker: Broker
) -> None:
    server = server_for(tmp_path, broker).start()
    dlq = Client(broker, subscribe="tracker/dlq/#")
    wait_subscribed(server, broker)
    producer = Client(broker)
    producer.publish("tracker/events/projects/created", envelope("p-1", {"id": "p-1"}))
    producer.publish("tracker/events/readings/taken", b'{"celsius": 21}')
    producer.publish("tracker/events/bad/json", b"this is not json")
    producer.publish("tracker/events/bad/envelope", orjson.dumps({"kind": "x", "payload": {}}))
    producer.publish("tracker/events/bad/binary", b"\x00\xff\xfe")
    producer.close()

    (created,) = wait_for(
        lambda: events(server.url, type="projects.created"), what="the envelope event"
    )
    assert (created["source"], created["idempotency_key"], created["trace_id"]) == (
        "mqtt",
        "p-1",
        TRACE,
    )
    assert created["time"] == "2026-11-23T10:00:00.000Z"
    assert created["data"] == {"id": "p-1"}
    assert created["metadata"] == {"kind": "tracker", "topic": "tracker/events/projects/created"}
    (reading,) = wait_for(lambda: events(server.url, type="readings.taken"), what="the data event")
    assert reading["data"] == {"celsius": 21}
    assert reading["metadata"] == {"topic": "tracker/events/readings/taken"}

    def three_letters() -> list[dict[str, Any]] | None:
        found = dead_letters(server.url, source="mqtt")
        return found if len(found) == 3 else None

    letters = wait_for(three_letters, what="3 dead letters")
    by_topic = {d["topic"]: d for d in letters}
    assert by_topic["tracker/events/bad/json"]["reason"].startswith("not_json")
    assert by_topic["tracker/events/bad/json"]["raw"] == "this is not json"
    assert by_topic["tracker/events/bad/envelope"]["reason"].startswith("invalid_envelope")
    assert by_topic["tracker/events/bad/binary"]["raw_encoding"] == "base64"

    wait_for(lambda: len(dlq.received) == 3, what="3 DLQ messages")
    republished = {m.topic: orjson.loads(m.payload) for m in dlq.received}
    dlq.close()
    assert set(republished) == {
        "tracker/dlq/tracker/events/bad/json",
        "tracker/dlq/tracker/events/bad/envelope",
        "tracker/dlq/tracker/events/bad/binary",
    }
    message = republished["tracker/dlq/tracker/events/bad/json"]
    assert set(message) == {"original_topic", "reason", "received_at", "payload"}
    assert message["original_topic"] == "tracker/events/bad/json"
    assert message["payload"] == "this is not json"
    assert message["reason"] == by_topic["tracker/events/bad/json"]["reason"]
    assert republished["tracker/dlq/tracker/events/bad/binary"]["payload_encoding"] == "base64"
    assert server.stop() == 0


def test_messages_published_while_tidings_is_down_arrive_when_it_starts(
    tmp_path: Path, broker: Broker
) -> None:
    server = server_for(tmp_path, broker, protocol="5").start()
    wait_subscribed(server, broker)
    assert server.stop() == 0
    producer = Client(broker)
    sent = [f"offline-{n}" for n in range(50)]
    for key in sent:
        producer.publish("tracker/events/offline/sent", envelope(key, {"key": key}))
    producer.close()
    server.start()
    wait_for(lambda: len(keys(server, "offline.sent")) == len(sent), what="every offline message")
    assert sorted(keys(server, "offline.sent")) == sorted(sent)
    assert server.stop() == 0


def test_ingestion_resumes_after_the_broker_restarts_and_streams_are_told(
    tmp_path: Path, broker: Broker
) -> None:
    server = server_for(tmp_path, broker).start()
    wait_subscribed(server, broker)
    with httpx.stream(
        "GET", server.url + "/v1/events/stream", params={"type": "none.match"}, timeout=20
    ) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: connected"
        producer = Client(broker)
        producer.publish("tracker/events/before/restart", envelope("before", {}))
        producer.close()
        wait_for(lambda: keys(server, "before.restart"), what="the message before the restart")

        broker.stop()
        broker.start()
        wait_subscribed(server, broker)
        producer = Client(broker)
        producer.publish("tracker/events/after/restart", envelope("after", {}))
        producer.close()
        wait_for(lambda: keys(server, "after.restart"), what="the message after the restart")

        codes: list[dict[str, Any]] = []
        for line in lines:
            if line.startswith("data:") and '"source_' in line:
                codes.append(orjson.loads(line.removeprefix("data:")))
            if len(codes) == 2:
                break
    assert [c["code"] for c in codes] == ["source_lost", "source_restored"]
    assert all(c["source"] == "mqtt" and c["message"] for c in codes)
    assert server.stop() == 0


def test_no_message_is_lost_when_tidings_is_killed_while_messages_flow(
    tmp_path: Path, broker: Broker
) -> None:
    server = server_for(tmp_path, broker).start()
    wait_subscribed(server, broker)
    sent = [f"flow-{n}" for n in range(400)]
    producer = Client(broker)
    done = threading.Event()

    def produce() -> None:
        for key in sent:
            producer.publish("tracker/events/flow/item", envelope(key, {"key": key}))
            time.sleep(0.002)
        done.set()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    wait_for(lambda: len(keys(server, "flow.item")) >= 60, what="messages to flow")
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(0.3)
    server.start()
    assert done.wait(30)
    thread.join()
    producer.close()
    wait_for(lambda: len(keys(server, "flow.item")) >= len(sent), 30, "every message")
    stored = keys(server, "flow.item")
    assert sorted(stored) == sorted(sent)  # each once: a redelivery dedupes by its key
    assert dead_letters(server.url, source="mqtt") == []
    assert server.stop() == 0


async def test_the_adapter_reports_its_state_and_counts_for_readiness(broker: Broker) -> None:
    store = MemoryStore()
    await store.open()
    raw = {
        "url": broker.url,
        "client_id": f"status-{uuid.uuid4().hex[:6]}",
        "subscribe": [{"filter": "s/#"}],
    }
    adapter = MqttIngest(
        parse_mqtt(raw),
        Intake(Publisher(store), MemoryDeadLetters(), Limits()),
        StreamRegistry(),
        backoff=Backoff(0.05, 0.2),
    )
    supervisor = Supervisor()
    adapter.start(supervisor)
    deadline = time.monotonic() + 10
    while adapter.state != "connected":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)

    def produce() -> None:
        producer = Client(broker)
        producer.publish("s/a", b"{}")
        producer.publish("s/b", b"not json")
        producer.close()

    await asyncio.to_thread(produce)
    while adapter.counts["received"] < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    status = adapter.status()
    assert (status["state"], status["broker"], status["subscriptions"]) == (
        "connected",
        broker.url,
        ["s/#"],
    )
    assert (status["received"], status["stored"], status["dead_letters"]) == (2, 1, 1)
    broker.stop()
    while adapter.state == "connected":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert adapter.status()["last_error"]
    await adapter.stop(supervisor)
    assert adapter.status()["state"] == "stopped"
    await store.close()
