"""MQTT topic names and filters by the rules of the MQTT 3.1.1 and 5 specifications (4.7).

Pure functions: which filters are valid, whether a filter matches a topic, whether two filters
can match a common topic (how start-up finds a DLQ or bridge topic that would loop back into a
subscription), and how a topic becomes an event type.
"""

from __future__ import annotations

SHARE_PREFIX = "$share/"
MAX_TOPIC_BYTES = 65_535


def split_share(topic_filter: str) -> tuple[str | None, str]:
    """``$share/<group>/<filter>`` as ``(group, filter)``; any other filter as ``(None, it)``."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    group, _, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
    return group, rest


def filter_error(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid subscription filter, or None when it is."""
    group, real = split_share(topic_filter)
    if group is not None:
        if not group or "+" in group or "#" in group:
            return "the share name of a $share/<name>/<filter> must be non-empty, without + or #"
        if not real:
            return "a $share/<name>/ prefix must be followed by a topic filter"
    problem = _common_error(real)
    if problem:
        return problem
    levels = real.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "# must be a whole level and the last one (a/#, not a/#/b or a#)"
        if "+" in level and level != "+":
            return "+ must be a whole level (a/+/b, not a+ or a/b+)"
    return None


def topic_error(topic: str) -> str | None:
    """Why ``topic`` is not a valid topic name to publish to, or None when it is."""
    problem = _common_error(topic)
    if problem:
        return problem
    if "+" in topic or "#" in topic:
        return "a topic name must not contain the wildcards + or #"
    return None


def _common_error(text: str) -> str | None:
    if not text:
        return "must not be empty"
    if "\x00" in text:
        return "must not contain the NUL character"
    if len(text.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"must be at most {MAX_TOPIC_BYTES} bytes of UTF-8"
    return None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a message published to ``topic`` is delivered to ``topic_filter``.

    ``+`` matches exactly one level (possibly empty), ``#`` any number of levels including
    none (``a/#`` matches ``a``), and a filter starting with a wildcard never matches a topic
    starting with ``$`` (``#`` does not receive ``$SYS/...``). A ``$share/<group>/`` prefix is
    not part of what is matched.
    """
    _, real = split_share(topic_filter)
    if topic.startswith("$") and real[:1] in ("+", "#"):
        return False
    return _levels_match(real.split("/"), topic.split("/"))


def _levels_match(pattern: list[str], levels: list[str]) -> bool:
    for index, part in enumerate(pattern):
        if part == "#":
            return True
        if index >= len(levels):
            return False
        if part != "+" and part != levels[index]:
            return False
    return len(pattern) == len(levels)


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic name is matched by both filters (``$share`` prefixes ignored)."""
    a, b = split_share(first)[1].split("/"), split_share(second)[1].split("/")
    for one, other in ((a, b), (b, a)):
        # A leading wildcard never matches a $-topic, so it cannot meet a literal $ level.
        if one[0] in ("+", "#") and other[0].startswith("$"):
            return False
    return _overlap(a, b)


def _overlap(a: list[str], b: list[str]) -> bool:
    if not a or not b:
        rest = a or b
        return rest == [] or rest == ["#"]
    if a[0] == "#" or b[0] == "#":
        return True
    if a[0] == "+" or b[0] == "+" or a[0] == b[0]:
        return _overlap(a[1:], b[1:])
    return False


def dlq_pattern(prefix: str) -> str:
    """A filter matching exactly the DLQ topics ``<prefix>/<original topic>``."""
    return f"{prefix.rstrip('/')}/+/#"


def template_pattern(template: str) -> str:
    """A filter matching every topic a ``tidings/{tenant}/{type}`` template can produce.

    A level holding a placeholder can become any single level: types and tenants hold no ``/``.
    """
    return "/".join("+" if "{" in level else level for level in template.split("/"))


def strip_topic(topic: str, prefix: str | None) -> str:
    """``topic`` without ``prefix`` and the ``/`` after it, when it starts with that prefix."""
    if prefix:
        head = prefix.rstrip("/") + "/"
        if topic.startswith(head):
            return topic[len(head) :]
    return topic


def type_from_topic(topic: str, strip_prefix: str | None) -> str:
    """``tracker/events/projects/created`` with prefix ``tracker/events`` is ``projects.created``.

    The result is checked later like any event type: a topic with empty levels or characters
    a type may not hold ends as a dead letter, not as a strange type.
    """
    return strip_topic(topic, strip_prefix).replace("/", ".")
