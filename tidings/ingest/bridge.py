"""The MQTT bridge out: a durable, at-least-once sink that follows the stored log.

Each ``[[mqtt.publish]]`` rule has a follower with a durable cursor (``sink_cursors``): it reads
a page of the log after its cursor, publishes the matching events, waits until the broker has
acknowledged every one of them, and only then moves the cursor (one write per page). A broker
outage pauses the followers; they continue from their cursors on the next connection. A crash
between a publish and the cursor write publishes that page again: duplicates are possible,
losses are not. The bridge has its own connection (client id ``<client_id>-bridge``), so it
never shares a session with MQTT ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from tidings.envelope import Event
from tidings.envelope.timefmt import format_us, now_us
from tidings.ingest.backoff import Backoff
from tidings.ingest.bridge_rules import (
    BridgeRule,
    Page,
    PageAcks,
    parse_rules,
    plan_page,
)
from tidings.ingest.mqtt_config import MqttConfig
from tidings.ingest.mqtt_link import Delivery, MqttLink
from tidings.store import Store
from tidings.store.sink_cursors import SinkCursors
from tidings.tasks import Supervisor

log = logging.getLogger("tidings.ingest.bridge")
PAGE = 256  # events read per page, and at most as many messages awaiting acknowledgement
POLL_S = 1.0  # a follower looks at the head this often even when no commit woke it
CONNECT_TIMEOUT_S = 10.0
CLIENT_SUFFIX = "-bridge"
SINK_PREFIX = "mqtt:"  # the bridge's sink cursors, among those of other sinks


def bridge_config(config: MqttConfig) -> MqttConfig:
    """The bridge's own connection: the same broker, its own client id, no subscription."""
    return replace(config, client_id=config.client_id + CLIENT_SUFFIX, subscribe=())


def _in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Hand a call from paho's thread to the event loop (nobody is left once it closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _ignore(delivery: Delivery) -> None:
    """The bridge subscribes to nothing; a message from an old session is left alone."""


class Follower:
    """One rule's progress through the log: the glue state around its durable cursor."""

    def __init__(self, rule: BridgeRule, backoff: Backoff) -> None:
        self.rule = rule
        self.position = 0  # every event with seq <= position is published (or did not match)
        self.wake = asyncio.Event()  # set by a commit: there may be more to read
        self.idle = asyncio.Event()  # clear while a page is being published
        self.idle.set()
        self.acks = PageAcks()  # what the page in flight waits for
        self.settled = asyncio.Event()  # the page in flight is acknowledged, or its link is gone
        self.backoff = backoff  # before a page the broker refused is published again
        self.pause_s = 0.0  # how long to wait before the next page (after a refusal)
        self.counts: Counter[str] = Counter()  # published, skipped, retried
        self.last_error: str | None = None


