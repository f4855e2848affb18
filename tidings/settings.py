"""One settings object. Precedence: CLI flag > environment (``TIDINGS_*``) > TOML file > default.

The names are a public contract (DESIGN.md section 5): scripts and users rely on them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
_SECRET_KEY = re.compile(r"secret|password|token|private|bootstrap_key", re.IGNORECASE)
# The password of a URL's user info; the user may be empty, as in redis://:pw@host.
_URL_PASSWORD = re.compile(r"(//[^:/@]*:)[^@/]+@")
_SETTINGS_FIELD = re.compile(r'field "(\w+)"')


class Settings(BaseSettings):
    """Every setting of a Tidings process, validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="forbid", validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("./data")
    store: str | None = None  # sqlite:///path; default: <data_dir>/tidings.db
    config: Path | None = None  # the TOML file this came from
    log_level: LogLevel = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object a line
    access_log: bool = True  # one info line per HTTP request (uvicorn.access)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    sqlite_quick_check_s: float = Field(10, ge=0)  # PRAGMA quick_check at start, at most; 0: off
    retention_days: float = Field(30, ge=0)  # 0 keeps events forever
    retention_interval_s: float = Field(3600, gt=0)  # how often the purge runs
    max_event_bytes: int = Field(262_144, ge=256)
    max_body_bytes: int = Field(8_388_608, ge=1024)
    max_batch: int = Field(1000, ge=1)
    shutdown_timeout_s: float = Field(20, gt=0)
    backplane: str = "memory://"  # memory:// (one process)
    heartbeat_s: float = Field(15, gt=0)  # stream heartbeat period
    stream_stall_s: float = Field(30, gt=0)  # a socket accepting nothing this long is closed
    delivery_concurrency: int = Field(16, ge=1, le=1024)  # webhook requests in flight
    webhook_allow_private: bool = False  # allow loopback/private destinations (local use, tests)
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"  # delay before each attempt
    webhook_timeout_s: float = Field(10, gt=0)
    webhook_throttle_s: float = Field(60, ge=0)  # least wait after 429, 503 or a timeout
    webhook_rotation_overlap_s: float = Field(86_400, ge=0)  # old secret keeps signing this long
    webhook_disable_after_s: float = Field(432_000, gt=0)  # only failures this long: disabled
    keepalive_s: float = Field(5, gt=0)  # an idle keep-alive connection is closed after this
    header_timeout_s: float = Field(10, gt=0)  # a request line and headers must arrive within
    max_header_bytes: int = Field(65_536, ge=1024)  # request line and headers together
    max_connections: int | None = Field(None, ge=1)  # default: sized from the open-files limit
    url: str = "http://127.0.0.1:8000"  # the server that client commands talk to
    # Auth (DESIGN.md section 4): None is on unless the host is a loopback address.
    auth: bool | None = None
    bootstrap_key: str | None = Field(None, min_length=32, max_length=256)  # first root key
    cors_origins: str | None = None  # comma list of browser origins allowed
    # Tables of the config file read by the ingest adapters (DESIGN.md section 6).
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mqtt: dict[str, Any] | None = None
    pg_notify: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("log_level", "sqlite_synchronous", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            return value.upper() if info.field_name == "sqlite_synchronous" else value.lower()
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        from tidings.delivery.schedule import parse_schedule

        parse_schedule(value)
        return value

    @field_validator("auth", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("on", "off"):
            return value.strip().lower() == "on"
        return value

    @field_validator("bootstrap_key")
    @classmethod
    def _usable_key(cls, value: str | None) -> str | None:
        from tidings.auth.keys import malformed

        problem = malformed(value) if value is not None else None
        if problem:
            raise ValueError(problem.replace("the API key", "the bootstrap key"))
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: str | None) -> str | None:
        from tidings.auth.origins import parse_origins

        parse_origins(value)
        return value

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{(self.data_dir / 'tidings.db').as_posix()}"

    def describe(self) -> dict[str, Any]:
        """The settings as printed at start-up: secrets and URL passwords masked."""
        shown: dict[str, Any] = self.model_dump(mode="json")
        shown["store"] = self.store_url
        redacted: dict[str, Any] = _redact(shown)
        return redacted


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY.search(key):
            return "********"
        return _URL_PASSWORD.sub(r"\1********@", value)
    return value


class ConfigError(Exception):
    """A setting is invalid; the message names it."""


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from CLI ``overrides`` (None values ignored), the environment and the TOML file."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    config_path = given.get("config") or os.environ.get("TIDINGS_CONFIG") or None
    toml_file = Path(config_path) if config_path else None
    if toml_file is not None:
        if not toml_file.is_file():
            raise ConfigError(f"config file {str(toml_file)!r} (TIDINGS_CONFIG) does not exist")
        try:
            tomllib.loads(toml_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"config file {str(toml_file)!r} is not valid TOML: {error}"
            ) from None

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
            return tuple(sources)

    try:
        return _Loaded(**given)
    except ValidationError as error:
        raise ConfigError(_explain(error, toml_file)) from None
    except SettingsError as error:
        # a table or list setting given in the environment as something other than JSON
        match = _SETTINGS_FIELD.search(str(error))
        name = match.group(1) if match else "?"
        raise ConfigError(
            f"invalid configuration:\n  setting {name!r} (environment "
            f"TIDINGS_{name.upper()}): the value is not valid JSON"
        ) from None


def _explain(error: ValidationError, toml_file: Path | None) -> str:
    lines = []
    for item in error.errors(include_url=False):
        name = ".".join(str(p) for p in item["loc"])
        env = "TIDINGS_" + str(item["loc"][0]).upper() if item["loc"] else ""
        if item["type"] == "extra_forbidden":
            # only the file can hold an unknown key: the environment is read by known names
            lines.append(f"setting {name!r} in {toml_file}: unknown setting")
            continue
        where = f" (environment {env}" + (f" or {toml_file}" if toml_file else "") + ")"
        lines.append(f"setting {name!r}{where}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
