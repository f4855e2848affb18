"""Groups in flight together are handed on in position order, whatever order they land in."""

from __future__ import annotations

from tidings.store.postgres.commit_order import CommitOrder


def test_a_group_that_follows_the_last_position_is_handed_on_at_once() -> None:
    order: CommitOrder[str] = CommitOrder(last=10)
    a, b = order.launch(), order.launch()

    assert order.finish(a, (11, 15), "a") == ["a"]
    assert order.finish(b, (16, 16), "b") == ["b"]
    assert order.in_flight == 0 and order.waiting == 0


def test_a_later_group_that_lands_first_waits_for_the_earlier_one() -> None:
    order: CommitOrder[str] = CommitOrder(last=10)
    a, b = order.launch(), order.launch()

    assert order.finish(b, (16, 20), "b") == []  # 11-15 may still be on their way
    assert order.waiting == 1
    assert order.finish(a, (11, 15), "a") == ["a", "b"]


def test_a_group_sent_second_may_take_the_lock_first() -> None:
    order: CommitOrder[str] = CommitOrder(last=10)
    a, b = order.launch(), order.launch()

    assert order.finish(a, (14, 20), "a") == []  # something below 14 may be in flight
    assert order.finish(b, (11, 13), "b") == ["b", "a"]


def test_with_a_gap_a_group_waits_until_every_group_in_flight_with_it_has_landed() -> None:
    """Another node's commit (or a hole) leaves a gap: nothing says the gap is not ours."""
    order: CommitOrder[str] = CommitOrder(last=10)
    a, b = order.launch(), order.launch()

    assert order.finish(a, (30, 31), "a") == []
    c = order.launch()  # sent after a's answer: its positions come after a's, maybe not b's
    assert order.finish(b, (40, 41), "b") == ["a"]
    assert order.finish(c, (35, 36), "c") == ["c", "b"]


def test_a_group_sent_after_an_answer_does_not_hold_that_answer_back() -> None:
    order: CommitOrder[str] = CommitOrder()  # the last position is not known
    a = order.launch()
    assert order.finish(a, (5, 6), "a") == ["a"]
    b = order.launch()
    c = order.launch()

    assert order.finish(c, (9, 9), "c") == []  # b was in flight: it may hold 8
    assert order.finish(b, (7, 8), "b") == ["b", "c"]


def test_a_group_that_stored_nothing_is_handed_on_at_once_and_holds_nothing_back() -> None:
    order: CommitOrder[str] = CommitOrder(last=10)
    a, b, c = order.launch(), order.launch(), order.launch()

    assert order.finish(c, (13, 13), "c") == []
    assert order.finish(b, None, "b failed") == ["b failed"]
    assert order.finish(a, (11, 12), "a") == ["a", "c"]


def test_the_lowest_ready_group_goes_first_when_several_wait() -> None:
    order: CommitOrder[str] = CommitOrder(last=0)
    tokens = [order.launch() for _ in range(4)]

    assert order.finish(tokens[3], (40, 40), "d") == []
    assert order.finish(tokens[1], (20, 20), "b") == []
    assert order.finish(tokens[2], (30, 30), "c") == []
    assert order.finish(tokens[0], (10, 10), "a") == ["a", "b", "c", "d"]
