"""The subscription index: who wants an event type, per tenant, without scanning subscribers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.envelope.types import type_matches
from tidings.router.trie import SubscriptionIndex

T = "default"


def index_with(*subscriptions: tuple[str, list[str]], tenant: str = T) -> SubscriptionIndex[str]:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for key, patterns in subscriptions:
        index.add(tenant, key, patterns)
    return index


def assert_pruned(index: SubscriptionIndex[str]) -> None:
    """Nothing left behind: no tenant root, no remembered pattern, a count of zero."""
    assert len(index) == 0
    assert index._roots == {}
    assert index._patterns == {}


# -- literal segments ---------------------------------------------------------------------


def test_a_literal_pattern_matches_only_the_same_type() -> None:
    index = index_with(("k", ["user.created"]))
    assert index.match(T, "user.created") == {"k"}
    for other in ["user", "user.created.x", "user.deleted", "User.created", "created", "x.user"]:
        assert index.match(T, other) == set(), other


def test_a_literal_pattern_is_not_a_prefix_match() -> None:
    index = index_with(("k", ["a.b"]))
    assert index.match(T, "a") == set()
    assert index.match(T, "a.b.c") == set()
    assert index.match(T, "a.bc") == set()


# -- "*": exactly one segment -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "a", True),
        ("*", "a.b", False),
        ("user.*", "user.created", True),
        ("user.*", "user", False),
        ("user.*", "user.a.b", False),
        ("*.created", "user.created", True),
        ("*.created", "created", False),
        ("*.created", "a.user.created", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*.c", "a.b.d", False),
        ("*.*", "a.b", True),
        ("*.*", "a", False),
    ],
)
def test_a_star_matches_exactly_one_segment(pattern: str, event_type: str, expected: bool) -> None:
    index = index_with(("k", [pattern]))
    assert (index.match(T, event_type) == {"k"}) is expected


# -- "#": zero or more trailing segments --------------------------------------------------


@pytest.mark.parametrize("event_type", ["a", "a.b", "a.b.c", "a.b.c.d.e"])
def test_a_trailing_hash_matches_the_prefix_itself_and_anything_below_it(event_type: str) -> None:
    index = index_with(("k", ["a.#"]))
    assert index.match(T, event_type) == {"k"}


@pytest.mark.parametrize("event_type", ["b", "ab", "b.a", "a-b.c", "aa.b"])
def test_a_trailing_hash_does_not_match_outside_its_prefix(event_type: str) -> None:
    index = index_with(("k", ["a.#"]))
    assert index.match(T, event_type) == set()


@pytest.mark.parametrize("event_type", ["a", "user.created", "x.y.z.w", "device.switch.on"])
def test_a_hash_alone_matches_every_type(event_type: str) -> None:
    index = index_with(("k", ["#"]))
    assert index.match(T, event_type) == {"k"}


def test_a_hash_after_a_star_needs_at_least_one_segment_before_it() -> None:
    index = index_with(("one", ["*.#"]), ("two", ["*.*.#"]))
    assert index.match(T, "a") == {"one"}
    assert index.match(T, "a.b") == {"one", "two"}
    assert index.match(T, "a.b.c") == {"one", "two"}


def test_a_deep_hash_matches_from_its_own_depth_only() -> None:
    index = index_with(("k", ["a.b.#"]))
    assert index.match(T, "a") == set()
    assert index.match(T, "a.b") == {"k"}
    assert index.match(T, "a.b.c.d") == {"k"}
    assert index.match(T, "a.c.b") == set()


# -- several keys and several patterns ----------------------------------------------------


def test_every_matching_key_is_found_once_whatever_matched_it() -> None:
    index = index_with(
        ("literal", ["user.created"]),
        ("star", ["user.*"]),
        ("hash", ["user.#"]),
        ("all", ["#"]),
        ("other", ["order.*"]),
    )
    assert index.match(T, "user.created") == {"literal", "star", "hash", "all"}
    assert index.match(T, "user") == {"hash", "all"}
    assert index.match(T, "order.paid") == {"other", "all"}
    assert index.match(T, "unknown") == {"all"}


def test_a_key_with_several_patterns_is_matched_by_any_of_them() -> None:
    index = index_with(("k", ["user.created", "order.*", "device.#"]))
    assert index.match(T, "user.created") == {"k"}
    assert index.match(T, "order.paid") == {"k"}
    assert index.match(T, "device") == {"k"}
    assert index.match(T, "device.switch.on") == {"k"}
    assert index.match(T, "user.deleted") == set()


def test_a_key_whose_patterns_overlap_is_returned_once() -> None:
    index = index_with(("k", ["a.b", "a.*", "a.#", "#"]))
    assert index.match(T, "a.b") == {"k"}
    assert len(index) == 1


def test_a_pattern_repeated_in_one_subscription_is_indexed_once() -> None:
    index = index_with(("k", ["a.b", "a.b", "a.#", "a.#"]))
    assert index.match(T, "a.b") == {"k"}
    index.remove(T, "k")
    assert_pruned(index)


def test_a_key_without_patterns_matches_every_type() -> None:
    index = index_with(("everything", []))
    for event_type in ["a", "a.b", "user.created", "x.y.z"]:
        assert index.match(T, event_type) == {"everything"}


def test_a_key_without_patterns_can_be_removed() -> None:
    index = index_with(("everything", []))
    index.remove(T, "everything")
    assert index.match(T, "a") == set()
    assert_pruned(index)


def test_patterns_may_be_any_iterable() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add(T, "k", (p for p in ["a", "b.*"]))
    assert index.match(T, "a") == {"k"}
    assert index.match(T, "b.c") == {"k"}


def test_keys_may_be_any_hashable_object() -> None:
    class Subscriber:
        pass

    first, second = Subscriber(), Subscriber()
    index: SubscriptionIndex[Subscriber] = SubscriptionIndex()
    index.add(T, first, ["a"])
    index.add(T, second, ["a"])
    assert index.match(T, "a") == {first, second}
    index.remove(T, first)
    assert index.match(T, "a") == {second}


# -- adding twice, invalid patterns -------------------------------------------------------


def test_adding_a_key_twice_is_refused_and_keeps_the_first_subscription() -> None:
    index = index_with(("k", ["a"]))
    with pytest.raises(KeyError, match="already subscribed"):
        index.add(T, "k", ["b"])
    assert index.match(T, "a") == {"k"}
    assert index.match(T, "b") == set()
    assert len(index) == 1


def test_the_same_key_may_subscribe_in_two_tenants() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("t1", "k", ["a"])
    index.add("t2", "k", ["b"])
    assert index.match("t1", "a") == {"k"}
    assert index.match("t1", "b") == set()
    assert index.match("t2", "b") == {"k"}
    assert len(index) == 2


def test_a_key_can_subscribe_again_after_it_was_removed() -> None:
    index = index_with(("k", ["a"]))
    index.remove(T, "k")
    index.add(T, "k", ["b"])
    assert index.match(T, "a") == set()
    assert index.match(T, "b") == {"k"}


@pytest.mark.parametrize("bad", ["a.#.b", "#.a", "", "a..b", "a b", "a.**", "é"])
def test_an_invalid_pattern_is_refused_and_nothing_is_indexed(bad: str) -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    with pytest.raises(ValueError):
        index.add(T, "k", ["a.b", "c.#", bad])
    assert index.match(T, "a.b") == set()
    assert index.match(T, "c.d") == set()
    assert_pruned(index)
    index.add(T, "k", ["a.b"])  # the refused key was not remembered either
    assert index.match(T, "a.b") == {"k"}


# -- removal ------------------------------------------------------------------------------


def test_removing_a_key_stops_it_matching() -> None:
    index = index_with(("k", ["a.b", "c.*", "d.#"]), ("other", ["a.b"]))
    index.remove(T, "k")
    assert index.match(T, "a.b") == {"other"}
    assert index.match(T, "c.x") == set()
    assert index.match(T, "d") == set()
    assert len(index) == 1


def test_removing_one_key_keeps_the_others_on_a_shared_path() -> None:
    index = index_with(
        ("short", ["a.b"]), ("long", ["a.b.c"]), ("hash", ["a.b.#"]), ("star", ["a.*.c"])
    )
    index.remove(T, "long")
    assert index.match(T, "a.b") == {"short", "hash"}
    assert index.match(T, "a.b.c") == {"hash", "star"}
    index.remove(T, "short")
    assert index.match(T, "a.b") == {"hash"}
    index.remove(T, "hash")
    assert index.match(T, "a.b.c") == {"star"}
    index.remove(T, "star")
    assert_pruned(index)


def test_removing_every_key_leaves_an_empty_index_that_matches_nothing() -> None:
    subscriptions = {
        "a": ["user.created"],
        "b": ["user.*", "order.#"],
        "c": ["#"],
        "d": [],
        "e": ["*.*.x", "a.b.c.d.e"],
    }
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for tenant in ["t1", "t2"]:
        for key, patterns in subscriptions.items():
            index.add(tenant, key, patterns)
    assert len(index) == 10
    for tenant in ["t1", "t2"]:
        for key in subscriptions:
            index.remove(tenant, key)
    for event_type in ["user.created", "order", "a.b.c.d.e", "q.r.x", "z"]:
        assert index.match("t1", event_type) == set()
        assert index.match("t2", event_type) == set()
    assert_pruned(index)


def test_removing_an_unknown_key_does_nothing() -> None:
    index = index_with(("k", ["a"]))
    index.remove(T, "nobody")
    index.remove("elsewhere", "k")
    assert index.match(T, "a") == {"k"}
    assert len(index) == 1


def test_removing_a_key_twice_does_nothing_the_second_time() -> None:
    index = index_with(("k", ["a"]), ("other", ["a"]))
    index.remove(T, "k")
    index.remove(T, "k")
    assert index.match(T, "a") == {"other"}
    assert len(index) == 1


# -- tenants ------------------------------------------------------------------------------


def test_tenants_never_see_each_others_subscriptions() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("t1", "k1", ["#"])
    index.add("t2", "k2", ["user.created"])
    assert index.match("t1", "user.created") == {"k1"}
    assert index.match("t2", "user.created") == {"k2"}
    assert index.match("t3", "user.created") == set()


def test_removing_a_tenants_last_key_leaves_other_tenants_alone() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("t1", "k", ["a"])
    index.add("t2", "k", ["a"])
    index.remove("t1", "k")
    assert "t1" not in index._roots
    assert index.match("t1", "a") == set()
    assert index.match("t2", "a") == {"k"}


def test_an_empty_index_matches_nothing() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    assert index.match(T, "a") == set()
    assert len(index) == 0


# -- against the reference ----------------------------------------------------------------

# A small alphabet makes types and patterns share segments often enough to be interesting.
SEGMENT = st.sampled_from(["a", "b", "c", "created", "ns:x", "A-1"])
TYPES = st.lists(SEGMENT, min_size=1, max_size=5).map(".".join)
PATTERNS = st.builds(
    lambda head, hashed: ".".join([*head, "#"] if hashed else head) or "#",
    st.lists(st.one_of(SEGMENT, st.just("*")), min_size=0, max_size=4),
    st.booleans(),
)
TENANTS = st.sampled_from(["t1", "t2"])
# key -> (tenant, patterns); an empty pattern list means every type
SUBSCRIPTIONS = st.dictionaries(
    st.integers(0, 40), st.tuples(TENANTS, st.lists(PATTERNS, max_size=4)), max_size=25
)


def reference(
    subscriptions: dict[int, tuple[str, list[str]]], tenant: str, event_type: str
) -> set[int]:
    """The brute-force answer: every key of the tenant with a pattern matching the type."""
    return {
        key
        for key, (owner, patterns) in subscriptions.items()
        if owner == tenant and any(type_matches(p, event_type) for p in patterns or ["#"])
    }


def build(subscriptions: dict[int, tuple[str, list[str]]]) -> SubscriptionIndex[int]:
    index: SubscriptionIndex[int] = SubscriptionIndex()
    for key, (tenant, patterns) in subscriptions.items():
        index.add(tenant, key, patterns)
    return index


@settings(max_examples=150, deadline=None)
@given(SUBSCRIPTIONS, st.lists(st.tuples(TENANTS, TYPES), min_size=1, max_size=20))
def test_matching_equals_the_brute_force_answer(
    subscriptions: dict[int, tuple[str, list[str]]], queries: list[tuple[str, str]]
) -> None:
    index = build(subscriptions)
    assert len(index) == len(subscriptions)
    for tenant, event_type in queries:
        assert index.match(tenant, event_type) == reference(subscriptions, tenant, event_type)


@settings(max_examples=150, deadline=None)
@given(SUBSCRIPTIONS, st.lists(st.tuples(TENANTS, TYPES), min_size=1, max_size=20), st.data())
def test_matching_equals_the_brute_force_answer_after_removals(
    subscriptions: dict[int, tuple[str, list[str]]],
    queries: list[tuple[str, str]],
    data: st.DataObject,
) -> None:
    index = build(subscriptions)
    remaining = dict(subscriptions)
    order = data.draw(st.permutations(sorted(subscriptions)))
    removed = order[: data.draw(st.integers(0, len(order)))]
    for key in removed:
        tenant = remaining.pop(key)[0]
        index.remove(tenant, key)
        for query_tenant, event_type in queries:
            assert index.match(query_tenant, event_type) == reference(
                remaining, query_tenant, event_type
            )
    assert len(index) == len(remaining)
    # add back what was removed, under other patterns: nothing stale may answer
    readded = {key: ("t1", ["created.#"]) for key in removed}
    for key, (tenant, patterns) in readded.items():
        index.add(tenant, key, patterns)
    remaining.update(readded)
    for tenant, event_type in queries:
        assert index.match(tenant, event_type) == reference(remaining, tenant, event_type)


@settings(max_examples=100, deadline=None)
@given(SUBSCRIPTIONS, st.randoms(use_true_random=False))
def test_removing_everything_in_any_order_leaves_nothing_behind(
    subscriptions: dict[int, tuple[str, list[str]]], rng: random.Random
) -> None:
    index = build(subscriptions)
    keys = list(subscriptions.items())
    rng.shuffle(keys)
    for key, (tenant, _) in keys:
        index.remove(tenant, key)
    assert len(index) == 0
    assert index._roots == {}
    assert index._patterns == {}
