"""Gap detection: announcements are hints; whatever they miss is read from the store."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.router.gaps import GapTracker, Plan

# -- one announcement at a time -------------------------------------------------------------


def test_a_contiguous_carried_announcement_is_routed_directly() -> None:
    plan = GapTracker(10).plan(10, 15, carried=True)
    assert plan == Plan(skip=False, read_from=None, read_to=None, use_carried_after=10)


def test_an_overlapping_carried_announcement_routes_only_the_new_part() -> None:
    plan = GapTracker(10).plan(7, 15, carried=True)
    assert plan == Plan(skip=False, read_from=None, read_to=None, use_carried_after=10)


def test_a_carried_announcement_after_a_gap_reads_the_gap_then_routes_what_it_carries() -> None:
    plan = GapTracker(10).plan(12, 15, carried=True)
    assert plan == Plan(skip=False, read_from=10, read_to=12, use_carried_after=12)


def test_an_uncarried_announcement_reads_everything_new() -> None:
    plan = GapTracker(10).plan(10, 15, carried=False)
    assert plan == Plan(skip=False, read_from=10, read_to=15, use_carried_after=15)


def test_an_uncarried_announcement_after_a_gap_reads_the_gap_too() -> None:
    plan = GapTracker(10).plan(12, 15, carried=False)
    assert plan == Plan(skip=False, read_from=10, read_to=15, use_carried_after=15)


def test_an_uncarried_overlapping_announcement_reads_only_the_new_part() -> None:
    plan = GapTracker(10).plan(5, 15, carried=False)
    assert plan == Plan(skip=False, read_from=10, read_to=15, use_carried_after=15)


@pytest.mark.parametrize("carried", [True, False])
@pytest.mark.parametrize(("first", "last"), [(5, 10), (0, 3), (9, 10), (10, 10), (2, 7)])
def test_a_stale_announcement_is_skipped(first: int, last: int, carried: bool) -> None:
    tracker = GapTracker(10)
    plan = tracker.plan(first, last, carried)
    assert plan.skip
    assert plan.read_from is None and plan.read_to is None
    assert tracker.routed_through == 10


def test_planning_does_not_move_the_tracker() -> None:
    tracker = GapTracker(10)
    tracker.plan(10, 15, carried=True)
    tracker.plan(20, 30, carried=False)
    assert tracker.routed_through == 10


def test_advance_moves_forwards_only() -> None:
    tracker = GapTracker(0)
    tracker.advance(5)
    assert tracker.routed_through == 5
    tracker.advance(3)
    assert tracker.routed_through == 5
    tracker.advance(5)
    assert tracker.routed_through == 5
    tracker.advance(8)
    assert tracker.routed_through == 8


def test_after_routing_an_announcement_the_next_contiguous_one_needs_no_read() -> None:
    tracker = GapTracker(0)
    tracker.advance(tracker.plan(0, 3, carried=True).use_carried_after)
    tracker.advance(3)
    assert tracker.plan(3, 5, carried=True).read_from is None


def test_a_fresh_tracker_starts_at_the_store_head_so_history_is_not_rerouted() -> None:
    tracker = GapTracker(100)
    assert tracker.plan(0, 100, carried=False).skip
    plan = tracker.plan(100, 101, carried=True)
    assert plan.read_from is None and plan.use_carried_after == 100


# -- a stream of unreliable announcements ---------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """One backplane announcement: positions (first, last], the events in it."""

    first: int
    last: int
    events: tuple[int, ...]  # the stored positions in the range (some may be missing)


@dataclass(frozen=True)
class Delivery:
    commit: Commit
    carried: bool  # False: the payload did not fit, only the range arrived


class Node:
    """Applies plans the way the router does, against an in-memory log."""

    def __init__(self, log: list[int], start: int = 0) -> None:
        self.log = log  # the store: every committed position, in order
        self.tracker = GapTracker(start)
        self.routed: list[int] = []
        self.reads: list[tuple[int, int]] = []

    def route(self, seq: int) -> None:
        assert seq > self.tracker.routed_through, f"{seq} routed out of order or twice"
        self.routed.append(seq)
        self.tracker.advance(seq)

    def receive(self, first: int, last: int, events: tuple[int, ...] | None) -> None:
        tracker = self.tracker
        plan = tracker.plan(first, last, events is not None)
        if plan.skip:
            assert last <= tracker.routed_through
            return
        if plan.read_from is not None:
            assert plan.read_to is not None
            assert plan.read_from == tracker.routed_through, "a read must start where routing is"
            assert plan.read_to > plan.read_from
            self.reads.append((plan.read_from, plan.read_to))
            for seq in self.log:
                if plan.read_from < seq <= plan.read_to:
                    self.route(seq)
            tracker.advance(plan.read_to)
        else:
            assert events is not None, "only carried events can be routed without a read"
        for seq in events or ():
            if seq > plan.use_carried_after:
                self.route(seq)
        tracker.advance(last)

    def check_head(self) -> None:
        """What the router does now and then: read up to the store's head."""
        head = self.log[-1] if self.log else 0
        if head > self.tracker.routed_through:
            self.receive(self.tracker.routed_through, head, None)


