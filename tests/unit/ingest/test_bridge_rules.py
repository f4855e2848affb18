"""The MQTT bridge's rules without I/O: parsing with errors that name the key, topic templates
and escaping, matching, stable sink names, pages and their acknowledgements."""

from __future__ import annotations

import logging
import random
import tomllib
from typing import Any
from urllib.parse import unquote

import pytest

from tidings.envelope import Event
from tidings.ingest.bridge_rules import (
    BridgeRule,
    PageAcks,
    Unpublishable,
    escape_level,
    parse_rule,
    parse_rules,
    parse_template,
    plan_page,
    reaches,
)
from tidings.settings import ConfigError

DESIGN_EXAMPLE = {
    "events": ["device.#"],
    "exclude_source": "mqtt",
    "topic": "tidings/{tenant}/{type}",
    "qos": 1,
    "retain": False,
}


def event(
    seq: int = 1,
    type: str = "device.switch.on",
    source: str = "api",
    subject: str | None = None,
    tenant: str = "default",
    data: str = "{}",
    metadata: str = "{}",
    trace_id: str = "t" * 32,
) -> Event:
    return Event(
        seq, f"id-{seq}", type, source, subject, 0, 0, trace_id, None, data, metadata, tenant
    )


def rule(**raw: Any) -> BridgeRule:
    return parse_rule({"topic": "t/{type}", **raw}, 0)


def refused(raw: list[Any], key: str, subscribe: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_rules(raw, subscribe)
    message = str(caught.value)
    assert message.startswith(key + ":"), message
    return message


# -- parsing ------------------------------------------------------------------------------


def test_the_designs_example_becomes_a_typed_rule() -> None:
    (parsed,) = parse_rules([DESIGN_EXAMPLE])
    assert parsed.filter.types == ("device.#",)
    assert parsed.filter.exclude_sources == ("mqtt",)
    assert (parsed.topic.text, parsed.qos, parsed.retain, parsed.tenants) == (
        "tidings/{tenant}/{type}",
        1,
        False,
        (),
    )
    assert parsed.sink.startswith("mqtt:") and parsed.tenant == "*"


def test_a_rule_with_only_a_topic_takes_every_event_at_qos_1_without_retain() -> None:
    parsed = rule()
    assert (parsed.filter.types, parsed.qos, parsed.retain) == (("#",), 1, False)
    assert parsed.matches(event(type="anything.at.all", source="mqtt", tenant="acme"))


def test_qos_2_is_published_as_qos_1_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "tidings.ingest"):
        assert rule(qos=2).qos == 1
    assert "mqtt.publish[0].qos" in caplog.text


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"events": ["a.#"]}, "mqtt.publish[0].topic"),
        ({"topic": ""}, "mqtt.publish[0].topic"),
        ({"topic": 5}, "mqtt.publish[0].topic"),
        ({"topic": "a/+"}, "mqtt.publish[0].topic"),
        ({"topic": "a/#"}, "mqtt.publish[0].topic"),
        ({"topic": "a/{nope}"}, "mqtt.publish[0].topic"),
        ({"topic": "a/{type"}, "mqtt.publish[0].topic"),
        ({"topic": "a/type}"}, "mqtt.publish[0].topic"),
        ({"topic": "$SYS/{type}"}, "mqtt.publish[0].topic"),
        ({"topic": "a/\x01/{type}"}, "mqtt.publish[0].topic"),
        ({"topic": "a\x00"}, "mqtt.publish[0].topic"),
        ({"topic": "x" * 65_536}, "mqtt.publish[0].topic"),
        ({"topic": "t", "colour": "red"}, "mqtt.publish[0].colour"),
        ({"topic": "t", "qos": 3}, "mqtt.publish[0].qos"),
        ({"topic": "t", "qos": "1"}, "mqtt.publish[0].qos"),
        ({"topic": "t", "qos": True}, "mqtt.publish[0].qos"),
        ({"topic": "t", "retain": "yes"}, "mqtt.publish[0].retain"),
        ({"topic": "t", "retain": 1}, "mqtt.publish[0].retain"),
        ({"topic": "t", "events": []}, "mqtt.publish[0].events"),
        ({"topic": "t", "events": ["a..b"]}, "mqtt.publish[0].events"),
        ({"topic": "t", "events": "a.#.b"}, "mqtt.publish[0].events"),
        ({"topic": "t", "events": [1]}, "mqtt.publish[0].events"),
        ({"topic": "t", "source": 5}, "mqtt.publish[0].source"),
        ({"topic": "t", "exclude_source": [""]}, "mqtt.publish[0].exclude_source"),
        ({"topic": "t", "subject": []}, "mqtt.publish[0].subject"),
        ({"topic": "t", "tenant": [" "]}, "mqtt.publish[0].tenant"),
        ({"topic": "t", "data": "x"}, "mqtt.publish[0].data"),
        ({"topic": "t", "metadata": {}}, "mqtt.publish[0].metadata"),
        ({"topic": "t", "data": {"kind": [{"a": 1}]}}, "mqtt.publish[0].data.kind"),
        ({"topic": "t", 'data.a"b': "x"}, 'mqtt.publish[0].data.a"b'),
        ({"topic": "t", "data.kind": []}, "mqtt.publish[0].data.kind"),
    ],
)
def test_an_invalid_rule_is_refused_naming_its_key(raw: dict[str, Any], key: str) -> None:
    refused([raw], key)


