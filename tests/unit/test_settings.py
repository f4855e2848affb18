"""Settings: CLI > environment > TOML file > default, errors that name the key, masked secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tidings.settings import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIDINGS_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("TIDINGS_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tidings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(overrides: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides)
    return str(caught.value)


def test_defaults_follow_the_configuration_table() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.data_dir == Path("./data")
    assert settings.log_level == "info"
    assert settings.sqlite_synchronous == "FULL"
    assert settings.retention_days == 30
    assert settings.max_event_bytes == 262_144
    assert settings.max_body_bytes == 8_388_608
    assert settings.max_batch == 1000
    assert settings.shutdown_timeout_s == 20
    assert settings.url == "http://127.0.0.1:8000"
    assert settings.config is None


def test_the_store_defaults_to_sqlite_in_the_data_directory() -> None:
    settings = load_settings({"data_dir": "/var/lib/tidings"})
    assert settings.store_url == "sqlite:////var/lib/tidings/tidings.db"
    assert load_settings({"store": "sqlite:///x.db"}).store_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("file", "env", "cli", "expected"),
    [
        (None, None, None, 8000),
        (1001, None, None, 1001),
        (1001, "1002", None, 1002),
        (1001, "1002", 1003, 1003),
        (None, "1002", 1003, 1003),
        (1001, None, 1003, 1003),
        (None, "1002", None, 1002),
    ],
)
def test_cli_beats_environment_beats_file_beats_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file: int | None,
    env: str | None,
    cli: int | None,
    expected: int,
) -> None:
    path = write_toml(tmp_path, f"port = {file}\n" if file is not None else "")
    if env is not None:
        monkeypatch.setenv("TIDINGS_PORT", env)
    assert load_settings({"config": str(path), "port": cli}).port == expected


def test_precedence_holds_setting_by_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, 'host = "0.0.0.0"\nmax_batch = 5\nlog_level = "debug"\n')
    monkeypatch.setenv("TIDINGS_MAX_BATCH", "6")
    settings = load_settings({"config": str(path), "log_level": "error"})
    assert (settings.host, settings.max_batch, settings.log_level) == ("0.0.0.0", 6, "error")


def test_the_config_file_may_come_from_tidings_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_CONFIG", str(write_toml(tmp_path, "max_batch = 7\n")))
    settings = load_settings()
    assert settings.max_batch == 7
    assert settings.config == tmp_path / "tidings.toml"


def test_a_config_file_on_the_command_line_beats_tidings_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.toml"
    other.write_text("max_batch = 8\n", encoding="utf-8")
    monkeypatch.setenv("TIDINGS_CONFIG", str(write_toml(tmp_path, "max_batch = 7\n")))
    assert load_settings({"config": str(other)}).max_batch == 8


def test_none_overrides_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_PORT", "1234")
    assert load_settings({"port": None, "host": None}).port == 1234


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("tidings_max_batch", "9")
    assert load_settings().max_batch == 9


def test_the_file_tables_are_loaded(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[sources.github]
verifier = "github"
secret = "s3cret-s3cret-s3cret"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[pg_notify]]
dsn = "postgresql://postgres@127.0.0.1/test"
channel = "property_changes"
""",
    )
    settings = load_settings({"config": str(path)})
    assert settings.sources == {"github": {"verifier": "github", "secret": "s3cret-s3cret-s3cret"}}
    assert settings.mqtt == {"url": "mqtt://127.0.0.1:1883"}
    assert settings.pg_notify[0]["channel"] == "property_changes"


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    message = config_error({"config": str(tmp_path / "nope.toml")})
    assert "nope.toml" in message
    assert "does not exist" in message


def test_a_config_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = = 1\n")
    message = config_error({"config": str(path)})
    assert str(path) in message
    assert "not valid TOML" in message


def test_an_unknown_key_in_the_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 1\nprot = 2\n")
    message = config_error({"config": str(path)})
    assert "'prot'" in message
    assert str(path) in message
    assert "unknown setting" in message


