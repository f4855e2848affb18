"""Every ingest input belongs to the tenant its TOML table names (default ``default``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.ingest.config import parse_pg_notify, parse_sources
from tidings.ingest.mqtt_config import parse_mqtt
from tidings.settings import ConfigError

HMAC = {"verifier": "hmac-sha256", "secret": "a-secret-of-some-length"}
DSN = "postgresql://postgres@127.0.0.1/test"


def test_a_source_belongs_to_its_tenant_or_default() -> None:
    found = parse_sources({"a": {**HMAC, "tenant": "acme"}, "b": HMAC}, Path("."))
    assert found["a"].tenant == "acme"
    assert found["b"].tenant == "default"


def test_pg_notify_and_mqtt_subscriptions_carry_a_tenant() -> None:
    (listener,) = parse_pg_notify([{"dsn": DSN, "channel": "c", "tenant": "acme"}])
    assert listener.tenant == "acme"
    mqtt = parse_mqtt(
        {
            "url": "mqtt://127.0.0.1:1883",
            "client_id": "t",
            "subscribe": [{"filter": "a/#", "tenant": "acme"}, {"filter": "b/#"}],
        }
    )
    assert [s.tenant for s in mqtt.subscribe] == ["acme", "default"]


@pytest.mark.parametrize("tenant", ["Acme", "-x", "a_b", "", 3])
def test_a_bad_tenant_stops_start_up_naming_the_key(tenant: object) -> None:
    with pytest.raises(ConfigError, match=r"sources\.a\.tenant"):
        parse_sources({"a": {**HMAC, "tenant": tenant}}, Path("."))
    with pytest.raises(ConfigError, match=r"pg_notify\[0\]\.tenant"):
        parse_pg_notify([{"dsn": DSN, "channel": "c", "tenant": tenant}])
    with pytest.raises(ConfigError, match=r"mqtt\.subscribe\[0\]\.tenant"):
        parse_mqtt(
            {
                "url": "mqtt://h",
                "client_id": "t",
                "subscribe": [{"filter": "a/#", "tenant": tenant}],
            }
        )