class MqttBridge:
    """The followers of every ``[[mqtt.publish]]`` rule and their shared connection."""

    def __init__(
        self,
        config: MqttConfig,
        store: Store,
        cursors: SinkCursors,
        *,
        backoff: Backoff | None = None,
        page_size: int = PAGE,
        poll_s: float = POLL_S,
    ) -> None:
        # The rules are checked here, so a bad one refuses start-up with its key named.
        self.rules = parse_rules(config.publish, [s.filter for s in config.subscribe])
        self.config = bridge_config(config)
        self.store = store  # the log the followers read
        self.cursors = cursors  # their durable positions
        self.backoff = backoff or Backoff(0.5, 30.0)  # between connection attempts
        self.page_size = page_size  # events read per page: at most one cursor write each
        self.poll_s = poll_s  # how often an idle follower looks at the head without a commit
        self.state = "starting"  # connecting | connected | disconnected | stopped
        self.since = time.time()  # when the state last changed
        self.last_error: str | None = None
        self.followers = [
            Follower(rule, Backoff(self.backoff.initial, self.backoff.maximum))
            for rule in self.rules
        ]
        self._link: MqttLink | None = None  # the live connection, None while there is none
        self._up = asyncio.Event()  # set while a connection is live
        self._owners: dict[int, Follower] = {}  # message id on the live link -> its follower
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, supervisor: Supervisor) -> None:
        """Load every cursor (a new rule starts at the head: no flood of history) and start
        the connection and one follower per rule."""
        head = self.store.head()
        for follower in self.followers:
            rule = follower.rule
            position = await self.cursors.sink_cursor(rule.sink)
            if position is None:
                position = head
                await self.cursors.set_sink_cursor(rule.sink, rule.tenant, head, now_us())
                log.info(
                    "MQTT bridge: mqtt.publish[%d] (%s) is new and starts at position %d",
                    rule.index,
                    rule.sink,
                    head,
                )
            follower.position = position
        self.store.add_commit_listener(self._committed)
        supervisor.start("mqtt-bridge-connection", self._connection_loop)
        for follower in self.followers:
            supervisor.start(
                f"mqtt-bridge:{follower.rule.sink}", functools.partial(self._follow, follower)
            )

    async def stop(self, supervisor: Supervisor, timeout: float = 5.0) -> None:
        """Let the pages in flight be acknowledged and their cursors written, then disconnect.
        A page still unacknowledged at ``timeout`` is published again at the next start."""
        self._stopping = True
        for follower in self.followers:
            follower.wake.set()
        try:
            async with asyncio.timeout(timeout):
                for follower in self.followers:
                    await follower.idle.wait()
        except TimeoutError:
            log.warning("MQTT bridge: pages still unacknowledged after %.1fs", timeout)
        for follower in self.followers:
            await supervisor.stop(f"mqtt-bridge:{follower.rule.sink}")
        await supervisor.stop("mqtt-bridge-connection")  # its finally closes the link
        self._set_state("stopped")

    def status(self) -> dict[str, Any]:
        """The connection and each rule's position and lag, for the body of /readyz."""
        head = self.store.head()
        return {
            "state": self.state,
            "since": format_us(int(self.since * 1_000_000)),
            "broker": self.config.url,
            "client_id": self.config.client_id,
            "last_error": self.last_error,
            "rules": [
                {
                    "rule": f"mqtt.publish[{f.rule.index}]",
                    "sink": f.rule.sink,
                    "topic": f.rule.topic.text,
                    "position": f.position,
                    "lag": max(head - f.position, 0),
                    "published": f.counts["published"],
                    "skipped": f.counts["skipped"],
                    "last_error": f.last_error,
                }
                for f in self.followers
            ],
        }

    def _committed(self, events: list[Event]) -> None:
        for follower in self.followers:
            follower.wake.set()

    def _set_state(self, state: str) -> None:
        self.state, self.since = state, time.time()

    # -- connection ----------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._set_state("connecting")
            link = MqttLink(self.config, loop, _ignore)
            link.client.on_publish = self._on_publish(loop, link)
            try:
                await link.open(CONNECT_TIMEOUT_S)
                self._online(link)
                await link.closed.wait()
                self.last_error = f"connection lost: {link.close_reason}"
            except (OSError, ConnectionError, TimeoutError) as error:
                self.last_error = (
                    f"cannot connect to {self.config.url}: {str(error) or type(error).__name__}"
                )
            finally:
                self._offline()
                await link.close()
                if not link.connack.cancelled():
                    link.connack.exception()  # retrieved: a failed connect is reported above
            if self._stopping:
                return
            self._set_state("disconnected")
            delay = self.backoff.next()
            log.warning("MQTT bridge: %s; reconnecting in %.1fs", self.last_error, delay)
            await asyncio.sleep(delay)

    def _on_publish(
        self, loop: asyncio.AbstractEventLoop, link: MqttLink
    ) -> Callable[[paho.Client, Any, int, ReasonCode, Any], None]:
        """paho's on_publish for ``link``: a PUBACK arrived (QoS 1) or a QoS 0 message was
        written. Runs in paho's thread; the bookkeeping happens in the event loop."""

        def published(client: paho.Client, _: Any, mid: int, code: ReasonCode, props: Any) -> None:
            _in_loop(loop, self._published, link, mid, not code.is_failure)

        return published

    def _published(self, link: MqttLink, mid: int, accepted: bool) -> None:
        if link is not self._link:
            return  # a late acknowledgement of a connection already given up
        follower = self._owners.pop(mid, None)
        if follower is not None and follower.acks.settle(mid, accepted) and follower.acks.done:
            follower.settled.set()

    def _online(self, link: MqttLink) -> None:
        self._link = link
        self._set_state("connected")
        self.backoff.reset()
        log.info("MQTT bridge: connected to %s", self.config.url)
        self._up.set()

    def _offline(self) -> None:
        """The connection is gone: pages waiting for acknowledgements on it are given up."""
        self._link = None
        self._up.clear()
        self._owners.clear()
        for follower in self.followers:
            follower.settled.set()

    # -- followers -----------------------------------------------------------------------

    async def _follow(self, follower: Follower) -> None:
        rule = follower.rule
        # After a restart by the supervisor the durable cursor is the truth.
        stored = await self.cursors.sink_cursor(rule.sink)
        if stored is not None:
            follower.position = stored
        while not self._stopping:
            await self._up.wait()
            follower.wake.clear()  # before reading the head: a commit after it wakes us
            link = self._link
            head = self.store.head()
            if link is None or head <= follower.position:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await follower.wake.wait()
                continue
            events = await self.store.read_log(follower.position, head, self.page_size)
            page = plan_page(rule, events, follower.position, head, self.page_size)
            if self._stopping:
                return  # published at the next start
            follower.idle.clear()
            try:
                if await self._publish(link, follower, page):
                    await self.cursors.set_sink_cursor(
                        rule.sink, rule.tenant, page.position, now_us()
                    )
                    follower.position = page.position
                    follower.counts["published"] += len(page.messages)
                    follower.backoff.reset()
                    self._report_skipped(follower, page)
            finally:
                follower.idle.set()
            if follower.pause_s:
                await asyncio.sleep(follower.pause_s)
                follower.pause_s = 0.0

    async def _publish(self, link: MqttLink, follower: Follower, page: Page) -> bool:
        """Publish the page and wait for every acknowledgement; False when it must be published
        again (the connection was lost, or the broker refused a message)."""
        rule = follower.rule
        follower.acks = acks = PageAcks()
        follower.settled.clear()
        if link is not self._link:
            return False  # lost while the page was read; settled was set before the clear
        # No await from here to the end of the loop: an acknowledgement reaches the event
        # loop only after its message id is registered, so none can be missed.
        for message in page.messages:
            info = link.client.publish(message.topic, message.payload, rule.qos, rule.retain)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                self._forget(acks)
                follower.last_error = f"publish failed: {paho.error_string(info.rc)}"
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await link.closed.wait()  # the link is failing: wait for the next one
                return False
            acks.sent(info.mid)
            self._owners[info.mid] = follower
        if acks.waiting:
            await follower.settled.wait()
        if not acks.done:
            self._forget(acks)
            follower.last_error = (
                f"connection lost with {len(acks.waiting)} message(s) unacknowledged; "
                "the page is published again"
            )
            follower.counts["retried"] += 1
            return False
        if acks.refused:
            follower.pause_s = follower.backoff.next()
            follower.last_error = (
                f"the broker refused {len(acks.refused)} message(s) of mqtt.publish"
                f"[{rule.index}]; the page is published again in {follower.pause_s:.1f}s"
            )
            log.warning("MQTT bridge: %s", follower.last_error)
            follower.counts["retried"] += 1
            return False
        follower.last_error = None
        return True

    def _forget(self, acks: PageAcks) -> None:
        for mid in acks.waiting:
            self._owners.pop(mid, None)

    def _report_skipped(self, follower: Follower, page: Page) -> None:
        for event, why in page.skipped:
            follower.counts["skipped"] += 1
            log.warning(
                "MQTT bridge: event %s (seq %d) matches mqtt.publish[%d] but is not published: %s",
                event.id,
                event.seq,
                follower.rule.index,
                why,
            )
