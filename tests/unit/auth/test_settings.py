"""Auth settings: on/off, the loopback default, the bootstrap key, CORS origins."""

from __future__ import annotations

import pytest

from tidings.auth.service import auth_enabled
from tidings.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIDINGS_AUTH", "TIDINGS_HOST", "TIDINGS_BOOTSTRAP_KEY", "TIDINGS_CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("host", "on"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True), ("::", True)]
)
def test_auth_is_on_unless_the_host_is_loopback(host: str, on: bool) -> None:
    assert auth_enabled(load_settings({"host": host})) is on


@pytest.mark.parametrize(("value", "on"), [("on", True), ("off", False), ("ON", True)])
def test_tidings_auth_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str, on: bool
) -> None:
    monkeypatch.setenv("TIDINGS_AUTH", value)
    assert auth_enabled(load_settings({"host": "0.0.0.0"})) is on
    assert auth_enabled(load_settings({"host": "127.0.0.1"})) is on


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_AUTH", "off")
    assert auth_enabled(load_settings({"auth": True})) is True


def test_a_bootstrap_key_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_BOOTSTRAP_KEY", "k" * 40)
    settings = load_settings()
    assert settings.bootstrap_key == "k" * 40
    assert settings.describe()["bootstrap_key"] == "********"


@pytest.mark.parametrize("value", ["short", "k" * 20 + " " + "k" * 20])
def test_a_weak_or_malformed_bootstrap_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TIDINGS_BOOTSTRAP_KEY", value)
    with pytest.raises(ConfigError, match="bootstrap_key"):
        load_settings()


def test_cors_origins_are_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_CORS_ORIGINS", "app.example.com")
    with pytest.raises(ConfigError, match="cors_origins"):
        load_settings()