def test_an_error_names_the_index_of_the_rule() -> None:
    refused([DESIGN_EXAMPLE, {"topic": "ok", "qos": 9}], "mqtt.publish[1].qos")
    refused([DESIGN_EXAMPLE, "not a table"], "mqtt.publish[1]")


def test_an_unknown_placeholder_is_named_with_the_known_ones() -> None:
    message = refused([{"topic": "a/{kind}"}], "mqtt.publish[0].topic")
    assert "{kind}" in message and "{type_path}" in message


def test_the_same_rule_twice_is_refused() -> None:
    again = {**DESIGN_EXAMPLE, "events": ["device.#", "device.#"]}
    message = refused([DESIGN_EXAMPLE, again], "mqtt.publish[1]")
    assert "mqtt.publish[0]" in message


def test_data_filters_may_be_toml_dotted_keys_or_quoted_keys() -> None:
    dotted = tomllib.loads('topic = "t"\ndata.category = "access"\nmetadata.kind.name = 5\n')
    quoted = tomllib.loads('topic = "t"\n"data.category" = "access"\n"metadata.kind.name" = 5\n')
    first, second = parse_rule(dotted, 0), parse_rule(quoted, 0)
    assert first.sink == second.sink
    assert first.matches(event(data='{"category":"access"}', metadata='{"kind":{"name":5}}'))
    assert not first.matches(event(data='{"category":"other"}', metadata='{"kind":{"name":5}}'))


def test_a_topic_a_subscription_would_receive_is_refused_as_a_loop() -> None:
    for topic, subscription in [
        ("tidings/{tenant}/{type}", "tidings/#"),
        ("tidings/{tenant}/{type}", "$share/g/tidings/+/+"),
        ("tidings/{tenant}/{type_path}", "tidings/default/device/+/on"),
        ("x/{type_path}/end", "x/a/b/c/end"),
        ("x/{subject}", "x/+"),
    ]:
        message = refused([{"topic": topic}], "mqtt.publish[0].topic", (subscription,))
        assert subscription in message and "loop" in message


def test_a_topic_no_subscription_receives_is_accepted() -> None:
    for topic, subscription in [
        ("tidings/{tenant}/{type}", "tidings/+/+/+"),
        ("tidings/{tenant}/{type}", "tracker/events/#"),
        ("x/{type_path}/end", "x/end"),
        ("x/{subject}", "x"),
    ]:
        assert parse_rules([{"topic": topic}], (subscription,))


@pytest.mark.parametrize(
    ("topic_filter", "template", "expected"),
    [
        ("a/#", "a", True),
        ("#", "{type}", True),
        ("+", "{type}", True),
        ("+", "{type_path}", True),
        ("+/+", "{type_path}", True),
        ("a/+/c", "a/{type_path}", True),
        ("a/b", "a/{type_path}/c", False),
        ("a/b/c", "a/{type_path}/c", True),
        ("a/b/x/c", "a/{type_path}/c", True),
        ("a/b/x/d", "a/{type_path}/c", False),
        ("a/b", "a/b/{type}", False),
        ("a/b/+", "a/b/{type}", True),
        ("a//b", "a//b", True),
        ("a/b", "a//b", False),
        ("p/x-{type}", "p/x-{type}", True),
    ],
)
def test_reaches_compares_a_filter_with_every_topic_a_template_renders(
    topic_filter: str, template: str, expected: bool
) -> None:
    assert reaches(topic_filter, parse_template(template)) is expected


# -- templates and escaping ---------------------------------------------------------------


