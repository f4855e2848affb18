"""Browser origins: TIDINGS_CORS_ORIGINS parsing and the WebSocket Origin check."""

from __future__ import annotations

import pytest

from tidings.auth.origins import OriginPolicy, parse_origins
from tidings.auth.service import is_loopback


def test_origins_are_parsed_and_normalised() -> None:
    assert parse_origins(" https://App.example.com, http://localhost:3000/ ,") == (
        "https://app.example.com",
        "http://localhost:3000",
    )
    assert parse_origins(None) == ()
    assert parse_origins("*") == ("*",)


@pytest.mark.parametrize("value", ["app.example.com", "ftp://x.org", "https://x.org/path"])
def test_what_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="TIDINGS_CORS_ORIGINS"):
        parse_origins(value)


def test_clients_that_are_not_browsers_send_no_origin_and_pass() -> None:
    assert OriginPolicy(()).permits(None, "hub:8000")


def test_the_servers_own_origin_passes() -> None:
    policy = OriginPolicy(())
    assert policy.permits("http://hub.example.com:8000", "hub.example.com:8000")
    assert policy.permits("https://HUB.example.com", "hub.example.com")


def test_another_origin_is_refused_unless_allowed() -> None:
    policy = OriginPolicy(())
    assert not policy.permits("https://evil.example", "hub.example.com")
    assert not policy.permits("null", "hub.example.com")
    assert not policy.permits("https://evil.example", None)
    allowed = OriginPolicy(parse_origins("https://app.example.com"))
    assert allowed.permits("https://app.example.com", "hub.example.com")
    assert not allowed.permits("https://app.example.com.evil.example", "hub.example.com")
    assert OriginPolicy(("*",)).permits("https://anything.example", "hub")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("app.localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("hub.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