@st.composite
def logs(draw: st.DrawFn, *, chained: bool | None = None) -> tuple[list[int], list[Commit]]:
    """Committed positions (with holes, as rolled-back positions leave) grouped into commits.

    A chained commit announces from the previous commit's last position, holes included; an
    unchained one from just before its first event, as ``Announcement.of`` does.
    """
    if chained is None:
        chained = draw(st.booleans())
    steps = draw(st.lists(st.integers(1, 3), min_size=0, max_size=40))
    log: list[int] = []
    seq = 0
    for step in steps:
        seq += step
        log.append(seq)
    commits: list[Commit] = []
    index = 0
    while index < len(log):
        size = draw(st.integers(1, 4))
        group = tuple(log[index : index + size])
        previous = commits[-1].last if commits else 0
        first = previous if chained else group[0] - 1
        commits.append(Commit(first, group[-1], group))
        index += size
    return log, commits


@st.composite
def unreliable(draw: st.DrawFn, commits: list[Commit]) -> list[Delivery]:
    """Announcements lost, duplicated, stripped of their events and delivered out of order."""
    deliveries: list[Delivery] = []
    for commit in commits:
        copies = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
        deliveries.extend(Delivery(commit, draw(st.booleans())) for _ in range(copies))
    return list(draw(st.permutations(deliveries)))


def deliver(node: Node, deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        commit = delivery.commit
        node.receive(commit.first, commit.last, commit.events if delivery.carried else None)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_every_position_is_routed_exactly_once_and_in_order_whatever_the_backplane_does(
    data: st.DataObject,
) -> None:
    log, commits = data.draw(logs())
    node = Node(log)
    deliver(node, data.draw(unreliable(commits)))
    node.check_head()
    assert node.routed == log


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_routing_is_exact_without_a_final_head_check_when_the_last_announcement_arrives(
    data: st.DataObject,
) -> None:
    log, commits = data.draw(logs())
    deliveries = data.draw(unreliable(commits))
    if commits:
        deliveries.append(Delivery(commits[-1], data.draw(st.booleans())))
    node = Node(log)
    deliver(node, deliveries)
    assert node.routed == log


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_node_starting_mid_log_routes_exactly_what_follows_its_start(
    data: st.DataObject,
) -> None:
    log, commits = data.draw(logs())
    start = data.draw(st.integers(0, log[-1] if log else 0))
    node = Node(log, start)
    deliver(node, data.draw(unreliable(commits)))
    node.check_head()
    assert node.routed == [seq for seq in log if seq > start]


@settings(max_examples=200, deadline=None)
@given(logs(chained=True), st.data())
def test_a_reliable_backplane_never_causes_a_store_read(
    log_and_commits: tuple[list[int], list[Commit]], data: st.DataObject
) -> None:
    log, commits = log_and_commits
    node = Node(log)
    for commit in commits:
        # duplicates are harmless too: the copy is skipped, it never reads
        for _ in range(data.draw(st.integers(1, 2))):
            node.receive(commit.first, commit.last, commit.events)
    assert node.routed == log
    assert node.reads == []


@settings(max_examples=200, deadline=None)
@given(logs(chained=True), st.data())
def test_a_lost_announcement_is_read_back_in_one_range_ending_at_the_next_one(
    log_and_commits: tuple[list[int], list[Commit]], data: st.DataObject
) -> None:
    log, commits = log_and_commits
    if len(commits) < 2:
        return
    lost = data.draw(st.integers(0, len(commits) - 2))
    node = Node(log)
    for index, commit in enumerate(commits):
        if index != lost:
            node.receive(commit.first, commit.last, commit.events)
    assert node.routed == log
    assert node.reads == [(commits[lost - 1].last if lost else 0, commits[lost + 1].first)]
