"""The MQTT bridge out against a real Mosquitto started by the test and a real subscriber:
first ``MqttBridge`` in-process on a real SQLite store, then inside ``tidings serve``.

Every rule is followed from a durable cursor: events arrive on their rendered topics with the
rule's QoS and retain flag, nothing is lost across broker outages, restarts and kills, and a
graceful restart publishes nothing twice.
"""

from __future__ import annotations

import asyncio
import getpass
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.ingest.harness import Broker, IngestServer, wait_for
from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.ingest.backoff import Backoff
from tidings.ingest.bridge import MqttBridge
from tidings.ingest.mqtt_config import parse_mqtt
from tidings.retention import purge_backend
from tidings.store import Backend, Store, open_backend
from tidings.store.sink_cursors import SinkCursors
from tidings.tasks import Supervisor

pytestmark = pytest.mark.mqtt


@dataclass
class PersistentBroker(Broker):
    """A Mosquitto that keeps sessions across its restarts, so a subscriber with a persistent
    session misses nothing published while it reconnects."""

    extra: str = ""  # more configuration lines

    def start(self) -> PersistentBroker:
        conf = self.directory / f"mosquitto-{self.port}.conf"
        store = self.directory / f"mosquitto-{self.port}-db"
        store.mkdir(exist_ok=True)
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {store}/\nmax_queued_messages 10000\n"
            # Started as root, Mosquitto would drop to a user that cannot write here.
            f"user {getpass.getuser()}\n{self.extra}"
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        log = (self.directory / f"mosquitto-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_for(self._listening, 10, "mosquitto to listen")
        return self


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict[str, Any]
    qos: int
    retain: bool


class Subscriber:
    """A paho client of the test's own with a persistent session: collects what it receives."""

    def __init__(self, broker: Broker, *filters: str, qos: int = 1, persistent: bool = True):
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe([(f, qos) for f in filters])
        assert self._subscribed.wait(10)

    def _message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        item = Received(
            message.topic, orjson.loads(message.payload), message.qos, bool(message.retain)
        )
        with self._lock:
            self._received.append(item)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def ids(self, topic_prefix: str = "") -> list[str]:
        return [r.payload["id"] for r in self.received if r.topic.startswith(topic_prefix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    running = PersistentBroker(tmp_path).start()
    yield running
    running.stop()


# -- in-process ----------------------------------------------------------------------------


@dataclass
class Rig:
    backend: Backend
    broker: Broker

    @property
    def store(self) -> Store:
        return self.backend.events

    @property
    def cursors(self) -> SinkCursors:
        return self.backend.sink_cursors

    async def publish(self, *bodies: dict[str, Any], tenant: str = "default") -> list[int]:
        candidates, _ = candidates_from_json(list(bodies), PublishContext(tenant=tenant), Limits())
        return [r.seq for r in await self.store.append(candidates)]

    def bridge(self, *rules: dict[str, Any], protocol: str = "3.1.1") -> MqttBridge:
        raw = {
            "url": self.broker.url,
            "protocol": protocol,
            "client_id": f"tidings-{uuid.uuid4().hex[:6]}",
            "subscribe": [{"filter": "tracker/events/#"}],  # ingest's: never a bridge topic
            "publish": list(rules),
        }
        return MqttBridge(
            parse_mqtt(raw), self.store, self.cursors, backoff=Backoff(0.05, 0.3), poll_s=0.2
        )


@pytest.fixture
async def rig(tmp_path: Path, broker: PersistentBroker) -> AsyncIterator[Rig]:
    backend = open_backend(f"sqlite:///{tmp_path / 'tidings.db'}", tmp_path)
    await backend.open()
    yield Rig(backend, broker)
    await backend.close()


async def until(check: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_matching_events_arrive_on_their_topics_with_the_rules_qos_and_retain(
    rig: Rig, protocol: str
) -> None:
    bridge = rig.bridge(
        {"events": ["device.#"], "exclude_source": "mqtt", "topic": "t/{tenant}/{type}", "qos": 1},
        {"events": ["alarm.*"], "topic": "a/{type_path}/{subject}", "qos": 0, "retain": True},
        protocol=protocol,
    )
    sub = Subscriber(rig.broker, "t/#", "a/#")
    tasks = Supervisor()
    await bridge.start(tasks)
    try:
        await rig.publish(
            {"type": "device.switch.on", "subject": "lamp", "data": {"on": True}},
            {"type": "device.echo", "source": "mqtt"},
            {"type": "other.thing"},
            {"type": "alarm.fire", "subject": "hall/2+#", "data": {"level": 3}},
            {"type": "device.last"},
        )
        await rig.publish({"type": "device.other.tenant"}, tenant="acme")
        await until(lambda: len(sub.received) == 4, what="four messages")
        by_topic = {r.topic: r for r in sub.received}
        assert set(by_topic) == {
            "t/default/device.switch.on",
            "t/default/device.last",
            "t/acme/device.other.tenant",
            "a/alarm/fire/hall%2F2%2B%23",
        }
        lamp = by_topic["t/default/device.switch.on"]
        assert (lamp.qos, lamp.retain) == (1, False)
        stored = await rig.store.get("default", lamp.payload["id"])
        assert stored is not None and lamp.payload == orjson.loads(stored.encode())
        assert lamp.payload["data"] == {"on": True} and lamp.payload["subject"] == "lamp"
        fire = by_topic["a/alarm/fire/hall%2F2%2B%23"]
        assert fire.qos == 0 and fire.payload["subject"] == "hall/2+#"

        late = Subscriber(rig.broker, "t/#", "a/#", persistent=False)
        await until(lambda: late.received, what="the retained message")
        await asyncio.sleep(0.2)
        assert [(r.topic, r.retain) for r in late.received] == [
            ("a/alarm/fire/hall%2F2%2B%23", True)
        ]
        late.close()

        head = rig.store.head()
        await until(lambda: all(f.position == head for f in bridge.followers), what="cursors")
        for rule in bridge.rules:
            assert await rig.cursors.sink_cursor(rule.sink) == head
        status = bridge.status()
        assert status["state"] == "connected"
        assert status["client_id"].endswith("-bridge")
        assert [(r["published"], r["lag"]) for r in status["rules"]] == [(3, 0), (1, 0)]
    finally:
        await bridge.stop(tasks)
        sub.close()
    assert bridge.status()["state"] == "stopped"


async def test_a_new_rule_starts_at_the_head_and_publishes_no_history(rig: Rig) -> None:
    await rig.publish(*({"type": "old.event"} for _ in range(20)))
    bridge = rig.bridge({"topic": "h/{type}"})
    sub = Subscriber(rig.broker, "h/#")
    tasks = Supervisor()
    await bridge.start(tasks)
    try:
        assert await rig.cursors.sink_cursor(bridge.rules[0].sink) == rig.store.head()
        await rig.publish({"type": "new.event"})
        await until(lambda: sub.received, what="the new event")
        await asyncio.sleep(0.3)
        assert [r.topic for r in sub.received] == ["h/new.event"]
    finally:
        await bridge.stop(tasks)
        sub.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_events_stored_while_the_broker_is_down_arrive_when_it_is_back(
    rig: Rig, protocol: str
) -> None:
    bridge = rig.bridge({"topic": "o/{type}"}, protocol=protocol)
    sub = Subscriber(rig.broker, "o/#")
    tasks = Supervisor()
    await bridge.start(tasks)
    try:
        await rig.publish({"type": "before.outage"})
        await until(lambda: len(sub.received) == 1, what="the first event")
        await asyncio.to_thread(rig.broker.stop)
        await until(lambda: bridge.state != "connected", what="the bridge to notice")
        seqs = await rig.publish(*({"type": "during.outage", "data": {"n": n}} for n in range(300)))
        await asyncio.sleep(0.3)
        assert bridge.followers[0].position < seqs[0]  # paused: the cursor did not move
        assert bridge.status()["last_error"]
        await asyncio.to_thread(rig.broker.start)
        await until(lambda: len(set(sub.ids())) == 301, 20, "every event after the outage")
        during = [r.payload["data"]["n"] for r in sub.received if r.topic == "o/during.outage"]
        assert sorted(set(during)) == list(range(300))
        assert during == sorted(during)  # in log order (a repeat only of a whole page)
        await until(lambda: bridge.followers[0].position == seqs[-1], what="the cursor")
    finally:
        await bridge.stop(tasks)
        sub.close()


async def test_the_cursor_moves_only_after_the_broker_acknowledged_the_page(rig: Rig) -> None:
    bridge = rig.bridge({"topic": "lost/{subject}", "retain": True})
    tasks = Supervisor()
    await bridge.start(tasks)
    try:
        await until(lambda: bridge.state == "connected", what="the connection")
        before = rig.store.head()
        assert rig.broker.proc is not None
        rig.broker.proc.send_signal(signal.SIGSTOP)  # it takes the messages, acknowledges none
        seqs = await rig.publish(*({"type": "x.y", "subject": f"s{n}"} for n in range(20)))
        await asyncio.sleep(0.5)
        assert await rig.cursors.sink_cursor(bridge.rules[0].sink) == before
        assert bridge.status()["rules"][0]["lag"] == 20

        # The broker dies with the page unacknowledged: the page is published again.
        rig.broker.proc.kill()
        rig.broker.proc.wait()
        await asyncio.to_thread(rig.broker.start)
        await until(lambda: bridge.followers[0].position == seqs[-1], what="the cursor")
        assert await rig.cursors.sink_cursor(bridge.rules[0].sink) == seqs[-1]
        late = Subscriber(rig.broker, "lost/#", persistent=False)  # retained: one per subject
        await until(lambda: len(late.received) == 20, what="every retained message")
        assert {r.topic for r in late.received} == {f"lost/s{n}" for n in range(20)}
        late.close()
    finally:
        await bridge.stop(tasks)


async def test_a_page_the_broker_refuses_is_published_again_until_it_is_taken(rig: Rig) -> None:
    acl = rig.broker.directory / "acl"
    acl.write_text("topic readwrite open/#\n")
    rig.broker.stop()
    rig.broker.extra = f"acl_file {acl}\n"
    rig.broker.start()
    bridge = rig.bridge({"topic": "closed/{type}"}, protocol="5")  # MQTT 5: PUBACK says why
    sub = Subscriber(rig.broker, "closed/#")
    tasks = Supervisor()
    await bridge.start(tasks)
    try:
        before = rig.store.head()
        (seq,) = await rig.publish({"type": "refused.event"})
        await until(lambda: bridge.followers[0].counts["retried"] >= 2, what="refusals")
        assert "refused 1 message" in (bridge.status()["rules"][0]["last_error"] or "")
        assert await rig.cursors.sink_cursor(bridge.rules[0].sink) == before

        acl.write_text("topic readwrite #\n")
        assert rig.broker.proc is not None
        rig.broker.proc.send_signal(signal.SIGHUP)  # Mosquitto reloads its ACL
        await until(lambda: bridge.followers[0].position == seq, 20, "the page to be taken")
        await until(lambda: sub.received, what="the message")
        assert [r.topic for r in sub.received] == ["closed/refused.event"]
        assert bridge.status()["rules"][0]["last_error"] is None
    finally:
        await bridge.stop(tasks)
        sub.close()


async def test_a_restarted_bridge_continues_from_its_cursor_without_loss_or_duplicate(
    rig: Rig,
) -> None:
    rule = {"events": ["job.#"], "topic": "r/{type}/{source}"}
    sub = Subscriber(rig.broker, "r/#")
    first = rig.bridge(rule)
    tasks = Supervisor()
    await first.start(tasks)
    await rig.publish(*({"type": "job.done", "data": {"n": n}} for n in range(50)))
    await until(lambda: len(sub.received) == 50, what="the first fifty")
    await first.stop(tasks)
    assert first.followers[0].position == rig.store.head()

    await rig.publish(*({"type": "job.done", "data": {"n": n}} for n in range(50, 80)))
    second = rig.bridge(rule)
    assert second.rules[0].sink == first.rules[0].sink
    await second.start(tasks)
    try:
        await until(lambda: len(sub.received) >= 80, what="the next thirty")
        await asyncio.sleep(0.3)
        assert sorted(r.payload["data"]["n"] for r in sub.received) == list(range(80))
        assert {r.topic for r in sub.received} == {"r/job.done/api"}
    finally:
        await second.stop(tasks)
        sub.close()


async def test_retention_keeps_what_a_rule_has_not_published_yet(rig: Rig) -> None:
    bridge = rig.bridge({"topic": "k/{type}"}, {"events": ["never.#"], "topic": "n/{type}"})
    tasks = Supervisor()
    await bridge.start(tasks)
    try:
        await until(lambda: bridge.state == "connected", what="the connection")
        await asyncio.to_thread(rig.broker.stop)
        await until(lambda: bridge.state != "connected", what="the bridge to notice")
        seqs = await rig.publish(*({"type": "kept.event"} for _ in range(5)))
        floor = await rig.backend.retention_floor()
        assert floor == seqs[0]  # the lowest cursor + 1: the first unpublished event
        assert await purge_backend(rig.backend, 1e-12) == 0
        assert len(await rig.store.read_log(0, seqs[-1], 100)) == 5

        await asyncio.to_thread(rig.broker.start)  # published now, and then purgeable
        await until(lambda: all(f.position == seqs[-1] for f in bridge.followers), what="cursors")
        assert await rig.backend.retention_floor() == seqs[-1] + 1
        assert await purge_backend(rig.backend, 1e-12) == 5
    finally:
        await bridge.stop(tasks)


# -- inside tidings serve --------------------------------------------------------------------

RULES = """
[[mqtt.publish]]
events = ["device.#"]
exclude_source = "mqtt"
topic = "tidings/{tenant}/{type}"
qos = 1
retain = false

[[mqtt.publish]]
events = ["alarm.*"]
topic = "alerts/{type_path}/{subject}"
qos = 0
retain = true
"""


@pytest.fixture
def serve(tmp_path: Path, broker: PersistentBroker) -> Iterator[Callable[..., IngestServer]]:
    """Start ``tidings serve`` with the bridge's rules; killed at the end if still running."""
    started: list[IngestServer] = []

    def start(**env: str) -> IngestServer:
        path = tmp_path / "tidings.toml"
        path.write_text(
            f"""
[mqtt]
url = "{broker.url}"
client_id = "tidings-{uuid.uuid4().hex[:8]}"
keepalive_s = 5

[[mqtt.subscribe]]
filter = "tracker/events/#"
qos = 1
strip_prefix = "tracker/events"
{RULES}"""
        )
        server = IngestServer(tmp_path / "data", env={"TIDINGS_CONFIG": str(path), **env})
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def bridge_status(server: IngestServer) -> dict[str, Any]:
    body = httpx.get(server.url + "/readyz", timeout=5).json()
    assert "mqtt_bridge" in body["ingest"], "the MQTT bridge is not wired into IngestManager"
    status: dict[str, Any] = body["ingest"]["mqtt_bridge"]
    return status


def wait_bridged(server: IngestServer) -> None:
    wait_for(lambda: bridge_status(server)["state"] == "connected", 20, "the bridge to connect")


def post(server: IngestServer, *bodies: dict[str, Any]) -> list[str]:
    answer = httpx.post(server.url + "/v1/events", json=list(bodies), timeout=10)
    assert answer.status_code == 201, answer.text
    return [e["id"] for e in answer.json()["events"]]


def stored(server: IngestServer, **params: Any) -> list[dict[str, Any]]:
    answer = httpx.get(server.url + "/v1/events", params={"limit": 1000, **params}, timeout=10)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


def test_published_events_arrive_on_their_topics_and_echoes_and_others_do_not(
    serve: Callable[..., IngestServer], broker: PersistentBroker
) -> None:
    server = serve()
    sub = Subscriber(broker, "tidings/#", "alerts/#")
    wait_bridged(server)
    (lamp_id,) = post(server, {"type": "device.switch.on", "subject": "lamp", "data": {"on": 1}})
    post(
        server,
        {"type": "other.thing"},
        {"type": "device.echo", "source": "mqtt"},
        {"type": "alarm.fire", "subject": "hall/2", "data": {"level": 3}},
    )
    producer = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:6]}")
    producer.connect("127.0.0.1", broker.port)
    producer.loop_start()
    producer.publish("tracker/events/device/from_mqtt", b'{"n": 1}', qos=1).wait_for_publish(10)
    producer.disconnect()
    producer.loop_stop()
    wait_for(lambda: stored(server, type="device.from_mqtt"), what="the event from MQTT")
    (last_id,) = post(server, {"type": "device.last"})
    wait_for(lambda: last_id in sub.ids(), what="the last event")
    time.sleep(0.3)

    by_topic = {r.topic: r for r in sub.received}
    assert sorted(by_topic) == [
        "alerts/alarm/fire/hall%2F2",
        "tidings/default/device.last",
        "tidings/default/device.switch.on",
    ]
    assert len(sub.received) == 3
    lamp = by_topic["tidings/default/device.switch.on"]
    assert lamp.qos == 1 and not lamp.retain
    assert lamp.payload == httpx.get(f"{server.url}/v1/events/{lamp_id}", timeout=5).json()
    assert by_topic["alerts/alarm/fire/hall%2F2"].qos == 0

    late = Subscriber(broker, "tidings/#", "alerts/#", persistent=False)
    wait_for(lambda: late.received, what="the retained alert")
    time.sleep(0.2)
    assert [(r.topic, r.retain, r.payload["data"]) for r in late.received] == [
        ("alerts/alarm/fire/hall%2F2", True, {"level": 3})
    ]
    late.close()
    sub.close()
    status = bridge_status(server)
    assert status["client_id"].endswith("-bridge")
    assert [(r["published"], r["lag"]) for r in status["rules"]] == [(2, 0), (1, 0)]
    assert server.stop() == 0


def test_events_published_while_the_broker_is_down_all_arrive_when_it_is_back(
    serve: Callable[..., IngestServer], broker: PersistentBroker
) -> None:
    server = serve()
    sub = Subscriber(broker, "tidings/#")
    wait_bridged(server)
    broker.stop()
    wait_for(lambda: bridge_status(server)["state"] != "connected", what="the bridge to notice")
    sent = post(server, *({"type": "device.offline", "data": {"n": n}} for n in range(200)))
    broker.start()
    wait_for(lambda: set(sent) <= set(sub.ids()), 30, "every event published during the outage")
    sub.close()
    assert server.stop() == 0


def test_a_restart_of_tidings_publishes_nothing_twice_and_loses_nothing(
    serve: Callable[..., IngestServer], broker: PersistentBroker
) -> None:
    server = serve()
    sub = Subscriber(broker, "tidings/#")
    wait_bridged(server)
    sent = post(server, *({"type": "device.before", "data": {"n": n}} for n in range(30)))
    wait_for(lambda: len(sub.received) == 30, what="the first thirty")
    assert server.stop() == 0
    server.start()
    wait_bridged(server)
    time.sleep(1.5)  # a follower that restarted behind its cursor would publish by now
    sent += post(server, {"type": "device.after"})
    wait_for(lambda: sent[-1] in sub.ids(), what="the event after the restart")
    time.sleep(0.3)
    assert sorted(sub.ids()) == sorted(sent)  # each exactly once
    sub.close()
    assert server.stop() == 0


def test_every_event_acknowledged_before_a_kill_arrives_at_least_once(
    serve: Callable[..., IngestServer], broker: PersistentBroker
) -> None:
    server = serve()
    sub = Subscriber(broker, "tidings/#")
    wait_bridged(server)
    acknowledged: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        with httpx.Client(timeout=5) as client:
            n = 0
            while not stop.is_set():
                body = {"type": "device.flow", "data": {"n": n}}
                try:
                    answer = client.post(server.url + "/v1/events", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: nothing more was acknowledged
                if answer.status_code == 201:
                    acknowledged.append(answer.json()["id"])
                n += 1

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    wait_for(lambda: len(sub.received) >= 100, what="events to flow")
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    thread.join(10)
    stop.set()
    assert len(acknowledged) >= 100
    server.start()
    wait_bridged(server)
    wait_for(lambda: set(acknowledged) <= set(sub.ids()), 30, "every acknowledged event")
    sub.close()
    assert server.stop() == 0


def test_retention_keeps_events_the_bridge_has_not_published(
    serve: Callable[..., IngestServer], broker: PersistentBroker
) -> None:
    server = serve(TIDINGS_RETENTION_DAYS="0.000001", TIDINGS_RETENTION_INTERVAL_S="0.2")
    sub = Subscriber(broker, "tidings/#")
    wait_bridged(server)
    broker.stop()
    wait_for(lambda: bridge_status(server)["state"] != "connected", what="the bridge to notice")
    sent = post(server, *({"type": "device.kept", "data": {"n": n}} for n in range(20)))
    time.sleep(1.0)  # several purges, every event far past the 0.09 s retention
    assert len(stored(server, type="device.kept")) == 20
    broker.start()
    wait_for(lambda: set(sent) <= set(sub.ids()), 30, "the kept events")
    assert {r.payload["data"]["n"] for r in sub.received} == set(range(20))
    wait_for(lambda: not stored(server, type="device.kept"), 10, "the purge once published")
    sub.close()
    assert server.stop() == 0
