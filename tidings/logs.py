"""One log format for Tidings' lines and uvicorn's, as text or as one JSON object a line.

Every line passes one filter that masks credentials (API keys, webhook secrets, tokens in
URLs, ``Authorization`` and ``X-API-Key`` values) whichever logger wrote it, so a secret never
reaches a log however it got into a message. Context a line carries as ``extra=`` fields
(``trace_id``, ``connection_id``, ``webhook_id``, ``delivery_id``) is kept as fields in JSON
and appended as ``key=value`` in text.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

CONTEXT_FIELDS = ("trace_id", "connection_id", "webhook_id", "delivery_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What a credential looks like wherever it appears in a message.
_SECRETS = (
    (re.compile(r"\btdk_[A-Za-z0-9]+"), "tdk_********"),  # API keys
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_********"),  # webhook signing secrets
    # a token in a URL or a form: ?access_token=..., &key=... (not idempotency_key=)
    (re.compile(r"(\b(?:access_token|token|api_key|key|secret)=)[^&\s\"']+", re.I), r"\1****"),
    # a header's value, as "Authorization: Bearer x" or {'x-api-key': 'x'}
    (
        re.compile(
            r"((?:authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',}]+", re.I
        ),
        r"\1****",
    ),
)


def redact(text: str) -> str:
    """``text`` with every credential masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Masks credentials in the formatted message of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: getattr(record, name)
        for name in CONTEXT_FIELDS
        if getattr(record, name, None) is not None
    }


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value...``"""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the context fields, and the
    exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def dict_config(level: str, fmt: LogFormat, access_log: bool) -> dict[str, Any]:
    """The logging configuration: one stderr handler for every logger, uvicorn's included
    (uvicorn applies it too, so its lines never get a format of their own)."""
    formatter = "json" if fmt == "json" else "text"
    level_name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}},
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["redact"],
            }
        },
        "root": {"level": level_name, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"level": level_name, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level_name, "handlers": [], "propagate": True},
            "uvicorn.access": {
                "level": "INFO" if access_log else "WARNING",
                "handlers": [],
                "propagate": True,
            },
            # httpx2 logs every request's full URL at info; some URLs carry tokens.
            "httpx2": {"level": "WARNING"},
        },
    }


def configure(level: str, fmt: LogFormat, access_log: bool) -> dict[str, Any]:
    """Apply the configuration now; the same dict is handed to uvicorn."""
    config = dict_config(level, fmt, access_log)
    logging.config.dictConfig(config)
    return config
