"""The MQTT bridge out, without I/O: ``[[mqtt.publish]]`` rules read into typed objects, topic
templates rendered with escaped values, and the pages a follower publishes before it moves its
durable cursor.

A rule's sink name is a hash of its canonical form, so the same rule keeps its cursor across
restarts and reorderings of the file, while a changed rule starts a new cursor at the head.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tidings.envelope import Event, Filter, parse_filter
from tidings.errors import TidingsError
from tidings.ingest import topics
from tidings.ingest.table import Table
from tidings.settings import ConfigError
from tidings.store.sink_cursors import SinkCursors

log = logging.getLogger("tidings.ingest")

PLACEHOLDERS = ("tenant", "type", "type_path", "source", "subject")
SINK_PREFIX = "mqtt:"
ALL_TENANTS = "*"  # the tenant column of a cursor whose rule follows every tenant
_KEYS = (
    "events",
    "tenant",
    "source",
    "exclude_source",
    "subject",
    "trace_id",
    "data",
    "metadata",
    "topic",
    "qos",
    "retain",
)
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# Characters a placeholder's value may not carry into a topic: the level separator, the
# wildcards, the $ of broker topics, the escape itself, and what brokers refuse in UTF-8 topic
# names (control characters and non-characters, MQTT 3.1.1 and 5 section 1.5.3). Astral
# characters are matched too and kept unless they are non-characters (U+1FFFE...).
_ESCAPED = re.compile("[%/+#$\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff\U00010000-\U0010ffff]")
# A level of a rendered topic, as the loop check sees it: its literal text, None for one level
# of any value, True for one or more levels of any value ({type_path}).
Level = str | bool | None
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_level(value: str) -> str:
    """``value`` made safe inside one topic level: each character of ``_ESCAPED`` becomes
    ``%XX`` per UTF-8 byte, as in URLs (``a/b+c`` is ``a%2Fb%2Bc``), so it decodes back."""
    return _ESCAPED.sub(_escape_char, value)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if ord(char) > 0xFFFF and ord(char) & 0xFFFE != 0xFFFE:
        return char  # an astral character that is not a non-character
    return "".join(f"%{byte:02X}" for byte in char.encode())


# -- topic templates ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """``tidings/{tenant}/{type}``: literal text and placeholders, rendered per event.

    ``{type}`` is the type as it is, one level (``device.switch.on``); ``{type_path}`` makes
    each segment a level (``device/switch/on``). ``{subject}`` of an event without one is
    empty. Values are escaped with ``escape_level``; ``{{`` and ``}}`` are literal braces.
    """

    text: str  # as configured
    parts: tuple[tuple[str, bool], ...]  # (literal text, False) or (placeholder name, True)

    def render(self, event: Event) -> str:
        return "".join(_value(event, text) if field else text for text, field in self.parts)

    def levels(self) -> list[Level]:
        """Each level as its literal text, None (one level of any value) or True (one or more
        levels: it holds ``{type_path}``); what the loop check compares with filters."""
        levels: list[Level] = []
        current: list[tuple[str, bool]] = []
        for text, field in (*self.parts, ("/", False)):
            if field:
                current.append((text, True))
                continue
            pieces = text.split("/")
            for index, piece in enumerate(pieces):
                if index:
                    levels.append(_level_kind(current))
                    current = []
                if piece:
                    current.append((piece, False))
        return levels


def _level_kind(parts: list[tuple[str, bool]]) -> Level:
    names = {text for text, field in parts if field}
    if "type_path" in names:
        return True
    if names:
        return None
    return "".join(text for text, _ in parts)


def _value(event: Event, name: str) -> str:
    if name == "type_path":
        return "/".join(escape_level(segment) for segment in event.type.split("."))
    value = {
        "tenant": event.tenant,
        "type": event.type,
        "source": event.source,
        "subject": event.subject or "",
    }[name]
    return escape_level(value)


def parse_template(text: str) -> TopicTemplate:
    """The template, or ValueError saying what is wrong with it."""
    parts: list[tuple[str, bool]] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        token = match.group()
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = match.group(1)
        if name is None:
            raise ValueError("has a lone { or }; write {{ or }} for a literal brace")
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"has an unknown placeholder {{{name}}}; known: {known}")
        if literal:
            parts.append(("".join(literal), False))
            literal = []
        parts.append((name, True))
    literal.append(text[position:])
    if "".join(literal):
        parts.append(("".join(literal), False))
    static = "".join(t for t, field in parts if not field)
    if not parts:
        raise ValueError("must not be empty")
    if "+" in static or "#" in static:
        raise ValueError("must not contain the wildcards + or #")
    if _CONTROL.search(static):
        raise ValueError("must not contain control characters")
    if parts[0][0].startswith("$") and not parts[0][1]:
        raise ValueError("must not start with $ (reserved for the broker)")
    if len(static.encode()) > topics.MAX_TOPIC_BYTES:
        raise ValueError(f"must be at most {topics.MAX_TOPIC_BYTES} bytes of UTF-8")
    return TopicTemplate(text, tuple(parts))


def reaches(topic_filter: str, template: TopicTemplate) -> bool:
    """Whether ``topic_filter`` could receive a topic the template renders (a loop)."""
    return _reaches(topics.split_share(topic_filter)[1].split("/"), template.levels())


def _reaches(wanted: list[str], levels: list[Level]) -> bool:
    if wanted and wanted[0] == "#":
        return True  # also the parent level: a/# receives a
    if not levels or not wanted:
        return not levels and not wanted
    head, rest = levels[0], levels[1:]
    if head is True:  # one level of {type_path}, then either more of it or what follows
        return _reaches(wanted[1:], rest) or _reaches(wanted[1:], levels)
    if head is None or wanted[0] in ("+", head):
        return _reaches(wanted[1:], rest)
    return False


# -- rules --------------------------------------------------------------------------------


class Unpublishable(Exception):
    """An event matched a rule but renders no valid topic name; it is skipped and logged."""


@dataclass(frozen=True, slots=True)
class BridgeRule:
    """One ``[[mqtt.publish]]`` table: which events, to which topic, with what QoS."""

    index: int  # its place in the file, for messages (mqtt.publish[i])
    sink: str  # the durable cursor's name: mqtt:<hash of the canonical rule>
    filter: Filter  # events, source, exclude_source, subject, trace_id, data.* and metadata.*
    tenants: tuple[str, ...]  # empty: every tenant
    topic: TopicTemplate
    qos: int  # 0 or 1: a QoS 2 rule is published at 1
    retain: bool

    @property
    def tenant(self) -> str:
        """The tenant recorded with the cursor: the rule's only tenant, else ``*``."""
        return self.tenants[0] if len(self.tenants) == 1 else ALL_TENANTS

    def matches(self, event: Event) -> bool:
        return (not self.tenants or event.tenant in self.tenants) and self.filter.matches(event)

    def topic_for(self, event: Event) -> str:
        """The rendered topic; Unpublishable when it is not a valid topic name."""
        topic = self.topic.render(event)
        problem = topics.topic_error(topic)
        if problem:
            raise Unpublishable(f"the topic {topic[:200]!r} {problem}")
        return topic


