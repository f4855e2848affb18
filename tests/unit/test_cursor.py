"""The cursor: live queue near the head, store pages when behind, never a gap or a duplicate."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tidings.envelope import Event, Filter
from tidings.streams.cursor import Cursor

T = "default"


def event(
    seq: int, *, type: str = "a.x", tenant: str = T, source: str = "s1", pad: int = 0
) -> Event:
    return Event(
        seq=seq,
        id=f"id-{seq}",
        type=type,
        source=source,
        subject=None,
        time_us=0,
        received_at_us=0,
        trace_id="trace",
        idempotency_key=None,
        data_json=orjson.dumps({"pad": "x" * pad}).decode(),
        metadata_json="{}",
        tenant=tenant,
    )


def size(e: Event) -> int:
    return len(e.encode())


def live(position: int = 0, **bounds: int) -> Cursor:
    return Cursor(T, Filter(), position, live=True, **bounds)


def seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


# -- live: offer and take -----------------------------------------------------------------


def test_a_live_cursor_queues_offered_events_and_hands_them_out_in_one_take() -> None:
    cursor = live(10)
    for seq in [11, 12, 13]:
        cursor.offer(event(seq))
    assert seqs(list(cursor.queue)) == [11, 12, 13]
    assert seqs(cursor.take()) == [11, 12, 13]
    assert cursor.position == 13
    assert not cursor.queue
    assert cursor.queued_bytes == 0


def test_take_with_nothing_queued_returns_nothing_and_keeps_the_position() -> None:
    cursor = live(10)
    assert cursor.take() == []
    assert cursor.position == 10


def test_an_offer_wakes_the_connection_only_for_the_first_queued_event() -> None:
    cursor = live(0)
    assert cursor.offer(event(1)) is True
    assert cursor.offer(event(2)) is False
    assert cursor.offer(event(3)) is False
    cursor.take()
    assert cursor.offer(event(4)) is True


def test_queued_bytes_counts_the_encoded_size_of_the_queue() -> None:
    cursor = live(0)
    first, second = event(1, pad=10), event(2, pad=300)
    cursor.offer(first)
    cursor.offer(second)
    assert cursor.queued_bytes == size(first) + size(second)


def test_an_event_at_or_before_the_position_is_ignored() -> None:
    cursor = live(10)
    assert cursor.offer(event(10)) is False
    assert cursor.offer(event(3)) is False
    assert not cursor.queue


def test_a_duplicate_or_older_offer_is_ignored_while_events_are_queued() -> None:
    cursor = live(10)
    cursor.offer(event(12))
    assert cursor.offer(event(12)) is False
    assert cursor.offer(event(11)) is False
    cursor.offer(event(14))
    assert seqs(list(cursor.queue)) == [12, 14]


def test_an_event_handed_out_already_is_ignored_when_offered_again() -> None:
    cursor = live(0)
    cursor.offer(event(1))
    cursor.offer(event(2))
    cursor.take()
    assert cursor.offer(event(2)) is False
    assert cursor.offer(event(1)) is False
    assert cursor.take() == []


# -- overflow -------------------------------------------------------------------------------


def test_a_queue_may_hold_exactly_max_events() -> None:
    cursor = live(0, max_events=3)
    for seq in [1, 2, 3]:
        cursor.offer(event(seq))
    assert len(cursor.queue) == 3
    assert not cursor.behind


def test_overflowing_max_events_drops_the_queue_and_falls_behind() -> None:
    cursor = live(0, max_events=3)
    for seq in [1, 2, 3]:
        cursor.offer(event(seq))
    assert cursor.offer(event(4)) is True  # wake up: there is reading to do
    assert cursor.behind
    assert not cursor.queue
    assert cursor.queued_bytes == 0
    assert cursor.position == 0  # nothing was handed out
    assert cursor.times_behind == 1


def test_overflowing_max_bytes_drops_the_queue_and_falls_behind() -> None:
    one = size(event(1, pad=100))
    cursor = live(0, max_bytes=2 * one)
    cursor.offer(event(1, pad=100))
    cursor.offer(event(2, pad=100))
    assert not cursor.behind
    assert cursor.offer(event(3, pad=100)) is True
    assert cursor.behind
    assert not cursor.queue
    assert cursor.queued_bytes == 0


def test_the_byte_bound_is_exceeded_by_at_most_the_last_event() -> None:
    big = event(1, pad=5000)
    cursor = live(0, max_bytes=100)
    cursor.offer(big)  # an event larger than the bound still goes out live when alone
    assert not cursor.behind
    assert cursor.queued_bytes == size(big)
    cursor.offer(event(2))
    assert cursor.behind


def test_with_max_events_zero_every_offer_falls_behind() -> None:
    cursor = live(0, max_events=0)
    assert cursor.offer(event(1)) is True
    assert cursor.behind
    assert not cursor.queue


def test_offers_while_behind_are_ignored_and_do_not_wake_the_connection() -> None:
    cursor = live(0, max_events=1)
    cursor.offer(event(1))
    cursor.offer(event(2))
    assert cursor.behind
    assert cursor.offer(event(3)) is False
    assert not cursor.queue
    assert cursor.times_behind == 1


def test_take_while_behind_hands_out_nothing() -> None:
    cursor = live(0, max_events=1)
    cursor.offer(event(1))
    cursor.offer(event(2))
    assert cursor.take() == []
    assert cursor.position == 0


def test_times_behind_counts_every_fall_behind() -> None:
    cursor = live(0, max_events=1)
    for round_ in range(3):
        base = round_ * 10
        cursor.offer(event(base + 1))
        cursor.offer(event(base + 2))
        assert cursor.behind
        cursor.begin_read()
        cursor.finish_read([event(base + 1), event(base + 2)], page_size=10)
        assert not cursor.behind
    assert cursor.times_behind == 3


# -- a cursor that starts behind, and store reads -------------------------------------------


def test_a_resuming_cursor_starts_behind_at_its_position() -> None:
    cursor = Cursor(T, Filter(), 42, live=False)
    assert cursor.behind
    assert cursor.position == 42
    assert cursor.times_behind == 1
    assert cursor.offer(event(43)) is False
    assert cursor.take() == []


def test_begin_read_returns_the_position_and_queues_afresh() -> None:
    cursor = Cursor(T, Filter(), 5, live=False)
    assert cursor.begin_read() == 5
    assert not cursor.behind
    assert cursor.offer(event(9)) is True  # routed while the read runs: queued
    assert seqs(list(cursor.queue)) == [9]


def test_begin_read_drops_what_was_queued_because_the_read_will_find_it() -> None:
    cursor = live(0)
    cursor.offer(event(1))
    cursor.offer(event(2))
    assert cursor.begin_read() == 0
    assert not cursor.queue
    assert cursor.queued_bytes == 0


def test_a_full_page_leaves_the_cursor_behind_at_the_pages_last_event() -> None:
    cursor = Cursor(T, Filter(), 0, live=False)
    cursor.begin_read()
    cursor.offer(event(7))  # routed during the read; the next page will find it
    cursor.finish_read([event(1), event(2), event(3)], page_size=3)
    assert cursor.behind
    assert cursor.position == 3
    assert not cursor.queue
    assert cursor.queued_bytes == 0


def test_a_short_page_makes_the_cursor_live_and_drops_queued_events_the_page_had() -> None:
    cursor = Cursor(T, Filter(), 0, live=False)
    cursor.begin_read()
    for seq in [2, 3, 4]:  # committed before the read ran, routed after begin_read
        cursor.offer(event(seq))
    cursor.finish_read([event(1), event(2), event(3)], page_size=10)
    assert not cursor.behind
    assert cursor.position == 3
    assert seqs(list(cursor.queue)) == [4]
    assert cursor.queued_bytes == size(event(4))
    assert seqs(cursor.take()) == [4]


def test_an_empty_page_keeps_the_position_and_makes_the_cursor_live() -> None:
    cursor = Cursor(T, Filter(), 8, live=False)
    cursor.begin_read()
    cursor.finish_read([], page_size=10)
    assert not cursor.behind
    assert cursor.position == 8


def test_a_page_never_moves_the_position_backwards() -> None:
    cursor = Cursor(T, Filter(), 8, live=False)
    cursor.begin_read()
    cursor.finish_read([event(5)], page_size=10)
    assert cursor.position == 8


def test_take_during_a_read_waits_for_the_page() -> None:
    cursor = Cursor(T, Filter(), 0, live=False)
    cursor.begin_read()
    cursor.offer(event(3))  # committed after the read's snapshot of 1 and 2
    assert cursor.take() == []  # 3 must not go out before the page
    cursor.finish_read([event(1), event(2)], page_size=10)
    assert seqs(cursor.take()) == [3]


def test_a_cursor_reading_the_store_is_not_at_the_head() -> None:
    cursor = Cursor(T, Filter(), 0, live=False)
    cursor.begin_read()
    assert not cursor.at_head(50)
    assert cursor.heartbeat_position(50) is None
    assert cursor.position == 0  # the page of 1..50 may still be on its way
    cursor.finish_read([], page_size=10)
    assert cursor.heartbeat_position(50) == 50


def test_an_overflow_during_a_read_keeps_the_cursor_behind_after_a_short_page() -> None:
    cursor = Cursor(T, Filter(), 0, live=False, max_events=1)
    cursor.begin_read()
    cursor.offer(event(5))
    cursor.offer(event(6))
    assert cursor.behind
    cursor.finish_read([event(1)], page_size=10)
    assert cursor.behind
    assert cursor.position == 1
    assert cursor.begin_read() == 1


# -- the head, heartbeats -------------------------------------------------------------------


def test_a_live_cursor_with_nothing_queued_is_at_the_head() -> None:
    cursor = live(10)
    assert cursor.at_head(10)
    assert cursor.at_head(15)


def test_a_cursor_with_queued_events_is_not_at_the_head() -> None:
    cursor = live(10)
    cursor.offer(event(11))
    assert not cursor.at_head(11)


def test_a_behind_cursor_is_not_at_the_head() -> None:
    cursor = Cursor(T, Filter(), 10, live=False)
    assert not cursor.at_head(10)
    assert cursor.heartbeat_position(10) is None


def test_a_cursor_ahead_of_the_routed_head_is_not_at_the_head() -> None:
    cursor = live(10)
    assert not cursor.at_head(9)
    assert cursor.heartbeat_position(9) is None
    assert cursor.position == 10


def test_a_heartbeat_at_the_head_moves_a_sparse_filters_position_with_the_log() -> None:
    cursor = live(10)
    assert cursor.heartbeat_position(25) == 25
    assert cursor.position == 25
    assert cursor.offer(event(20)) is False  # routed before the heartbeat: not again


def test_a_heartbeat_away_from_the_head_leaves_the_position_alone() -> None:
    cursor = live(10)
    cursor.offer(event(11))
    assert cursor.heartbeat_position(30) is None
    assert cursor.position == 10


# -- any interleaving -----------------------------------------------------------------------

TYPES = ["a", "a.x", "b", "b.x"]
FILTERS = st.sampled_from(
    [
        Filter(),
        Filter(types=("a.#",)),
        Filter(types=("*.x",)),
        Filter(types=("b",), sources=("s2",)),
        Filter(exclude_sources=("s1",)),
    ]
)


@dataclass(frozen=True)
class Spec:
    """An event to commit, before it has a position."""

    type: str
    tenant: str
    source: str
    pad: int

    def at(self, seq: int) -> Event:
        return event(seq, type=self.type, tenant=self.tenant, source=self.source, pad=self.pad)


SPECS = st.builds(
    Spec,
    type=st.sampled_from(TYPES),
    tenant=st.sampled_from([T, T, "other"]),
    source=st.sampled_from(["s1", "s2"]),
    pad=st.sampled_from([0, 0, 50, 400]),
)


@dataclass
class Read:
    """A store read in flight: where it reads from, and its page once the store answered."""

    after: int
    page: list[Event] | None = None


class Subscription(RuleBasedStateMachine):
    """A committed log, a router feeding the cursor, and a connection draining it.

    Events are committed, then routed in order (lagging arbitrarily, as the router may); the
    connection takes, reads pages from the store (the read may see the log as it was at
    ``begin_read`` or later) and heartbeats, in any order, a read in flight included.
    What it hands out must always be the log's matching events, in order, from where it began.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Event] = []  # committed, in seq order
        self.routed = 0  # how many events of the log the router has offered
        self.routed_through = 0  # the seq of the last event routed
        self.handed: list[int] = []  # what the connection wrote, in order
        self.read: Read | None = None
        self.start = 0
        self.page_size = 1
        self.cursor = Cursor(T, Filter(), 0, live=True)

    # -- set-up ---------------------------------------------------------------------------

    @initialize(
        flt=FILTERS,
        history=st.lists(SPECS, max_size=8),
        routed=st.integers(0, 8),
        resume=st.none() | st.integers(0, 12),
        max_events=st.integers(0, 4),
        max_bytes=st.sampled_from([1, 250, 500, 900, 1 << 20]),
        page_size=st.integers(1, 4),
    )
    def begin(
        self,
        flt: Filter,
        history: list[Spec],
        routed: int,
        resume: int | None,
        max_events: int,
        max_bytes: int,
        page_size: int,
    ) -> None:
        for spec in history:
            self._commit(spec, 1)
        for _ in range(min(routed, len(self.log))):
            self._route_next(offer=False)  # before the subscription existed
        self.page_size = page_size
        self.start = self.routed_through if resume is None else resume
        self.cursor = Cursor(
            T,
            flt,
            self.start,
            live=resume is None,
            max_events=max_events,
            max_bytes=max_bytes,
        )

    def matches(self, e: Event) -> bool:
        return e.tenant == self.cursor.tenant and self.cursor.filter.matches(e)

    def expected(self) -> list[int]:
        return [e.seq for e in self.log if e.seq > self.start and self.matches(e)]

    def _commit(self, spec: Spec, step: int) -> None:
        self.log.append(spec.at((self.log[-1].seq if self.log else 0) + step))

    def _route_next(self, *, offer: bool = True) -> None:
        e = self.log[self.routed]
        self.routed += 1
        self.routed_through = e.seq
        if offer and self.matches(e):
            cursor = self.cursor
            was_live, was_empty = not cursor.behind, not cursor.queue
            woke = cursor.offer(e)
            if was_live and cursor.behind:
                assert woke, "falling behind must wake the connection to read"
            elif was_empty and cursor.queue:
                assert woke, "the first queued event must wake the connection"

    def _page(self) -> list[Event]:
        assert self.read is not None
        found = [e for e in self.log if e.seq > self.read.after and self.matches(e)]
        return found[: self.page_size]

    # -- the log and the router -----------------------------------------------------------

    @rule(spec=SPECS, step=st.sampled_from([1, 1, 1, 2, 5]))
    def commit(self, spec: Spec, step: int) -> None:
        self._commit(spec, step)

    @precondition(lambda self: self.routed < len(self.log))
    @rule(count=st.integers(1, 4))
    def route(self, count: int) -> None:
        for _ in range(min(count, len(self.log) - self.routed)):
            self._route_next()

    @precondition(lambda self: self.routed > 0)
    @rule(index=st.integers(0, 100))
    def route_again(self, index: int) -> None:
        """A duplicate offer of an event routed already: it must change nothing visible."""
        e = self.log[index % self.routed]
        if self.matches(e):
            self.cursor.offer(e)

    # -- the connection -------------------------------------------------------------------

    @rule()
    def take(self) -> None:
        taken = seqs(self.cursor.take())
        if self.read is not None:
            assert taken == [], "nothing may overtake a page that is not written yet"
        self.handed.extend(taken)

    @precondition(lambda self: self.read is None)
    @rule(store_answers_at_once=st.booleans())
    def begin_read(self, store_answers_at_once: bool) -> None:
        self.read = Read(self.cursor.begin_read())
        if store_answers_at_once:
            self.read.page = self._page()

    @precondition(lambda self: self.read is not None and self.read.page is None)
    @rule()
    def store_answers(self) -> None:
        assert self.read is not None
        self.read.page = self._page()

    @precondition(lambda self: self.read is not None and self.read.page is not None)
    @rule()
    def finish_read(self) -> None:
        assert self.read is not None and self.read.page is not None
        page = self.read.page
        self.handed.extend(seqs(page))  # written to the socket before finish_read
        self.cursor.finish_read(page, self.page_size)
        self.read = None

    @rule()
    def heartbeat(self) -> None:
        cursor = self.cursor
        before = cursor.position
        advertised = cursor.heartbeat_position(self.routed_through)
        if self.read is not None:
            assert advertised is None, "a heartbeat must not run ahead of a page in flight"
        if advertised is None:
            assert cursor.position == before
        else:
            assert advertised == cursor.position == max(before, self.routed_through)

    # -- what must always hold ------------------------------------------------------------

    @invariant()
    def handed_out_is_a_gapless_prefix_of_the_matching_log(self) -> None:
        expected = self.expected()
        assert self.handed == expected[: len(self.handed)]

    @invariant()
    def position_is_exactly_what_was_handed_out(self) -> None:
        # a resume point: every matching event up to it was handed out, and nothing after it
        position = self.cursor.position
        assert self.handed == [seq for seq in self.expected() if seq <= position]

    @invariant()
    def the_queue_is_bounded_ordered_and_after_the_position(self) -> None:
        cursor = self.cursor
        queue = list(cursor.queue)
        assert len(queue) <= cursor.max_events
        assert cursor.queued_bytes == sum(size(e) for e in queue)
        if queue:
            assert cursor.queued_bytes - size(queue[-1]) < cursor.max_bytes
        assert all(a.seq < b.seq for a, b in itertools.pairwise(queue))
        assert all(e.seq > cursor.position for e in queue)
        if cursor.behind:
            assert not queue

    def teardown(self) -> None:
        """Stop committing, let the router and the connection drain: nothing may be missing."""
        cursor = self.cursor
        if self.read is not None:
            if self.read.page is None:
                self.store_answers()
            self.finish_read()
        while self.routed < len(self.log):
            self._route_next()
        for _ in range(len(self.log) + 3):
            if cursor.behind:
                self.begin_read(store_answers_at_once=True)
                self.finish_read()
            self.take()
            if not cursor.behind and not cursor.queue:
                break
        assert not cursor.behind and not cursor.queue
        assert self.handed == self.expected()
        # drained and live: a heartbeat advertises the routed head (unless it resumed past it)
        advertised = cursor.heartbeat_position(self.routed_through)
        if self.start <= self.routed_through:
            assert advertised == self.routed_through
        else:
            assert advertised is None


Subscription.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_whatever_the_interleaving_every_matching_event_is_handed_out_once_in_order = (
    Subscription.TestCase
)


@pytest.mark.parametrize("page_size", [1, 2, 500])
def test_catching_up_from_far_behind_pages_the_store_without_gaps(page_size: int) -> None:
    log = [event(seq, type="a.x" if seq % 3 else "b") for seq in range(1, 50)]
    cursor = Cursor(T, Filter(types=("a.#",)), 0, live=False, max_events=2)
    handed: list[int] = []
    committed = 40
    for _ in range(100):
        if not cursor.behind:
            break
        after = cursor.begin_read()
        # the store answers; meanwhile two more events are committed and routed
        page = [e for e in log[:committed] if e.seq > after and cursor.filter.matches(e)]
        page = page[:page_size]
        for e in log[committed : committed + 2]:
            if cursor.filter.matches(e):
                cursor.offer(e)
        committed = min(committed + 2, len(log))
        handed += seqs(page)
        cursor.finish_read(page, page_size)
        handed += seqs(cursor.take())
    assert not cursor.behind
    assert handed == [e.seq for e in log[:committed] if cursor.filter.matches(e)]
