"""Log lines: one format for every logger, JSON when asked, and never a credential."""

from __future__ import annotations

import json
import logging

import pytest

from tidings.logs import JsonFormatter, RedactSecrets, TextFormatter, dict_config, redact


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("tidings.test", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


@pytest.mark.parametrize(
    ("text", "kept_out"),
    [
        ('GET /v1/events/stream?type=a&access_token=tdk_abcDEF123 HTTP/1.1" 200', "abcDEF123"),
        ("created key tdk_4f9Qx2 for ci", "4f9Qx2"),
        ("secret whsec_MfKQ9r8GdvP/8uz+hlpQ== rotated", "MfKQ9r8GdvP"),
        ("headers {'x-api-key': 'plain-key-value'}", "plain-key-value"),
        ("Authorization: Bearer some.jwt.value", "some.jwt.value"),
        ("confirm https://api.smartthings.com/confirm?token=abc123&x=1", "abc123"),
    ],
)
def test_credentials_are_masked_wherever_they_appear(text: str, kept_out: str) -> None:
    assert kept_out not in redact(text)


def test_ordinary_text_is_left_alone() -> None:
    text = "published id=e1 seq=42 idempotency_key=order-7 to door.opened"
    assert redact(text) == text


def test_the_filter_masks_the_formatted_message_with_its_arguments() -> None:
    line = record("GET %s", "/v1/events/stream?access_token=tdk_secret1")
    assert RedactSecrets().filter(line)
    assert line.getMessage() == "GET /v1/events/stream?access_token=****"


def test_json_lines_have_time_level_logger_message_and_context() -> None:
    line = JsonFormatter().format(record("delivered %d", 3, webhook_id="wh_1", trace_id="t1"))
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "tidings.test"
    assert entry["message"] == "delivered 3"
    assert (entry["webhook_id"], entry["trace_id"]) == ("wh_1", "t1")
    assert entry["time"].endswith("Z") and "connection_id" not in entry


def test_text_lines_append_the_context() -> None:
    line = TextFormatter().format(record("closed", connection_id="c1"))
    assert line.endswith("INFO tidings.test: closed connection_id=c1")


def test_uvicorn_logs_through_the_same_handler_and_the_access_log_can_be_off() -> None:
    on, off = dict_config("info", "json", True), dict_config("info", "json", False)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert on["loggers"][name]["handlers"] == [] and on["loggers"][name]["propagate"]
    assert on["handlers"]["stderr"]["formatter"] == "json"
    assert on["loggers"]["uvicorn.access"]["level"] == "INFO"
    assert off["loggers"]["uvicorn.access"]["level"] == "WARNING"