def test_each_placeholder_renders_its_value() -> None:
    e = event(type="device.switch.on", source="st", subject="lamp-1", tenant="acme")
    template = parse_template("{tenant}|{type}|{type_path}|{source}|{subject}|{{x}}")
    assert template.render(e) == "acme|device.switch.on|device/switch/on|st|lamp-1|{x}"


def test_type_is_one_level_and_type_path_one_level_per_segment() -> None:
    e = event(type="device.switch.on")
    assert rule(topic="tidings/{tenant}/{type}").topic_for(e) == "tidings/default/device.switch.on"
    assert rule(topic="t/{type_path}").topic_for(e) == "t/device/switch/on"


def test_a_missing_subject_renders_as_an_empty_level() -> None:
    assert rule(topic="t/{subject}/x").topic_for(event(subject=None)) == "t//x"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain-value_1:2.3", "plain-value_1:2.3"),
        ("a/b", "a%2Fb"),
        ("a+b#c", "a%2Bb%23c"),
        ("$SYS", "%24SYS"),
        ("50%", "50%25"),
        ("line\nbreak\x00", "line%0Abreak%00"),
        ("\x7f\x85", "%7F%C2%85"),
        ("caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600"),
        ("\ufdd0\uffff\U0001fffe", "%EF%B7%90%EF%BF%BF%F0%9F%BF%BE"),
        ("", ""),
    ],
)
def test_escape_level_percent_encodes_what_a_topic_level_cannot_hold(
    value: str, escaped: str
) -> None:
    assert escape_level(value) == escaped


def test_escaped_values_decode_back_and_never_hold_separators_or_wildcards() -> None:
    rng = random.Random(7)
    alphabet = "ab/+#$%\x00\n\x7f\x9f é\ufdd0\ufffe\U0001f600\U0010ffff"
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        escaped = escape_level(value)
        assert unquote(escaped) == value
        assert not set(escaped) & set("/+#$\x00\n\x7f\x9f\ufdd0\ufffe\U0010ffff")


def test_placeholder_values_are_escaped_into_one_level() -> None:
    e = event(subject="room/1+#", source="$weird", tenant="t/x")
    topic = rule(topic="{source}/{tenant}/{subject}").topic_for(e)
    assert topic == "%24weird/t%2Fx/room%2F1%2B%23"


def test_an_event_whose_topic_is_not_a_valid_topic_name_is_unpublishable() -> None:
    with pytest.raises(Unpublishable, match="must not be empty"):
        rule(topic="{subject}").topic_for(event(subject=None))
    with pytest.raises(Unpublishable, match="65535"):
        rule(topic="t/{subject}").topic_for(event(subject="x" * 65_534))


def test_levels_show_the_loop_check_each_level_of_a_template() -> None:
    assert parse_template("a/{tenant}/x{type_path}y//z").levels() == ["a", None, True, "", "z"]
    assert parse_template("{subject}").levels() == [None]
    assert parse_template("a/").levels() == ["a", ""]


# -- matching -----------------------------------------------------------------------------


def test_events_are_matched_by_type_pattern() -> None:
    r = rule(events=["device.#", "alarm.*"])
    assert r.matches(event(type="device"))
    assert r.matches(event(type="device.switch.on"))
    assert r.matches(event(type="alarm.fire"))
    assert not r.matches(event(type="alarm.fire.big"))
    assert not r.matches(event(type="devices.x"))


def test_exclude_source_suppresses_the_echo_of_what_came_over_mqtt() -> None:
    r = parse_rule(DESIGN_EXAMPLE, 0)
    assert r.matches(event(source="api"))
    assert not r.matches(event(source="mqtt"))
    two = rule(exclude_source=["mqtt", "bridge"])
    assert not two.matches(event(source="bridge")) and two.matches(event(source="api"))


def test_source_subject_tenant_and_data_filters_must_all_match() -> None:
    r = rule(
        source="st",
        subject=["lamp", "door"],
        tenant="acme",
        data={"level": [1, 2]},
    )
    ok: dict[str, Any] = {
        "source": "st",
        "subject": "door",
        "tenant": "acme",
        "data": '{"level":2}',
    }
    assert r.matches(event(**ok))
    for change in (
        {"source": "api"},
        {"subject": "window"},
        {"subject": None},
        {"tenant": "default"},
        {"data": '{"level":3}'},
        {"data": '{"level":"2"}'},
    ):
        matched = r.matches(event(**{**ok, **change}))
        assert matched is (change == {"data": '{"level":"2"}'}), change
    assert r.tenant == "acme"


