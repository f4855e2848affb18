"""MQTT topic filters: validity, matching (MQTT 3.1.1 section 4.7 examples), overlap, types."""

from __future__ import annotations

import pytest

from tidings.ingest.topics import (
    dlq_pattern,
    filter_error,
    filters_overlap,
    split_share,
    strip_topic,
    template_pattern,
    topic_error,
    topic_matches,
    type_from_topic,
)


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#",
        "+",
        "a/b",
        "a/+/c",
        "a/#",
        "+/+",
        "/+",
        "/",
        "a//b",
        "$SYS/#",
        "$share/g/a/#",
        "sport/tennis/+",
    ],
)
def test_valid_filters_are_accepted(topic_filter: str) -> None:
    assert filter_error(topic_filter) is None


@pytest.mark.parametrize(
    "topic_filter",
    [
        "",
        "foo+",
        "a/#/b",
        "a#",
        "a/b#",
        "+a/b",
        "a/++",
        "##",
        "$share/g",
        "$share//a",
        "$share/g+/a",
        "a\x00b",
    ],
)
def test_invalid_filters_are_refused(topic_filter: str) -> None:
    assert filter_error(topic_filter) is not None


@pytest.mark.parametrize("topic", ["a", "a/b", "/", "$SYS/x"])
def test_topic_names_without_wildcards_are_valid(topic: str) -> None:
    assert topic_error(topic) is None


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "a+b"])
def test_topic_names_with_wildcards_or_empty_are_invalid(topic: str) -> None:
    assert topic_error(topic) is not None


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        # The multi-level wildcard (4.7.1.2).
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "anything/at/all", True),
        ("sport/tennis/#", "sport/football", False),
        # The single-level wildcard (4.7.1.3).
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player2", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+", "finance", True),
        ("+/tennis/#", "sport/tennis/player1", True),
        # Literal levels are case-sensitive and exact.
        ("a/b", "a/b", True),
        ("a/b", "A/b", False),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        # Topics beginning with $ (4.7.2).
        ("#", "$SYS/broker/load", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        # A shared subscription matches like its filter.
        ("$share/tidings/tracker/events/#", "tracker/events/projects/created", True),
        ("$share/tidings/tracker/events/#", "tracker/other", False),
        ("$share/g/#", "$SYS/x", False),
    ],
)
def test_filters_match_topics_as_the_specification_says(
    topic_filter: str, topic: str, expected: bool
) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_a_share_prefix_is_split_from_its_filter() -> None:
    assert split_share("$share/group/a/+/c") == ("group", "a/+/c")
    assert split_share("a/b") == (None, "a/b")


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("tracker/#", "tracker/dlq/+/#", True),
        ("tracker/events/#", "tracker/dlq/+/#", False),
        ("+/dlq/#", "tracker/dlq/+/#", True),
        ("tracker/dlq", "tracker/dlq/+/#", False),
        ("#", "x/+/#", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/+", True),
        ("a/#", "a", True),
        ("#", "$SYS/+", False),
        ("$share/g/tidings/#", "tidings/+/+", True),
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
    ],
)
def test_filters_overlap_when_some_topic_matches_both(
    first: str, second: str, expected: bool
) -> None:
    assert filters_overlap(first, second) is expected
    assert filters_overlap(second, first) is expected


def test_dlq_pattern_matches_exactly_prefixed_topics() -> None:
    pattern = dlq_pattern("tracker/dlq")
    assert topic_matches(pattern, "tracker/dlq/tracker/events/a")
    assert topic_matches(pattern, "tracker/dlq/x")
    assert not topic_matches(pattern, "tracker/dlq")
    assert not topic_matches(pattern, "tracker/other/x")


def test_template_placeholders_become_single_level_wildcards() -> None:
    assert template_pattern("tidings/{tenant}/{type}") == "tidings/+/+"
    assert template_pattern("fixed/topic") == "fixed/topic"
    assert template_pattern("t/x-{type}") == "t/+"


def test_strip_prefix_maps_the_rest_of_the_topic_to_a_type() -> None:
    assert (
        type_from_topic("tracker/events/projects/created", "tracker/events") == "projects.created"
    )
    assert (
        type_from_topic("tracker/events/projects/created", "tracker/events/") == "projects.created"
    )
    assert type_from_topic("other/projects/created", "tracker/events") == "other.projects.created"
    assert type_from_topic("a/b", None) == "a.b"
    assert strip_topic("tracker/eventsX/a", "tracker/events") == "tracker/eventsX/a"
