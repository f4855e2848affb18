"""Mapping input to events (DESIGN.md section 6), checked through the same validation as
POST /v1/events: the candidates that would be stored, or the dead-letter reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tidings.envelope import Candidate, Limits, PublishContext
from tidings.envelope.timefmt import parse_iso
from tidings.ingest.config import PgNotifyConfig, SourceConfig
from tidings.ingest.inputs import read_mqtt, read_notification, read_webhook
from tidings.ingest.mapping import REASON_CODES, Draft, Unmappable, parse_ts, to_candidates
from tidings.ingest.mqtt import dlq_message, subscription_for
from tidings.ingest.mqtt_config import Subscription
from tidings.ingest.signatures import GithubVerifier
from tidings.ingest.smartthings import Confirmation, OtherLifecycle, Ping
from tidings.ingest.webhooks import redacted

LIMITS = Limits(max_event_bytes=4096, max_batch=10)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def source(name: str, verifier: str, default_type: str | None = None) -> SourceConfig:
    return SourceConfig(name, verifier, default_type or f"{name}.received", GithubVerifier(b"x"))  # type: ignore[arg-type]


def candidates(drafts: Any, **kw: Any) -> list[Candidate]:
    assert isinstance(drafts, list)
    return to_candidates(drafts, PublishContext(), LIMITS, **kw)


def unmappable(fn: Any, *args: Any) -> Unmappable:
    with pytest.raises(Unmappable) as caught:
        result = fn(*args)
        if isinstance(result, list):
            candidates(result)
    assert caught.value.code in REASON_CODES
    return caught.value


# -- generic sources ---------------------------------------------------------------------------


def test_a_json_object_with_type_is_an_event_input_from_the_source() -> None:
    body = orjson.dumps(
        {"type": "order.paid", "subject": "o-1", "data": {"total": 3}, "idempotency_key": "k1"}
    )
    (c,) = candidates(read_webhook(source("shop", "hmac-sha256"), body, {}))
    assert (c.type, c.source, c.subject, c.idempotency_key) == ("order.paid", "shop", "o-1", "k1")
    assert orjson.loads(c.data_json) == {"total": 3}


def test_an_event_input_may_name_its_own_source() -> None:
    body = orjson.dumps({"type": "a.b", "source": "upstream"})
    (c,) = candidates(read_webhook(source("shop", "hmac-sha256"), body, {}))
    assert c.source == "upstream"


@pytest.mark.parametrize("value", [{"temp": 21.5}, [1, 2, 3], "text", 42, None, True])
def test_other_json_is_the_data_of_an_event_of_the_default_type(value: Any) -> None:
    (c,) = candidates(read_webhook(source("devices", "hmac-sha256"), orjson.dumps(value), {}))
    assert (c.type, c.source) == ("devices.received", "devices")
    assert orjson.loads(c.data_json) == value


def test_the_configured_default_type_is_used() -> None:
    (c,) = candidates(read_webhook(source("devices", "hmac-sha256", "devices.reading"), b"{}", {}))
    assert c.type == "devices.reading"


def test_a_body_that_is_not_json_is_unmappable() -> None:
    assert unmappable(read_webhook, source("d", "hmac-sha256"), b"<xml/>", {}).code == "not_json"
    assert unmappable(read_webhook, source("d", "hmac-sha256"), b"", {}).code == "not_json"


def test_an_invalid_event_input_is_unmappable_with_the_failing_fields() -> None:
    problem = unmappable(
        read_webhook, source("d", "hmac-sha256"), b'{"type": "bad type", "extra": 1}', {}
    )
    assert problem.code == "invalid_event"
    locs = [d["loc"] for d in problem.details]
    assert ["body", "type"] in locs and ["body", "extra"] in locs
    assert problem.reason.startswith("invalid_event: ") and "body.type" in problem.reason


def test_an_event_over_the_size_limit_is_too_large() -> None:
    body = orjson.dumps({"blob": "x" * 5000})
    assert unmappable(read_webhook, source("d", "hmac-sha256"), body, {}).code == "too_large"


def test_the_trace_id_of_the_context_is_used() -> None:
    drafts = read_webhook(source("d", "hmac-sha256"), b"{}", {})
    assert isinstance(drafts, list)
    (c,) = to_candidates(drafts, PublishContext(trace_id=TRACE), LIMITS)
    assert c.trace_id == TRACE


# -- GitHub ------------------------------------------------------------------------------------


def test_github_type_is_source_event_and_action_and_delivery_is_the_key() -> None:
    body = orjson.dumps({"action": "opened", "number": 7, "type": "ignored-by-github-rule"})
    headers = {
        "x-github-event": "pull_request",
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    (c,) = candidates(read_webhook(source("github", "github"), body, headers))
    assert c.type == "github.pull_request.opened"
    assert c.source == "github"
    assert c.idempotency_key == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert orjson.loads(c.data_json)["number"] == 7


def test_github_event_without_action_is_typed_by_the_event_only() -> None:
    body = orjson.dumps({"zen": "Keep it logically awesome.", "hook_id": 1})
    (c,) = candidates(read_webhook(source("gh", "github"), body, {"x-github-event": "ping"}))
    assert c.type == "gh.ping"
    assert c.idempotency_key is None


def test_github_without_event_header_is_unmappable() -> None:
    assert unmappable(read_webhook, source("gh", "github"), b"{}", {}).code == "unmappable"


# -- Standard Webhooks -------------------------------------------------------------------------


def test_standard_webhooks_id_is_the_idempotency_key() -> None:
    (c,) = candidates(
        read_webhook(
            source("sw", "standard-webhooks"),
            b'{"a": 1}',
            {"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
        )
    )
    assert c.idempotency_key == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    assert c.type == "sw.received"


def test_standard_webhooks_recommended_payload_maps_timestamp_to_time() -> None:
    body = orjson.dumps(
        {"type": "invoice.paid", "timestamp": "2026-11-23T10:00:00Z", "data": {"id": "in_1"}}
    )
    (c,) = candidates(read_webhook(source("sw", "standard-webhooks"), body, {"webhook-id": "m1"}))
    assert c.type == "invoice.paid"
    assert c.time_us == parse_iso("2026-11-23T10:00:00Z")
    assert orjson.loads(c.data_json) == {"id": "in_1"}


# -- SmartThings (payloads in the shape SmartThings sends) -----------------------------------------

PING = {
    "lifecycle": "PING",
    "executionId": "b328f242-c602-4204-8d73-33c48ae180af",
    "locale": "en",
    "version": "1.0.0",
    "pingData": {"challenge": "1a904d57-4fab-4b15-a11e-1c4bfe7cb502"},
}
CONFIRMATION = {
    "lifecycle": "CONFIRMATION",
    "executionId": "b328f242-c602-4204-8d73-33c48ae180af",
    "locale": "en",
    "version": "0.1.0",
    "confirmationData": {
        "appId": "a3f8ec4f-9a48-4b44-8ba4-1c6a2a6c7b08",
        "confirmationUrl": "https://api.smartthings.com/apps/a3f8ec4f/confirm-registration?token=abc",
    },
    "settings": {},
}
EVENT = {
    "lifecycle": "EVENT",
    "executionId": "b328f242-c602-4204-8d73-33c48ae180af",
    "locale": "en",
    "version": "1.0.0",
    "eventData": {
        "authToken": "f01894ce-013a-434a-b51e-f82126fd72e4",
        "installedApp": {
            "installedAppId": "d692699d-e7a6-400d-a0b7-d5be96e7a564",
            "locationId": "e675a3d9-2499-406c-86dc-8a492a886494",
            "config": {},
            "permissions": ["r:devices:*"],
        },
        "events": [
            {
                "eventTime": "2026-11-23T10:00:00Z",
                "eventType": "DEVICE_EVENT",
                "deviceEvent": {
                    "subscriptionName": "switches",
                    "eventId": "736e3903-001c-4d40-b408-ff40d162a06b",
                    "locationId": "e675a3d9-2499-406c-86dc-8a492a886494",
                    "ownerId": "e675a3d9-2499-406c-86dc-8a492a886494",
                    "ownerType": "LOCATION",
                    "deviceId": "6f5ea629-4c05-4a90-a244-cc129b0a80c3",
                    "componentId": "main",
                    "capability": "switch",
                    "attribute": "switch",
                    "value": "on",
                    "valueType": "string",
                    "stateChange": True,
                    "data": {},
                },
            },
            {
                "eventTime": "2026-11-23T10:00:01Z",
                "eventType": "DEVICE_EVENT",
                "deviceEvent": {
                    "eventId": "9a1d7b1c-36c4-4b3e-9f8e-0f7f5b6c1a22",
                    "locationId": "e675a3d9-2499-406c-86dc-8a492a886494",
                    "deviceId": "0c4c7d0b-0000-4e5f-9f8e-1c2b3a4d5e6f",
                    "componentId": "main",
                    "capability": "temperatureMeasurement",
                    "attribute": "temperature",
                    "value": 21.5,
                    "unit": "C",
                    "valueType": "number",
                    "stateChange": True,
                },
            },
            {
                "eventTime": "2026-11-23T10:00:02Z",
                "eventType": "MODE_EVENT",
                "modeEvent": {"modeId": "m"},
            },
        ],
    },
    "settings": {},
}


def test_smartthings_ping_is_answered_with_its_challenge() -> None:
    result = read_webhook(source("st", "smartthings"), orjson.dumps(PING), {})
    assert isinstance(result, Ping)
    assert result.answer() == {"pingData": {"challenge": "1a904d57-4fab-4b15-a11e-1c4bfe7cb502"}}


def test_smartthings_confirmation_carries_its_url() -> None:
    result = read_webhook(source("st", "smartthings"), orjson.dumps(CONFIRMATION), {})
    assert isinstance(result, Confirmation)
    assert result.url.endswith("confirm-registration?token=abc")
    assert result.app_id == "a3f8ec4f-9a48-4b44-8ba4-1c6a2a6c7b08"


def test_smartthings_device_events_become_one_event_each() -> None:
    switch, temperature = candidates(
        read_webhook(source("st", "smartthings"), orjson.dumps(EVENT), {})
    )
    assert switch.type == "device.switch.switch"
    assert switch.subject == "6f5ea629-4c05-4a90-a244-cc129b0a80c3"
    assert switch.idempotency_key == "736e3903-001c-4d40-b408-ff40d162a06b"
    assert switch.source == "st"
    assert switch.time_us == parse_iso("2026-11-23T10:00:00Z")
    assert orjson.loads(switch.data_json) == {
        "value": "on",
        "component": "main",
        "locationId": "e675a3d9-2499-406c-86dc-8a492a886494",
        "valueType": "string",
        "stateChange": True,
        "data": {},
    }
    assert temperature.type == "device.temperatureMeasurement.temperature"
    data = orjson.loads(temperature.data_json)
    assert (data["value"], data["unit"]) == (21.5, "C")


def test_smartthings_event_without_device_events_has_no_events() -> None:
    body = {**EVENT, "eventData": {**EVENT["eventData"], "events": []}}  # type: ignore[dict-item]
    assert candidates(read_webhook(source("st", "smartthings"), orjson.dumps(body), {})) == []


def test_smartthings_device_event_without_capability_is_unmappable() -> None:
    broken = orjson.loads(orjson.dumps(EVENT))
    del broken["eventData"]["events"][0]["deviceEvent"]["capability"]
    problem = unmappable(read_webhook, source("st", "smartthings"), orjson.dumps(broken), {})
    assert "capability" in problem.message


def test_smartthings_other_lifecycles_are_answered_empty() -> None:
    result = read_webhook(
        source("st", "smartthings"), b'{"lifecycle": "UNINSTALL", "uninstallData": {}}', {}
    )
    assert isinstance(result, OtherLifecycle)
    assert result.answer() == {"uninstallData": {}}


def test_smartthings_body_without_lifecycle_follows_the_generic_rule() -> None:
    (c,) = candidates(read_webhook(source("st", "smartthings"), b'{"switch": "on"}', {}))
    assert c.type == "st.received"


# -- MQTT --------------------------------------------------------------------------------------

SUB = Subscription("tracker/events/#", 1, "tracker/events", "tracker/dlq")
ENVELOPE: dict[str, Any] = {
    "trace_id": TRACE,
    "ts": "2026-11-23T10:00:00.250Z",
    "kind": "projects.created",
    "idempotency_key": "evt-1",
    "payload": {"id": "p-1", "name": "Apollo"},
}


def test_mqtt_topic_gives_the_type_and_json_is_the_data() -> None:
    (c,) = candidates(read_mqtt(SUB, "tracker/events/projects/created", b'{"id": "p-1"}'))
    assert (c.type, c.source) == ("projects.created", "mqtt")
    assert orjson.loads(c.data_json) == {"id": "p-1"}
    assert orjson.loads(c.metadata_json) == {"topic": "tracker/events/projects/created"}


def test_mqtt_json_object_with_type_is_still_data_typed_by_the_topic() -> None:
    (c,) = candidates(read_mqtt(SUB, "tracker/events/a/b", b'{"type": "x.y", "v": 1}'))
    assert c.type == "a.b"
    assert orjson.loads(c.data_json) == {"type": "x.y", "v": 1}


def test_mqtt_kind_envelope_maps_field_by_field() -> None:
    (c,) = candidates(read_mqtt(SUB, "tracker/events/projects/created", orjson.dumps(ENVELOPE)))
    assert c.type == "projects.created"
    assert c.trace_id == TRACE
    assert c.time_us == parse_iso("2026-11-23T10:00:00.250Z")
    assert c.idempotency_key == "evt-1"
    assert orjson.loads(c.data_json) == {"id": "p-1", "name": "Apollo"}
    assert orjson.loads(c.metadata_json) == {
        "kind": "projects.created",
        "topic": "tracker/events/projects/created",
    }


def test_mqtt_kind_envelope_keeps_extra_fields_in_metadata() -> None:
    (c,) = candidates(
        read_mqtt(SUB, "tracker/events/a", orjson.dumps({**ENVELOPE, "producer": "tracker-2"}))
    )
    assert orjson.loads(c.metadata_json)["extra"] == {"producer": "tracker-2"}


@pytest.mark.parametrize("missing", ["trace_id", "ts", "kind", "idempotency_key", "payload"])
def test_mqtt_kind_envelope_without_one_of_its_five_fields_is_unmappable(missing: str) -> None:
    envelope = {k: v for k, v in ENVELOPE.items() if k != missing}
    if missing == "kind":
        envelope["kind"] = None
    problem = unmappable(read_mqtt, SUB, "tracker/events/a", orjson.dumps(envelope))
    assert problem.code == "invalid_envelope"
    assert missing in problem.message


@pytest.mark.parametrize("ts", ["yesterday", "2026-13-45T00:00:00Z", True, {"t": 1}, 10**18])
def test_mqtt_kind_envelope_with_a_ts_that_does_not_parse_is_unmappable(ts: Any) -> None:
    problem = unmappable(read_mqtt, SUB, "tracker/events/a", orjson.dumps({**ENVELOPE, "ts": ts}))
    assert (problem.code, "ts") == ("invalid_envelope", problem.message[:2])


def test_mqtt_kind_envelope_with_a_bad_trace_id_is_unmappable() -> None:
    problem = unmappable(
        read_mqtt, SUB, "tracker/events/a", orjson.dumps({**ENVELOPE, "trace_id": "abc"})
    )
    assert problem.code == "invalid_envelope"


def test_mqtt_kind_envelope_accepts_a_uuid_trace_id_and_a_null_payload() -> None:
    envelope = {**ENVELOPE, "trace_id": "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736", "payload": None}
    (c,) = candidates(read_mqtt(SUB, "tracker/events/a", orjson.dumps(envelope)))
    assert c.trace_id == TRACE
    assert c.data_json == "null"


def test_envelope_ts_may_be_unix_seconds_or_milliseconds() -> None:
    expected = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_ts(expected.timestamp()) == expected
    assert parse_ts(int(expected.timestamp() * 1000)) == expected


def test_mqtt_payload_that_is_not_json_is_unmappable() -> None:
    assert unmappable(read_mqtt, SUB, "tracker/events/a", b"\xff\xfe binary").code == "not_json"


def test_mqtt_topic_that_makes_an_invalid_type_is_an_invalid_event() -> None:
    problem = unmappable(read_mqtt, SUB, "tracker/events/a b/c", b"{}")
    assert problem.code == "invalid_event"
    assert unmappable(read_mqtt, SUB, "tracker/events/a//b", b"{}").code == "invalid_event"


def test_the_first_matching_subscription_maps_a_topic() -> None:
    subs = (Subscription("a/#", 1, "a"), Subscription("#", 0))
    assert subscription_for(subs, "a/b") is subs[0]
    assert subscription_for(subs, "b/c") is subs[1]
    assert subscription_for(subs[:1], "b/c") is None


def test_dlq_message_has_the_four_fields_and_base64_for_binary() -> None:
    text = orjson.loads(dlq_message("t/a", "not_json: x", 1_790_000_000_000_000, b"hello"))
    assert text == {
        "original_topic": "t/a",
        "reason": "not_json: x",
        "received_at": "2026-09-21T14:13:20.000Z",
        "payload": "hello",
    }
    binary = orjson.loads(dlq_message("t/a", "r", 0, b"\xff\x00"))
    assert base64.b64decode(binary["payload"]) == b"\xff\x00"
    assert binary["payload_encoding"] == "base64"


# -- PG NOTIFY ---------------------------------------------------------------------------------

PG = PgNotifyConfig("postgresql://h/db", "property_changes", "db.property_changed")


def test_notification_payload_is_data_of_the_default_type_with_the_channel() -> None:
    (c,) = candidates(read_notification(PG, b'{"id": 5, "price": 10}'))
    assert (c.type, c.source) == ("db.property_changed", "pg_notify")
    assert orjson.loads(c.metadata_json) == {"channel": "property_changes"}


def test_notification_payload_with_type_and_key_is_an_event_input() -> None:
    (c,) = candidates(
        read_notification(PG, b'{"type": "db.x", "idempotency_key": "row-5-v2", "data": {}}')
    )
    assert (c.type, c.idempotency_key) == ("db.x", "row-5-v2")


# -- candidates --------------------------------------------------------------------------------


def test_keyless_candidates_get_a_dedupe_key_from_the_prefix_only_when_asked() -> None:
    drafts = [Draft({"type": "a"}), Draft({"type": "b"}, "k")]
    plain = candidates(drafts)
    assert [c.dedupe_key for c in plain] == [None, "k:k"]
    keyed = candidates(drafts, dedupe_prefix="dl:1")
    assert [c.dedupe_key for c in keyed] == ["dl:1:0", "k:k"]


def test_more_drafts_than_a_batch_holds_are_too_large() -> None:
    problem = unmappable(candidates, [Draft({"type": "a"})] * 11)
    assert problem.code == "too_large"


def test_draft_metadata_is_merged_under_the_inputs_own() -> None:
    (c,) = candidates(
        [
            Draft(
                {"type": "a", "metadata": {"topic": "mine", "x": 1}},
                metadata={"topic": "t", "y": 2},
            )
        ]
    )
    assert orjson.loads(c.metadata_json) == {"topic": "mine", "x": 1, "y": 2}


def test_a_confirmation_url_is_logged_without_its_query_values() -> None:
    url = "https://api.smartthings.com:8443/apps/a1/confirm-registration?token=s3cr3t&x=1#f"
    shown = redacted(url)
    assert shown == (
        "https://api.smartthings.com:8443/apps/a1/confirm-registration?token=<redacted>&x=<redacted>"
    )
    assert "s3cr3t" not in redacted("https://user:s3cr3t@example.com/")
    assert redacted("http://[::1/") == "<an invalid URL>"