def test_a_rule_may_follow_only_some_traces() -> None:
    r = rule(trace_id=["a" * 32, "b" * 32])
    assert r.matches(event(trace_id="b" * 32))
    assert not r.matches(event(trace_id="c" * 32))
    assert r.filter.to_dict()["trace_id"] == f"{'a' * 32},{'b' * 32}"


# -- sink names ---------------------------------------------------------------------------


def test_the_sink_name_ignores_order_repeats_spelled_out_defaults_and_position() -> None:
    base = parse_rule({"topic": "t/{type}", "events": ["a.#", "b.*"], "subject": ["x", "y"]}, 0)
    same = parse_rule(
        {
            "topic": "t/{type}",
            "events": ["b.*", "a.#", "a.#"],
            "subject": ["y", "x"],
            "qos": 1,
            "retain": False,
        },
        3,
    )
    assert base.sink == same.sink
    assert rule().sink == rule(events=["#"]).sink == rule(qos=2).sink
    assert rule(data={"n": 5}).sink == rule(data={"n": "5"}).sink


def test_any_change_of_what_or_where_gives_a_new_sink_name() -> None:
    variants: list[dict[str, Any]] = [
        {},
        {"topic": "t2/{type}"},
        {"qos": 0},
        {"retain": True},
        {"events": ["a.#"]},
        {"source": "st"},
        {"exclude_source": "mqtt"},
        {"subject": "x"},
        {"tenant": "acme"},
        {"data": {"n": 1}},
        {"data": {"n": 2}},
        {"metadata": {"n": 1}},
        {"trace_id": "t" * 32},
    ]
    names = [rule(**v).sink for v in variants]
    assert len(set(names)) == len(variants)
    assert all(n.startswith("mqtt:") and len(n) == 25 for n in names)


def test_sink_names_are_the_same_in_every_process_and_version() -> None:
    # Pinned: a change of the canonical form would restart every rule's cursor at the head.
    assert parse_rule(DESIGN_EXAMPLE, 0).sink == "mqtt:374f829e5b8fba11f0e0"


# -- pages and acknowledgements -----------------------------------------------------------


def test_a_full_page_ends_at_its_last_event() -> None:
    events = [event(seq) for seq in (3, 4, 7)]
    page = plan_page(rule(), events, after=2, through=100, limit=3)
    assert page.position == 7
    assert [m.seq for m in page.messages] == [3, 4, 7]


def test_a_short_page_covers_the_range_up_to_the_head() -> None:
    page = plan_page(rule(), [event(5)], after=2, through=9, limit=10)
    assert page.position == 9
    assert plan_page(rule(), [], after=2, through=9, limit=10).position == 9


def test_events_that_do_not_match_are_passed_over_but_moved_past() -> None:
    events = [event(1, type="a.x"), event(2, type="b.x"), event(3, type="a.y")]
    page = plan_page(rule(events=["a.#"]), events, after=0, through=3, limit=10)
    assert [(m.seq, m.topic) for m in page.messages] == [(1, "t/a.x"), (3, "t/a.y")]
    assert page.position == 3


def test_a_message_carries_the_events_json() -> None:
    e = event(1, data='{"n":1}')
    (message,) = plan_page(rule(), [e], after=0, through=1, limit=10).messages
    assert message.payload == e.encode()


def test_an_unpublishable_event_is_skipped_with_the_reason() -> None:
    events = [event(1, subject=None), event(2, subject="s")]
    page = plan_page(rule(topic="{subject}"), events, after=0, through=2, limit=10)
    assert [m.topic for m in page.messages] == ["s"]
    ((skipped, why),) = page.skipped
    assert skipped.seq == 1 and "empty" in why
    assert page.position == 2


def test_a_page_never_moves_the_cursor_back() -> None:
    assert plan_page(rule(), [], after=9, through=5, limit=10).position == 9


def test_a_page_succeeds_only_when_every_message_is_acknowledged() -> None:
    acks = PageAcks()
    assert acks.done and acks.succeeded
    for mid in (1, 2, 3):
        acks.sent(mid)
    assert not acks.done
    assert acks.settle(2, True)
    assert not acks.settle(2, True)  # already settled
    assert not acks.settle(99, True)  # not one of this page's
    assert acks.settle(1, True) and acks.settle(3, True)
    assert acks.done and acks.succeeded


def test_a_refused_message_fails_the_page_once_all_are_settled() -> None:
    acks = PageAcks()
    acks.sent(1)
    acks.sent(2)
    acks.settle(1, False)
    assert not acks.done and not acks.succeeded
    acks.settle(2, True)
    assert acks.done and not acks.succeeded and acks.refused == [1]
