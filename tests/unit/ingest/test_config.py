"""The ingest configuration: what start-up accepts, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tidings.ingest.config import (
    PgNotifyConfig,
    load_ingest_config,
    parse_pg_notify,
    parse_sources,
)
from tidings.ingest.http_signatures import HttpSignatureVerifier, SmartThingsVerifier
from tidings.ingest.mqtt_config import parse_mqtt
from tidings.ingest.signatures import GithubVerifier, HmacSha256Verifier, StandardWebhooksVerifier
from tidings.settings import ConfigError, Settings


def sources(raw: dict[str, Any], base: Path = Path(".")) -> Any:
    return parse_sources(raw, base)


def refused(fn: Any, *args: Any, key: str) -> str:
    with pytest.raises(ConfigError) as caught:
        fn(*args)
    message = str(caught.value)
    assert message.startswith(key + ":") or f"{key}:" in message, message
    return message


def test_each_verifier_is_built_from_its_table() -> None:
    found = sources(
        {
            "github": {"verifier": "github", "secret": "g"},
            "devices": {
                "verifier": "hmac-sha256",
                "secret": "d",
                "header": "X-Sig",
                "timestamp_header": "X-Timestamp",
                "tolerance_s": 60,
                "type": "devices.reading",
            },
            "stripeish": {"verifier": "standard-webhooks", "secret": "whsec_MDEyMzQ1Njc4OQ=="},
            "st": {"verifier": "smartthings", "secret": "s"},
        }
    )
    assert isinstance(found["github"].check, GithubVerifier)
    devices = found["devices"].check
    assert isinstance(devices, HmacSha256Verifier)
    assert (devices.header, devices.timestamp_header, devices.tolerance_s) == (
        "X-Sig",
        "X-Timestamp",
        60,
    )
    assert found["devices"].type == "devices.reading"
    assert found["github"].type == "github.received"
    assert isinstance(found["stripeish"].check, StandardWebhooksVerifier)
    assert found["stripeish"].check.key == b"0123456789"
    assert isinstance(found["st"].check, SmartThingsVerifier)


def test_unknown_verifier_is_refused_naming_the_key() -> None:
    message = refused(
        sources, {"github": {"verifier": "gitlab", "secret": "x"}}, key="sources.github.verifier"
    )
    assert "gitlab" in message and "hmac-sha256" in message


def test_missing_verifier_or_secret_is_refused_naming_the_key() -> None:
    refused(sources, {"a": {"secret": "x"}}, key="sources.a.verifier")
    refused(sources, {"a": {"verifier": "github"}}, key="sources.a.secret")
    refused(sources, {"a": {"verifier": "hmac-sha256", "secret": ""}}, key="sources.a.secret")
    refused(sources, {"a": {"verifier": "smartthings"}}, key="sources.a.secret")


def test_unknown_key_in_a_source_is_refused() -> None:
    message = refused(
        sources, {"a": {"verifier": "github", "secret": "x", "header": "X"}}, key="sources.a.header"
    )
    assert "unknown key" in message


def test_invalid_default_type_is_reported_but_accepted(caplog: pytest.LogCaptureFixture) -> None:
    found = sources({"a": {"verifier": "github", "secret": "x", "type": "bad type"}})
    assert found["a"].type == "bad type"
    assert "sources.a.type" in caplog.text
    (entry,) = parse_pg_notify([{"dsn": "postgresql://x", "channel": "c", "type": "a..b"}])
    assert entry.type == "a..b"
    assert "pg_notify[0].type" in caplog.text


def test_invalid_source_names_are_refused() -> None:
    refused(sources, {"a b": {"verifier": "github", "secret": "x"}}, key="sources.a b")
    refused(sources, {"mqtt": {"verifier": "github", "secret": "x"}}, key="sources.mqtt")


def test_bad_whsec_secret_is_refused() -> None:
    refused(
        sources,
        {"a": {"verifier": "standard-webhooks", "secret": "whsec_***"}},
        key="sources.a.secret",
    )


def test_smartthings_public_key_is_read_from_a_pem_file_beside_the_config(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "st.pem").write_bytes(pem)
    found = sources({"st": {"verifier": "smartthings", "public_key": "st.pem"}}, tmp_path)
    check = found["st"].check
    assert isinstance(check, SmartThingsVerifier)
    assert isinstance(check.mode, HttpSignatureVerifier)


def test_smartthings_public_key_problems_are_refused(tmp_path: Path) -> None:
    refused(
        sources,
        {"st": {"verifier": "smartthings", "public_key": "none.pem"}},
        tmp_path,
        key="sources.st.public_key",
    )
    (tmp_path / "junk.pem").write_text("not a key")
    refused(
        sources,
        {"st": {"verifier": "smartthings", "public_key": "junk.pem"}},
        tmp_path,
        key="sources.st.public_key",
    )
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "ec.pem").write_bytes(ec_pem)
    message = refused(
        sources,
        {"st": {"verifier": "smartthings", "public_key": "ec.pem"}},
        tmp_path,
        key="sources.st.public_key",
    )
    assert "RSA" in message
    refused(
        sources,
        {"st": {"verifier": "smartthings", "public_key": "ec.pem", "secret": "s"}},
        tmp_path,
        key="sources.st.public_key",
    )


def mqtt(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "url": "mqtt://127.0.0.1:1883",
        "client_id": "tidings-1",
        "subscribe": [
            {
                "filter": "tracker/events/#",
                "qos": 1,
                "strip_prefix": "tracker/events",
                "dlq_prefix": "tracker/dlq",
            }
        ],
    }
    base.update(overrides)
    return base


def test_the_designs_mqtt_example_is_accepted() -> None:
    config = parse_mqtt(
        mqtt(
            publish=[
                {
                    "events": ["device.#"],
                    "exclude_source": "mqtt",
                    "topic": "tidings/{tenant}/{type}",
                    "qos": 1,
                }
            ]
        )
    )
    assert (config.host, config.port, config.tls, config.protocol) == ("127.0.0.1", 1883, False, 4)
    assert config.client_id == "tidings-1"
    sub = config.subscribe[0]
    assert (sub.filter, sub.qos, sub.strip_prefix, sub.dlq_prefix) == (
        "tracker/events/#",
        1,
        "tracker/events",
        "tracker/dlq",
    )
    assert config.url == "mqtt://127.0.0.1:1883"


def test_mqtt_url_credentials_and_protocol_are_read() -> None:
    config = parse_mqtt(mqtt(url="mqtts://user:p%40ss@broker.example", protocol="5"))
    assert (config.tls, config.port, config.username, config.password, config.protocol) == (
        True,
        8883,
        "user",
        "p@ss",
        5,
    )
    assert "p@ss" not in repr(config) and "p@ss" not in config.url


@pytest.mark.parametrize("bad", ["foo+", "a/#/b", "", "$share/g"])
def test_invalid_topic_filters_are_refused_naming_the_key(bad: str) -> None:
    message = refused(parse_mqtt, mqtt(subscribe=[{"filter": bad}]), key="mqtt.subscribe[0].filter")
    assert repr(bad) in message or bad == ""


def test_a_dlq_prefix_a_subscription_would_receive_is_a_loop() -> None:
    raw = mqtt(subscribe=[{"filter": "tracker/#", "dlq_prefix": "tracker/dlq"}])
    message = refused(parse_mqtt, raw, key="mqtt.subscribe[0].dlq_prefix")
    assert "loop" in message


def test_a_dlq_prefix_received_by_another_subscription_is_a_loop() -> None:
    raw = mqtt(
        subscribe=[
            {"filter": "a/#", "dlq_prefix": "b/dlq"},
            {"filter": "$share/g/b/+/a/#"},
        ]
    )
    message = refused(parse_mqtt, raw, key="mqtt.subscribe[0].dlq_prefix")
    assert "mqtt.subscribe[1].filter" in message


def test_a_bridge_topic_a_subscription_would_receive_is_a_loop() -> None:
    raw = mqtt(subscribe=[{"filter": "tidings/#"}], publish=[{"topic": "tidings/{tenant}/{type}"}])
    refused(parse_mqtt, raw, key="mqtt.publish[0].topic")


def test_mqtt_table_errors_name_their_key() -> None:
    refused(parse_mqtt, mqtt(url="http://x"), key="mqtt.url")
    refused(parse_mqtt, mqtt(protocol="4"), key="mqtt.protocol")
    refused(parse_mqtt, mqtt(subscribe=[{"filter": "a", "qos": 3}]), key="mqtt.subscribe[0].qos")
    refused(
        parse_mqtt,
        mqtt(subscribe=[{"filter": "a", "dlq_prefix": "d/+"}]),
        key="mqtt.subscribe[0].dlq_prefix",
    )
    refused(
        parse_mqtt,
        mqtt(subscribe=[{"filter": "a", "dlq_prefix": "$dlq"}]),
        key="mqtt.subscribe[0].dlq_prefix",
    )
    refused(
        parse_mqtt,
        mqtt(subscribe=[{"filter": "a", "strip_prefix": "a/#"}]),
        key="mqtt.subscribe[0].strip_prefix",
    )
    refused(
        parse_mqtt, mqtt(subscribe=[{"filter": "a", "topic": "x"}]), key="mqtt.subscribe[0].topic"
    )
    refused(parse_mqtt, mqtt(clientid="x"), key="mqtt.clientid")
    refused(parse_mqtt, mqtt(publish=[{"events": ["a"]}]), key="mqtt.publish[0].topic")


def test_qos_2_subscriptions_are_taken_at_qos_1() -> None:
    config = parse_mqtt(mqtt(subscribe=[{"filter": "a/#", "qos": 2}]))
    assert config.subscribe[0].qos == 1


def test_pg_notify_entries_are_read_with_defaults() -> None:
    (entry,) = parse_pg_notify(
        [
            {
                "dsn": "postgresql://postgres@127.0.0.1/test",
                "channel": "property_changes",
                "type": "db.property_changed",
            }
        ]
    )
    assert (entry.channel, entry.type, entry.source) == (
        "property_changes",
        "db.property_changed",
        "pg_notify",
    )
    (plain,) = parse_pg_notify([{"dsn": "postgresql://h/db", "channel": "c", "source": "crm"}])
    assert plain.type == "crm.received"


def test_pg_notify_errors_name_their_key() -> None:
    refused(parse_pg_notify, [{"channel": "c"}], key="pg_notify[0].dsn")
    refused(parse_pg_notify, [{"dsn": "mysql://x", "channel": "c"}], key="pg_notify[0].dsn")
    refused(parse_pg_notify, [{"dsn": "postgresql://x"}], key="pg_notify[0].channel")
    refused(
        parse_pg_notify,
        [{"dsn": "postgresql://x", "channel": "c" * 64}],
        key="pg_notify[0].channel",
    )
    refused(
        parse_pg_notify,
        [{"dsn": "postgresql://x", "channel": "c"}, {"dsn": "postgresql://y", "channel": "c"}],
        key="pg_notify[1].channel",
    )


def test_the_advisory_lock_key_depends_on_dsn_and_channel_only() -> None:
    a = PgNotifyConfig("postgresql://h/db", "c", "t")
    assert a.lock_key == PgNotifyConfig("postgresql://h/db", "c", "other.type").lock_key
    assert a.lock_key != PgNotifyConfig("postgresql://h/db", "d", "t").lock_key
    assert -(2**63) <= a.lock_key < 2**63


def test_a_pg_notify_source_named_like_a_webhook_source_is_refused() -> None:
    settings = Settings(
        sources={"crm": {"verifier": "github", "secret": "x"}},
        pg_notify=[{"dsn": "postgresql://h/db", "channel": "c", "source": "crm"}],
    )
    refused(load_ingest_config, settings, key="pg_notify[0].source")


def test_an_empty_configuration_has_no_adapters() -> None:
    config = load_ingest_config(Settings())
    assert (config.sources, config.mqtt, config.pg_notify) == ({}, None, ())


def test_a_smartthings_target_url_is_kept_and_must_be_absolute() -> None:
    url = "https://hub.example.com/v1/ingest/st"
    found = sources({"st": {"verifier": "smartthings", "secret": "s", "target_url": url}})
    assert found["st"].target_url == url
    assert sources({"st": {"verifier": "smartthings", "secret": "s"}})["st"].target_url is None
    for bad in ("/v1/ingest/st", "ftp://hub/x", "https://", "https://a b/"):
        raw = {"st": {"verifier": "smartthings", "secret": "s", "target_url": bad}}
        refused(sources, raw, key="sources.st.target_url")
    other = {"gh": {"verifier": "github", "secret": "s", "target_url": url}}
    assert "unknown key" in refused(sources, other, key="sources.gh.target_url")
