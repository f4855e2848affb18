"""The delivery engine of one node: create deliveries from the log, run attempts, record them.

* The dispatcher follows the event log with one durable cursor per endpoint. It reads each
  new page of events once, matches it against every active endpoint, and writes the page's
  deliveries and the cursors in one transaction — so publishing never pays per endpoint.
  A round creates at most ``DISPATCH_BUDGET`` deliveries and matches at most
  ``MATCH_BUDGET`` (event, endpoint) pairs, and the cursors wait while ``MAX_QUEUED_FIRST``
  first attempts are queued: deliveries are created about as fast as they are sent, the rest
  of the backlog stays in the log, and no round holds the event loop or the writer for long.
* Attempts run as tasks, bounded in total (``TIDINGS_DELIVERY_CONCURRENCY``), per endpoint
  (a slow receiver cannot take every slot) and by each endpoint's rate limit. Half of the
  slots are kept for first attempts, so a backlog of retries never delays fresh deliveries.
* Results are written in batches by the recorder; a crash before a result is written means
  the attempt is made again (at-least-once). No new attempt starts while
  ``TIDINGS_DELIVERY_CONCURRENCY`` results wait to be written, so however slow the store's
  commits are against the receivers' answers, a crash sends again at most about that many
  on top of those in flight.
* Retries wait in the store (``next_attempt_at``) and are claimed with a lease when due.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tidings import metrics
from tidings.delivery.governor import Governor
from tidings.delivery.limiter import TokenBucket
from tidings.delivery.schedule import RetrySchedule, classify
from tidings.delivery.sender import AttemptResult, Sender
from tidings.envelope import Event
from tidings.envelope.ids import uuid7
from tidings.envelope.timefmt import now_us
from tidings.store import Store
from tidings.store.deliveries import (
    Attempt,
    AttemptRecord,
    Delivery,
    DeliveryStore,
    Endpoint,
    Status,
)

log = logging.getLogger("tidings.delivery")
PAGE = 1000  # events read per dispatch round, at most
DISPATCH_BUDGET = 1000  # deliveries created per dispatch round, about
MATCH_BUDGET = 20_000  # (event, endpoint) pairs matched per dispatch round
MAX_QUEUED_FIRST = 4000  # first attempts in memory, all endpoints; beyond it cursors wait
MIN_QUEUED_PER_ENDPOINT = 32  # an endpoint's share of those never falls below this
EVENT_SPAN = 1000  # widest run of positions read at once for claimed retries
LEASE_US = 3_600 * 1_000_000  # deliveries held in this node's memory
CLAIM_INTERVAL_S = 0.5  # how often due retries are claimed from the store
CLAIM_BATCH = 500
MAX_IN_MEMORY = 5000  # queued jobs of all endpoints; the rest waits in the store
MESSAGE_NAMESPACE = uuid.UUID("6f1c8f5e-3c1a-4f7e-9a59-2f7d7c1e0b51")


def message_id(endpoint_id: str, event_id: str) -> str:
    """The ``webhook-id`` of an event to an endpoint: the same for every attempt and replay."""
    return "msg_" + uuid.uuid5(MESSAGE_NAMESPACE, f"{endpoint_id}:{event_id}").hex


@dataclass(slots=True)
class Job:
    delivery: Delivery
    event: Event | None  # loaded on demand for retries


@dataclass(slots=True)
class _EndpointSlots:
    queue: deque[Job] = field(default_factory=deque)  # first attempts
    retries: deque[Job] = field(default_factory=deque)  # later attempts, due now
    inflight: int = 0
    bucket: TokenBucket | None = None
    not_before: float = 0.0  # loop time before which the rate limit allows nothing


OnDisable = Callable[[Endpoint, str], Awaitable[None]]


class Engine:
    def __init__(
        self,
        store: Store,
        deliveries: DeliveryStore,
        sender: Sender,
        schedule: RetrySchedule,
        *,
        concurrency: int,
        disable_after_s: float,
        on_disable: OnDisable,
        governor: Governor | None = None,
    ) -> None:
        self.store = store  # the event log
        self.deliveries = deliveries  # delivery state
        self.sender = sender
        self.schedule = schedule
        self.concurrency = concurrency
        self.retry_slots = max(1, concurrency // 2)  # the rest is kept for first attempts
        self.per_endpoint = max(2, concurrency // 4)
        self.disable_after_us = int(disable_after_s * 1_000_000)
        self.on_disable = on_disable
        self.governor = governor or Governor(lambda: 0)  # the share of the node delivery takes
        self.endpoints: dict[str, Endpoint] = {}  # active and inactive, by id
        self._slots: dict[str, _EndpointSlots] = {}
        self._fresh_ids: deque[str] = deque()  # endpoints with fresh jobs, round robin
        self._retry_ids: deque[str] = deque()  # endpoints with due retries, round robin
        self._inflight = 0
        self._retry_inflight = 0
        self._claimed: set[str] = set()  # delivery ids in memory or in flight
        self._records: list[AttemptRecord] = []
        self._writing = 0  # results of the batch being written
        self.max_unrecorded = concurrency
        self._flush_lock = asyncio.Lock()  # one flush at a time, in the order they were asked
        self._orphans: list[str] = []  # pending deliveries of deleted or disabled endpoints
        self._queue_cap = MAX_QUEUED_FIRST  # per endpoint, set by each dispatch round
        self._wake_dispatch = asyncio.Event()
        self._wake_pump = asyncio.Event()
        self._wake_record = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- endpoints ------------------------------------------------------------------------

    async def load(self) -> None:
        await self.deliveries.release_leases()  # the embedded store has one node: ours
        for endpoint in await self.deliveries.list_endpoints(None):
            self.endpoints[endpoint.id] = endpoint

    def put_endpoint(self, endpoint: Endpoint) -> None:
        known = self.endpoints.get(endpoint.id)
        if known is not None:
            # The copy was read from the store before a dispatch may have moved the cursor:
            # going back would create the deliveries of those events a second time.
            endpoint.cursor = max(endpoint.cursor, known.cursor)
        self.endpoints[endpoint.id] = endpoint
        slots = self._slots.get(endpoint.id)
        rate = slots.bucket.rate if slots is not None and slots.bucket is not None else None
        if slots is not None and rate != endpoint.rate_limit:  # else keep the bucket's state
            slots.bucket = TokenBucket(endpoint.rate_limit) if endpoint.rate_limit else None
        if not endpoint.active:
            self.drop_endpoint(endpoint.id, keep=True)
        self._wake_dispatch.set()

    def drop_endpoint(self, endpoint_id: str, *, keep: bool = False) -> None:
        """Forget queued jobs of an endpoint (deleted or disabled); in-flight ones finish."""
        if not keep:
            self.endpoints.pop(endpoint_id, None)
        slots = self._slots.get(endpoint_id)
        if slots is not None:
            for job in (*slots.queue, *slots.retries):
                self._claimed.discard(job.delivery.id)
            slots.queue.clear()
            slots.retries.clear()
        self._retry_ids = deque(i for i in self._retry_ids if i != endpoint_id)
        self._fresh_ids = deque(i for i in self._fresh_ids if i != endpoint_id)

    def _slots_of(self, endpoint: Endpoint) -> _EndpointSlots:
        slots = self._slots.get(endpoint.id)
        if slots is None:
            slots = _EndpointSlots(
                bucket=TokenBucket(endpoint.rate_limit) if endpoint.rate_limit else None
            )
            self._slots[endpoint.id] = slots
        return slots

    def cursor_lag(self, tenant: str | None = None) -> int:
        """Log positions the furthest-behind active endpoint (of ``tenant``) has yet to read."""
        head = self.store.head()
        return max(
            (
                head - e.cursor
                for e in self.endpoints.values()
                if e.active and (tenant is None or e.tenant == tenant)
            ),
            default=0,
        )

    def queued(self) -> int:
        return sum(len(s.queue) + len(s.retries) for s in self._slots.values())

    # -- signals --------------------------------------------------------------------------

    def on_commit(self, events: list[Event]) -> None:
        if any(e.active for e in self.endpoints.values()):
            self._wake_dispatch.set()

    def enqueue(self, jobs: list[Job]) -> None:
        """Hand deliveries (already leased to this node) to the attempt loop."""
        for job in jobs:
            if job.delivery.id in self._claimed:
                continue
            endpoint = self.endpoints.get(job.delivery.webhook_id)
            if endpoint is None or not endpoint.active:
                self._orphan(job)
                continue
            self._claimed.add(job.delivery.id)
            slots = self._slots_of(endpoint)
            if job.delivery.attempts == 0:
                if not slots.queue:
                    self._fresh_ids.append(endpoint.id)
                slots.queue.append(job)
            else:
                if not slots.retries:
                    self._retry_ids.append(endpoint.id)
                slots.retries.append(job)
        metrics.DELIVERY_QUEUE.set(self.queued())
        self._wake_pump.set()

    def _orphan(self, job: Job) -> None:
        """Cancel a delivery whose endpoint was deleted or disabled after it was created (the
        dispatcher raced the change): left pending, it would pin retention forever."""
        self._claimed.discard(job.delivery.id)
        self._orphans.append(job.delivery.id)
        self._wake_record.set()

    # -- loops (run as supervised tasks) -------------------------------------------------

    async def dispatch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(1.0):
                    await self._wake_dispatch.wait()
            except TimeoutError:
                pass
            if wait := self.governor.fresh_wait(loop.time()):
                await asyncio.sleep(wait)  # publishing comes first: wait for delivery's turn
            self._wake_dispatch.clear()
            if await self.dispatch_once():
                self._wake_dispatch.set()  # there is more

    async def dispatch_once(self) -> bool:
        """Create the deliveries of the next events; True when there is more to do now."""
        head = self.store.head()
        active = [e for e in self.endpoints.values() if e.active]
        if not active:
            return False
        # An endpoint's share of the queue; one whose receiver hangs fills only its own.
        self._queue_cap = cap = max(MIN_QUEUED_PER_ENDPOINT, MAX_QUEUED_FIRST // len(active))
        behind = [e for e in active if e.cursor < head and len(self._slots_of(e).queue) < cap]
        if not behind:
            metrics.CURSOR_LAG.set(self.cursor_lag())
            return False
        page = max(1, min(PAGE, MATCH_BUDGET // len(behind)))
        low = min(e.cursor for e in behind)
        events = await self.store.read_log(low, head, page)
        through = events[-1].seq if len(events) >= page else head
        now = now_us()
        created: list[Job] = []
        # Smaller rounds while publishing comes first: each one is a write in the publishes' way.
        yielding = self.governor.yielding(asyncio.get_running_loop().time())
        budget = DISPATCH_BUDGET // 4 if yielding else DISPATCH_BUDGET
        for index, event in enumerate(events):
            for endpoint in behind:
                if event.seq <= endpoint.cursor or event.tenant != endpoint.tenant:
                    continue
                if endpoint.matcher.matches(event):
                    created.append(Job(self.new_delivery(endpoint, event, now), event))
            if len(created) >= budget and index < len(events) - 1:
                through = event.seq  # every endpoint has had the events up to here
                break
        cursors = {e.id: max(e.cursor, through) for e in behind}
        await self.deliveries.dispatch([j.delivery for j in created], cursors, now + LEASE_US)
        for endpoint_id, position in cursors.items():
            known = self.endpoints.get(endpoint_id)
            if known is not None:
                known.cursor = max(known.cursor, position)
        self.enqueue(created)
        metrics.CURSOR_LAG.set(self.cursor_lag())
        return through < head

    def new_delivery(self, endpoint: Endpoint, event: Event, now: int) -> Delivery:
        """A pending delivery of ``event`` to ``endpoint`` (its first attempt due now)."""
        return Delivery(
            id=uuid7(),
            tenant=endpoint.tenant,
            webhook_id=endpoint.id,
            event_seq=event.seq,
            event_id=event.id,
            message_id=message_id(endpoint.id, event.id),
            status="pending",
            attempts=0,
            max_attempts=self.schedule.attempts,
            next_attempt_at_us=now,
            created_at_us=now,
            updated_at_us=now,
        )

    async def claim_loop(self) -> None:
        """Claim retries (and, after a restart, any pending delivery) that are due."""
        while True:
            limit = max(0, min(CLAIM_BATCH, MAX_IN_MEMORY - self.queued()))
            due: list[Delivery] = []
            if limit:
                now = now_us()
                due = await self.deliveries.claim_due(now, limit, now + LEASE_US)
                jobs = [Job(d, None) for d in due if d.id not in self._claimed]
                if jobs:
                    await self._load_events(jobs)
                    self.enqueue(jobs)
            if len(due) < CLAIM_BATCH:  # else more are due: claim again at once
                await asyncio.sleep(CLAIM_INTERVAL_S)

    async def _load_events(self, jobs: list[Job]) -> None:
        """Read the events of claimed deliveries a run of positions at a time, not one each."""
        seqs = sorted({j.delivery.event_seq for j in jobs})
        found: dict[int, Event] = {}
        start = 0
        while start < len(seqs):
            end = start
            while end + 1 < len(seqs) and seqs[end + 1] - seqs[start] < EVENT_SPAN:
                end += 1
            low, high = seqs[start], seqs[end]
            for event in await self.store.read_log(low - 1, high, high - low + 1):
                found[event.seq] = event
            start = end + 1
        for job in jobs:
            job.event = found.get(job.delivery.event_seq)  # None: read again, or purged

    async def pump_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake_pump.clear()
            wait = self._start_ready(loop.time())
            try:
                async with asyncio.timeout(wait):
                    await self._wake_pump.wait()
            except TimeoutError:
                pass

    def _start_ready(self, now: float) -> float:
        """Start every attempt the limits allow; the seconds until a rate limit frees one."""
        soonest = 1.0
        if len(self._records) + self._writing >= self.max_unrecorded:
            return soonest  # the recorder wakes the pump when it has written them
        # Retries first within their share, so they are not starved by a stream of fresh ones;
        # one endpoint after another, so the retries of an endpoint that is busy (a hanging
        # receiver) or rate limited never hold up those of the others.
        rounds = len(self._retry_ids)
        if rounds and (turn := self.governor.retry_wait(now)):
            soonest, rounds = min(soonest, turn), 0
        while (
            self._retry_ids
            and rounds > 0
            and self._retry_inflight < self.retry_slots
            and self._inflight < self.concurrency
        ):
            endpoint_id = self._retry_ids.popleft()
            rounds -= 1
            found_slots = self._slots.get(endpoint_id)
            if found_slots is None or not found_slots.retries:
                continue
            slots, found = found_slots, self.endpoints.get(endpoint_id)
            if found is None or not found.active:
                for job in slots.retries:
                    self._orphan(job)
                slots.retries.clear()
                continue
            while (
                slots.retries
                and slots.inflight < self.per_endpoint
                and self._retry_inflight < self.retry_slots
                and self._inflight < self.concurrency
            ):
                wait = _rate_wait(slots, now)
                if wait:
                    soonest = min(soonest, wait)
                    break
                self._start(slots.retries.popleft(), found, slots, retry=True)
            if slots.retries:
                self._retry_ids.append(endpoint_id)
        # Fresh deliveries, one endpoint after another.
        rounds = len(self._fresh_ids)
        if rounds and (turn := self.governor.fresh_wait(now)):
            soonest, rounds = min(soonest, turn), 0
        while self._fresh_ids and self._inflight < self.concurrency and rounds > 0:
            endpoint_id = self._fresh_ids.popleft()
            rounds -= 1
            found_slots = self._slots.get(endpoint_id)
            found = self.endpoints.get(endpoint_id)
            if found_slots is None or not found_slots.queue or found is None or not found.active:
                continue
            slots, endpoint = found_slots, found
            started = 0
            while (
                slots.queue
                and slots.inflight < self.per_endpoint
                and self._inflight < self.concurrency
            ):
                wait = _rate_wait(slots, now)
                if wait:
                    soonest = min(soonest, wait)
                    break
                self._start(slots.queue.popleft(), endpoint, slots, retry=False)
                started += 1
            if started and len(slots.queue) < self._queue_cap // 2:
                self._wake_dispatch.set()  # room for the endpoint's next deliveries
            if slots.queue:
                self._fresh_ids.append(endpoint_id)
                if started:
                    rounds += 1  # it may get another turn once others had theirs
        metrics.DELIVERY_QUEUE.set(self.queued())
        return max(0.001, soonest)

    def _start(self, job: Job, endpoint: Endpoint, slots: _EndpointSlots, *, retry: bool) -> None:
        self._inflight += 1
        slots.inflight += 1
        if retry:
            self._retry_inflight += 1
        task = asyncio.create_task(
            self._attempt(job, endpoint, slots, retry), name="tidings:webhook-attempt"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(
        self, job: Job, endpoint: Endpoint, slots: _EndpointSlots, retry: bool
    ) -> None:
        try:
            event = job.event
            if event is None:
                found = await self.store.read_log(
                    job.delivery.event_seq - 1, job.delivery.event_seq, 1
                )
                event = found[0] if found else None
            if event is None:
                result = AttemptResult(
                    now_us(), None, 0.0, "the event was deleted by retention", None, False, None
                )
            else:
                result = await self.sender.send(endpoint, event, job.delivery.message_id)
            await self._settle(job, endpoint, result, gone_event=event is None)
        except Exception:
            log.exception("webhook attempt failed unexpectedly; it will be retried")
        finally:
            self._inflight -= 1
            slots.inflight -= 1
            if retry:
                self._retry_inflight -= 1
            self._claimed.discard(job.delivery.id)
            self._wake_pump.set()

    async def _settle(
        self, job: Job, endpoint: Endpoint, result: AttemptResult, *, gone_event: bool
    ) -> None:
        delivery = job.delivery
        n = delivery.attempts + 1
        outcome = classify(
            result.status_code, timed_out=result.timed_out, retry_after_s=result.retry_after_s
        )
        metrics.record_attempt(endpoint.id, _result_label(result), result.latency_ms / 1000)
        next_at: int | None = None
        status: Status
        if outcome.succeeded:
            status = "succeeded"
        elif gone_event or n >= delivery.max_attempts:
            status = "failed"
        else:
            delay = self.schedule.next_delay(n, outcome)
            if delay is None:
                status = "failed"
            else:
                status = "pending"
                # From the end of the attempt: a timeout's throttle and a Retry-After count
                # from the moment the receiver gave up or answered, not from the request.
                ended_us = result.at_us + int(result.latency_ms * 1000)
                next_at = ended_us + int(delay * 1_000_000)
        if status != "pending":
            metrics.DELIVERIES.labels(status).inc()
        attempt = Attempt(
            n,
            result.at_us,
            result.status_code,
            round(result.latency_ms, 3),
            result.error,
            result.response_body,
        )
        self._records.append(
            AttemptRecord(delivery.id, endpoint.id, attempt, status, next_at, outcome.succeeded)
        )
        self._wake_record.set()
        if outcome.succeeded:
            endpoint.failing_since_us = None
        else:
            if endpoint.failing_since_us is None:
                endpoint.failing_since_us = result.at_us
            if outcome.gone:
                await self.on_disable(endpoint, "the receiver answered 410 Gone")
            elif result.at_us - endpoint.failing_since_us >= self.disable_after_us:
                await self.on_disable(
                    endpoint, "only failures for longer than TIDINGS_WEBHOOK_DISABLE_AFTER_S"
                )

    async def record_loop(self) -> None:
        """Write attempt results in batches: one transaction for everything that finished."""
        while True:
            await self._wake_record.wait()
            self._wake_record.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is in hand. Flushes run one at a time, so a caller's flush returns only
        after every result taken before it is written: with a backend of several connections,
        a write that follows (a cancellation) can never commit before them."""
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        if self._orphans:
            orphans, self._orphans = self._orphans, []
            try:
                await self.deliveries.cancel_deliveries(orphans, now_us())
            except Exception:
                self._orphans[:0] = orphans
                raise
        if not self._records:
            return
        batch, self._records = self._records, []
        self._writing = len(batch)
        try:
            await self.deliveries.record(batch, now_us())
        except Exception:
            self._records[:0] = batch  # keep them for the next round
            raise
        finally:
            self._writing = 0
        self._wake_pump.set()  # attempts held back for them may start

    async def stop(self) -> None:
        """Let in-flight attempts finish (bounded by the attempt timeout) and write results."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.sender.timeout_s)
        await self.flush()


def _rate_wait(slots: _EndpointSlots, now: float) -> float:
    """Seconds until the endpoint's rate limit allows an attempt; 0.0 takes the slot now."""
    if now < slots.not_before:
        return slots.not_before - now
    if slots.bucket is None:
        return 0.0
    wait = slots.bucket.take(now)
    if wait:
        slots.not_before = now + wait
    return wait


def _result_label(result: AttemptResult) -> str:
    if result.status_code is not None:
        return "success" if 200 <= result.status_code < 300 else "http_error"
    if result.timed_out:
        return "timeout"
    if result.error and result.error.startswith("destination refused"):
        return "refused"
    return "network_error"
