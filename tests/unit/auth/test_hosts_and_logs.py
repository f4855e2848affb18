"""DNS rebinding guard of a loopback server without auth, and keys masked in access logs."""

from __future__ import annotations

import logging

import pytest

from tidings.auth.middleware import _local_host
from tidings.server import MaskKeys


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8000",
        "localhost:8000",
        "localhost",
        "[::1]:8000",
        "t",
        "tidings:80",
        "10.0.0.5:8000",
        "app.localhost:8000",
    ],
)
def test_hosts_that_cannot_come_from_dns_rebinding_pass(host: str) -> None:
    assert _local_host(host)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io:8000"])
def test_dotted_names_are_refused_on_a_loopback_server_without_auth(host: str) -> None:
    assert not _local_host(host)


def test_access_tokens_are_masked_in_access_log_lines() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            "/v1/events/stream?type=a&access_token=tdk_secret&x=1",
            "1.1",
            200,
        ),
        None,
    )
    assert MaskKeys().filter(record)
    line = record.getMessage()
    assert "tdk_secret" not in line
    assert "access_token=********&x=1" in line
