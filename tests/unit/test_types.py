"""Event type grammar and type patterns (``*`` one segment, ``#`` zero or more at the end)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.envelope.types import (
    MAX_TYPE_LENGTH,
    is_literal,
    pattern_regex,
    split_pattern,
    type_error,
    type_matches,
)

# A small alphabet makes generated types and patterns collide often enough to be interesting.
SMALL_SEGMENTS = st.sampled_from(["a", "b", "x", "created", "Dev-1", "ns:x", "_"])
ANY_SEGMENT = st.from_regex(r"[A-Za-z0-9_\-:]{1,6}", fullmatch=True)
SEGMENTS = st.one_of(SMALL_SEGMENTS, ANY_SEGMENT)
TYPES = st.lists(SEGMENTS, min_size=1, max_size=5).map(".".join)
PATTERNS = st.builds(
    lambda head, hashed: ".".join([*head, "#"] if hashed else head) or "#",
    st.lists(st.one_of(SMALL_SEGMENTS, st.just("*")), min_size=0, max_size=4),
    st.booleans(),
)


def reference_match(pattern: list[str], segments: list[str]) -> bool:
    """Segment by segment: the meaning of a pattern, written as plainly as possible."""
    if not pattern:
        return not segments
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # zero or more segments: try every split
        return any(reference_match(rest, segments[skip:]) for skip in range(len(segments) + 1))
    if not segments:
        return False
    if head != "*" and head != segments[0]:
        return False
    return reference_match(rest, segments[1:])


@pytest.mark.parametrize(
    "value",
    [
        "user.created",
        "STATE_CHANGED",
        "device.switch.switchLevel",
        "a",
        "a-b:c_d.9",
        "x" * MAX_TYPE_LENGTH,
        ":.-._",
    ],
)
def test_valid_types_have_no_error(value: str) -> None:
    assert type_error(value) is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("x" * (MAX_TYPE_LENGTH + 1), "longer than 200"),
        ("user created", "segments"),
        ("user..created", "segments"),
        ("user.created.", "segments"),
        (".user", "segments"),
        ("usér.created", "segments"),
        ("user/created", "segments"),
        ("user.*", "segments"),
        ("user.#", "segments"),
        ("user.created\n", "segments"),
        ("\tuser", "segments"),
    ],
)
def test_invalid_types_are_explained(value: str, fragment: str) -> None:
    problem = type_error(value)
    assert problem is not None
    assert fragment in problem


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("user.created", "user.created", True),
        ("user.created", "user.created.x", False),
        ("user.created", "User.created", False),
        ("*.created", "user.created", True),
        ("*.created", "created", False),
        ("*.created", "a.user.created", False),
        ("user.*", "user.deleted", True),
        ("user.*", "user", False),
        ("user.*", "user.a.b", False),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("a.#", "a", True),
        ("a.#", "a.b", True),
        ("a.#", "a.b.c", True),
        ("a.#", "ab", False),
        ("a.#", "b.a", False),
        ("*.#", "a", True),
        ("*.*.#", "a", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("ns:x.#", "ns:x.y", True),
        ("a-b", "a_b", False),
        ("a.b", "a-b", False),
    ],
)
def test_pattern_matching_examples(pattern: str, event_type: str, expected: bool) -> None:
    assert type_matches(pattern, event_type) is expected


def test_a_regex_special_character_in_a_pattern_is_taken_literally() -> None:
    # "." separates segments; nothing else in a segment may act as a wildcard
    assert not type_matches("a-b", "aab")
    assert not type_matches("a:b", "a.b")


def test_a_pattern_never_matches_a_type_with_a_trailing_newline() -> None:
    assert not type_matches("user.created", "user.created\n")
    assert not type_matches("user.*", "user.created\n")


@pytest.mark.parametrize(
    "pattern", ["#.a", "a.#.b", "#.#", "", "a..b", "a.", "a b", "a.**", "a.#x", "é", "a.b\n"]
)
def test_invalid_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        split_pattern(pattern)


def test_hash_not_last_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="last segment"):
        split_pattern("a.#.b")


def test_patterns_longer_than_200_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="1-200"):
        split_pattern("a." * 100 + "#")


def test_split_pattern_gives_the_segments_of_a_valid_pattern() -> None:
    assert split_pattern("a.*.#") == ("a", "*", "#")


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [("a.b", True), ("a", True), ("a.*", False), ("#", False), ("a.#", False), ("*", False)],
)
def test_is_literal_tells_patterns_with_wildcards_apart(pattern: str, literal: bool) -> None:
    assert is_literal(pattern) is literal


@given(TYPES)
def test_a_literal_pattern_matches_exactly_itself(event_type: str) -> None:
    assert type_matches(event_type, event_type)
    assert not type_matches(event_type, event_type + ".x")
    assert not type_matches(event_type, "x." + event_type)


@given(TYPES, TYPES)
def test_a_literal_pattern_matches_only_the_same_type(pattern: str, event_type: str) -> None:
    assert type_matches(pattern, event_type) is (pattern == event_type)


@given(TYPES)
def test_hash_alone_matches_every_valid_type(event_type: str) -> None:
    assert type_matches("#", event_type)


@given(TYPES)
def test_star_dot_x_matches_iff_two_segments_ending_in_x(event_type: str) -> None:
    segments = event_type.split(".")
    expected = len(segments) == 2 and segments[1] == "x"
    assert type_matches("*.x", event_type) is expected


@given(TYPES, TYPES)
def test_prefix_hash_matches_the_prefix_and_everything_below_it(prefix: str, rest: str) -> None:
    assert type_matches(prefix + ".#", prefix)
    assert type_matches(prefix + ".#", prefix + "." + rest)


@given(PATTERNS, TYPES)
def test_pattern_regex_agrees_with_a_segment_by_segment_matcher(
    pattern: str, event_type: str
) -> None:
    expected = reference_match(pattern.split("."), event_type.split("."))
    assert (pattern_regex(pattern).match(event_type) is not None) is expected


@given(PATTERNS)
def test_generated_patterns_are_valid(pattern: str) -> None:
    assert split_pattern(pattern) == tuple(pattern.split("."))