def parse_rules(raw: Sequence[Any], subscribe: Iterable[str] = ()) -> tuple[BridgeRule, ...]:
    """Every ``[[mqtt.publish]]`` table, checked; ConfigError names ``mqtt.publish[i].<key>``.

    ``subscribe`` holds the ingest filters: a topic one of them would receive is a loop.
    """
    filters = tuple(subscribe)
    rules: list[BridgeRule] = []
    for index, item in enumerate(raw):
        rule = parse_rule(item, index)
        for topic_filter in filters:
            if reaches(topic_filter, rule.topic):
                raise ConfigError(
                    f"mqtt.publish[{index}].topic: its topics would be received again by the "
                    f"subscription {topic_filter!r} (a loop)"
                )
        same = next((r for r in rules if r.sink == rule.sink), None)
        if same is not None:
            raise ConfigError(
                f"mqtt.publish[{index}]: the same rule as mqtt.publish[{same.index}] "
                "(each event would be published twice)"
            )
        rules.append(rule)
    return tuple(rules)


def parse_rule(raw: Any, index: int) -> BridgeRule:
    table = Table(raw, f"mqtt.publish[{index}]")
    flat = _flatten(table)
    template_text = table.text("topic", required=True)
    assert template_text is not None
    try:
        template = parse_template(template_text)
    except ValueError as error:
        raise table.fail("topic", f"{template_text!r} {error}") from None
    qos = table.integer("qos", 1, 0, 2)
    if qos == 2:
        log.warning(
            "%s.qos: QoS 2 is published as QoS 1 (at-least-once either way: see "
            "docs/mqtt-bridge.md)",
            table.path,
        )
        qos = 1
    retain = raw.get("retain", False)
    if not isinstance(retain, bool):
        raise table.fail("retain", "must be true or false")
    tenants = _strings(table, "tenant") or ()
    events = _strings(table, "events")
    params: dict[str, Any] = {"type": list(events) if events is not None else ["#"]}
    for key in ("source", "exclude_source", "subject", "trace_id"):
        values = _strings(table, key)
        if values is not None:
            params[key] = list(values)
    params.update(flat)
    try:
        event_filter = parse_filter(params, location=table.path)
    except TidingsError as error:
        key = str(error.details[0]["loc"][1]) if error.details else "events"
        raise table.fail("events" if key == "type" else key, error.message) from None
    return BridgeRule(
        index=index,
        sink=sink_name(event_filter, tenants, template_text, qos, retain),
        filter=event_filter,
        tenants=tenants,
        topic=template,
        qos=qos,
        retain=retain,
    )


def _strings(table: Table, key: str) -> tuple[str, ...] | None:
    """A string or a non-empty array of strings; None when the key is absent."""
    value = table.raw.get(key)
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, str) and i.strip() for i in items)
    ):
        raise table.fail(key, "must be a non-empty string or array of non-empty strings")
    return tuple(items)