def test_a_bad_value_in_the_file_names_the_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'max_batch = "many"\n')
    message = config_error({"config": str(path)})
    assert "'max_batch'" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIDINGS_PORT", "eighty"),
        ("TIDINGS_PORT", "70000"),
        ("TIDINGS_MAX_BATCH", "0"),
        ("TIDINGS_LOG_LEVEL", "loud"),
        ("TIDINGS_SQLITE_SYNCHRONOUS", "sometimes"),
        ("TIDINGS_RETENTION_DAYS", "-1"),
        ("TIDINGS_SOURCES", "not json"),
        ("TIDINGS_SOURCES", "[1, 2]"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert name in config_error()


def test_every_bad_setting_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_PORT", "x")
    monkeypatch.setenv("TIDINGS_MAX_BATCH", "x")
    message = config_error()
    assert "TIDINGS_PORT" in message
    assert "TIDINGS_MAX_BATCH" in message


def test_an_unknown_tidings_variable_in_the_environment_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_SOMETHING_ELSE", "1")
    assert load_settings().port == 8000


@pytest.mark.parametrize("value", ["DEBUG", "Debug", "debug"])
def test_the_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TIDINGS_LOG_LEVEL", value)
    assert load_settings().log_level == "debug"


@pytest.mark.parametrize("value", ["normal", "Normal", "NORMAL"])
def test_sqlite_synchronous_is_case_insensitive(value: str) -> None:
    assert load_settings({"sqlite_synchronous": value}).sqlite_synchronous == "NORMAL"


def test_describe_masks_secret_keys_at_any_depth(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[sources.github]
verifier = "github"
secret = "s3cret-s3cret-s3cret"

[sources.devices]
verifier = "hmac-sha256"
SECRET = "another-secret-value"
api_token = "tok-123"

[mqtt]
url = "mqtt://127.0.0.1:1883"
password = "mqtt-pw"
private_key = "key-material"
""",
    )
    shown = load_settings({"config": str(path)}).describe()
    assert shown["sources"]["github"] == {"verifier": "github", "secret": "********"}
    assert shown["sources"]["devices"]["SECRET"] == "********"
    assert shown["sources"]["devices"]["api_token"] == "********"
    assert shown["mqtt"]["password"] == "********"
    assert shown["mqtt"]["private_key"] == "********"
    assert shown["mqtt"]["url"] == "mqtt://127.0.0.1:1883"
    text = repr(shown)
    for secret in ("s3cret", "another-secret", "tok-123", "mqtt-pw", "key-material"):
        assert secret not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:********@h/db"),
        (
            "postgresql://user:p%40ss@db.example:5432/x",
            "postgresql://user:********@db.example:5432/x",
        ),
        ("redis://:hunter2@cache:6379/0", "redis://:********@cache:6379/0"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///var/lib/tidings.db", "sqlite:///var/lib/tidings.db"),
        ("http://127.0.0.1:8000/a@b", "http://127.0.0.1:8000/a@b"),
    ],
)
def test_describe_masks_the_password_of_a_url(url: str, shown: str) -> None:
    assert load_settings({"store": url, "url": url}).describe()["store"] == shown
    assert load_settings({"url": url}).describe()["url"] == shown


def test_describe_masks_passwords_in_lists_of_tables(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, '[[pg_notify]]\ndsn = "postgresql://app:pg-pw@127.0.0.1/test"\nchannel = "c"\n'
    )
    shown = load_settings({"config": str(path)}).describe()
    assert shown["pg_notify"] == [
        {"dsn": "postgresql://app:********@127.0.0.1/test", "channel": "c"}
    ]


def test_describe_shows_the_effective_store_and_plain_settings() -> None:
    shown = load_settings({"data_dir": "/d", "port": 9000}).describe()
    assert shown["store"] == "sqlite:////d/tidings.db"
    assert shown["port"] == 9000
    assert shown["host"] == "127.0.0.1"


def test_settings_can_be_built_directly_with_defaults() -> None:
    assert Settings().max_batch == 1000
