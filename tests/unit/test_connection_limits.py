"""The connection cap's sizing, the idle set and the report line, without sockets."""

from __future__ import annotations

from tidings.connection_limits import CapReport, IdleConnections, connection_budget, connection_cap
from tidings.http_protocol import websocket_handshake_problem


def test_the_budget_keeps_descriptors_for_the_store_and_deliveries() -> None:
    assert connection_budget(1024) == 1024 - 256
    assert connection_budget(20_000) == 19_000
    assert connection_budget(100) == 16


def test_a_configured_cap_larger_than_the_budget_is_lowered_with_a_warning() -> None:
    assert connection_cap(20_000, None) == (19_000, None)
    assert connection_cap(20_000, 500) == (500, None)
    cap, warning = connection_cap(1024, 50_000)
    assert cap == 768
    assert warning is not None and "TIDINGS_MAX_CONNECTIONS=50000" in warning


def test_the_longest_idle_connection_goes_first_and_busy_ones_never() -> None:
    idle: IdleConnections[str] = IdleConnections()
    for name in ("a", "b", "c"):
        idle.idle(name)
    idle.busy("a")
    idle.idle("b")  # idle again after a response: now the most recent
    assert idle.take_oldest(besides="c") == "b"
    assert idle.take_oldest(besides="c") is None
    assert idle.take_oldest(besides="x") == "c"
    assert len(idle) == 0


def test_the_report_says_what_happened_at_most_once_per_period() -> None:
    report = CapReport(cap=10, every_s=10.0)
    first = report.note(0.0, refused=True)
    assert first is not None and "0 idle connection(s) closed and 1 new one(s) refused" in first
    assert report.note(1.0, refused=False) is None
    assert report.note(2.0, refused=True) is None
    line = report.note(10.5, refused=False)
    assert line is not None and "2 idle connection(s) closed and 1 new one(s) refused" in line


def test_a_websocket_handshake_needs_a_16_byte_key_and_version_13() -> None:
    good = [(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"sec-websocket-version", b"13")]
    assert websocket_handshake_problem(good) is None
    assert "missing" in str(websocket_handshake_problem(good[1:]))
    assert "16 bytes" in str(websocket_handshake_problem([(b"sec-websocket-key", b"abc"), good[1]]))
    old = [good[0], (b"sec-websocket-version", b"8")]
    assert "must be 13" in str(websocket_handshake_problem(old))