def _flatten(table: Table) -> dict[str, Any]:
    """``data.<path>`` / ``metadata.<path>`` filters, written as quoted keys
    (``"data.category" = "x"``) or as TOML dotted keys (``data.category = "x"``, a table)."""
    found: dict[str, Any] = {}
    for key, value in table.raw.items():
        root = key.split(".", 1)[0]
        if root not in ("data", "metadata"):
            if key not in _KEYS:
                raise table.fail(key, f"unknown key; expected one of {', '.join(_KEYS)}")
            continue
        if key == root and not isinstance(value, dict):
            raise table.fail(key, f'must name a path, as in {root}.category = "value"')
        _walk(table, key, value, found)
    return found


def _walk(table: Table, key: str, value: Any, found: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if not value:
            raise table.fail(key, "must name a path and a value")
        for name, inner in value.items():
            _walk(table, f"{key}.{name}", inner, found)
    elif isinstance(value, list) and not all(
        v is None or isinstance(v, str | int | float | bool) for v in value
    ):
        raise table.fail(key, "must be a scalar or an array of scalars")
    else:
        found[key] = value


def sink_name(
    event_filter: Filter, tenants: Iterable[str], topic: str, qos: int, retain: bool
) -> str:
    """``mqtt:`` and a hash of the rule in canonical form: list order, repeats and spelled-out
    defaults do not change it; any change of what is published or where does."""
    canonical: dict[str, Any] = {
        "events": sorted(set(event_filter.types)),
        "tenant": sorted(set(tenants)),
        "source": sorted(set(event_filter.sources)),
        "exclude_source": sorted(set(event_filter.exclude_sources)),
        "subject": sorted(set(event_filter.subjects)),
        "fields": sorted(
            [".".join((c.root, *c.path)), sorted({repr(v) for v in c.values})]
            for c in event_filter.fields
        ),
        "topic": topic,
        "qos": qos,
        "retain": retain,
    }
    if event_filter.trace_ids:  # only when set, so the names of existing rules stay the same
        canonical["trace_id"] = sorted(set(event_filter.trace_ids))
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return SINK_PREFIX + digest[:20]


# -- pages and acknowledgements -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    topic: str
    payload: bytes  # the event's JSON


@dataclass(frozen=True, slots=True)
class Page:
    """What one read of the log gives a rule: the messages to publish and the cursor position
    once every one of them is acknowledged (past the events that did not match, too)."""

    messages: tuple[Message, ...]
    position: int
    skipped: tuple[tuple[Event, str], ...] = ()  # matched, but no valid topic: (event, why)


def plan_page(
    rule: BridgeRule, events: Sequence[Event], after: int, through: int, limit: int
) -> Page:
    """The page for ``events``, the answer to ``read_log(after, through, limit)``: a full page
    ends at its last event, a short one covers the whole range up to ``through``."""
    messages: list[Message] = []
    skipped: list[tuple[Event, str]] = []
    for event in events:
        if not rule.matches(event):
            continue
        try:
            messages.append(Message(event.seq, rule.topic_for(event), event.encode()))
        except Unpublishable as error:
            skipped.append((event, str(error)))
    position = events[-1].seq if len(events) >= limit else through
    return Page(tuple(messages), max(position, after), tuple(skipped))


class PageAcks:
    """The acknowledgements a page waits for. The cursor may move only when every message was
    acknowledged (QoS 1: PUBACK; QoS 0: written to the socket) and none was refused."""

    def __init__(self) -> None:
        self.waiting: set[int] = set()  # message ids sent and not yet acknowledged
        self.refused: list[int] = []  # acknowledged with a failure reason code (MQTT 5)

    def sent(self, mid: int) -> None:
        self.waiting.add(mid)

    def settle(self, mid: int, accepted: bool) -> bool:
        """Record an acknowledgement; False when ``mid`` is not one this page waits for."""
        if mid not in self.waiting:
            return False
        self.waiting.discard(mid)
        if not accepted:
            self.refused.append(mid)
        return True

    @property
    def done(self) -> bool:
        return not self.waiting

    @property
    def succeeded(self) -> bool:
        return not self.waiting and not self.refused


async def forget_removed_rules(cursors: SinkCursors, rules: Sequence[BridgeRule]) -> None:
    """Drop the cursor of every bridge rule no longer configured: retention keeps what every
    stored cursor still needs, so a removed rule must stop holding events back."""
    configured = {rule.sink for rule in rules}
    for cursor in await cursors.list_sink_cursors():
        if cursor.sink.startswith(SINK_PREFIX) and cursor.sink not in configured:
            await cursors.delete_sink_cursor(cursor.sink)
            logging.getLogger("tidings.ingest.bridge").info(
                "MQTT bridge: %s is no longer configured; its cursor (position %d) is dropped",
                cursor.sink,
                cursor.position,
            )
