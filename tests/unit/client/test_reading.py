"""The stream's resume state and the export reader (no I/O)."""

from __future__ import annotations

import orjson
import pytest

from tidings.client import Event, SystemMessage, TidingsError
from tidings.client._calls import Answer
from tidings.client._policy import Backoff, Lost
from tidings.client._reading import ExportReader, StreamResume, stream

EVENT = {
    "id": "e1",
    "seq": 7,
    "type": "door.opened",
    "source": "api",
    "subject": None,
    "time": "2026-11-23T10:00:00.000Z",
    "received_at": "2026-11-23T10:00:00.012Z",
    "trace_id": "t",
    "idempotency_key": None,
    "data": {"door": "front"},
    "metadata": {},
}


def resume(**kw: object) -> StreamResume:
    state = stream(type="door.*", **kw)  # type: ignore[arg-type]
    state.backoff = Backoff(initial=1, rng=lambda: 1.0)
    return state


def headers_of(state: StreamResume) -> dict[str, str]:
    return dict(state.request().headers)


def test_the_first_connection_asks_for_the_filter_and_no_resume_point() -> None:
    call = resume().request()
    assert call.path == "/v1/events/stream"
    assert ("type", "door.*") in call.params
    assert "Last-Event-ID" not in dict(call.headers)


def test_since_is_sent_only_until_a_position_is_known() -> None:
    state = resume(since="2026-11-23T10:00:00Z")
    assert ("since", "2026-11-23T10:00:00Z") in state.request().params
    state.frame("connected", '{"connection_id": "c", "position": 41}', "", None)
    call = state.request()
    assert not any(name == "since" for name, _ in call.params)
    assert dict(call.headers)["Last-Event-ID"] == "41"


def test_an_event_moves_the_resume_point_and_is_handed_out() -> None:
    state = resume(last_event_id=3)
    assert headers_of(state)["Last-Event-ID"] == "3"
    item = state.frame("event", orjson.dumps(EVENT).decode(), "7", None)
    assert isinstance(item, Event) and item.seq == 7 and item.data == {"door": "front"}
    assert headers_of(state)["Last-Event-ID"] == "7"


def test_a_heartbeat_moves_the_resume_point_without_handing_anything_out() -> None:
    state = resume(last_event_id=3)
    assert state.frame("heartbeat", '{"position": 90}', "90", None) is None
    assert headers_of(state)["Last-Event-ID"] == "90"


def test_connected_position_is_the_resume_point_only_when_there_is_none() -> None:
    state = resume(last_event_id=5)
    message = state.frame("connected", '{"connection_id": "c", "position": 9}', "", None)
    assert isinstance(message, SystemMessage) and message.kind == "connected"
    assert message.data["connection_id"] == "c"
    assert headers_of(state)["Last-Event-ID"] == "5"


def test_system_messages_are_handed_out_and_told_to_the_callback() -> None:
    told: list[SystemMessage] = []
    state = stream(on_system=told.append)
    item = state.frame("system", '{"code": "backplane_lost", "message": "gone"}', "", None)
    assert item == SystemMessage("system", "backplane_lost", "gone", item.data)  # type: ignore[union-attr]
    assert told == [item]


def test_a_shutdown_retry_is_the_next_wait_once() -> None:
    state = resume(last_event_id=1)
    state.request()
    state.frame("event", orjson.dumps(EVENT).decode(), "7", None)
    shutdown = state.frame("shutdown", '{"retry_ms": 2500}', "", 2500)
    assert isinstance(shutdown, SystemMessage) and shutdown.retry_ms == 2500
    assert state.ended() == 2.5
    state.request()
    assert state.ended() == 1.0  # then the backoff, from its first step


def test_waits_grow_while_connections_deliver_nothing_and_reset_after_progress() -> None:
    state = resume()
    waits = []
    for _ in range(3):
        state.request()
        waits.append(state.ended())
    state.request()
    state.frame("heartbeat", "{}", "12", None)
    waits.append(state.ended())
    assert waits == [1, 2, 4, 1]


def test_max_retries_gives_up_with_the_last_failure() -> None:
    state = resume(max_retries=1)
    state.request()
    state.ended(TidingsError("unreachable", "no"))
    state.request()
    with pytest.raises(TidingsError) as raised:
        state.ended(TidingsError("unreachable", "still no"))
    assert raised.value.message == "still no"


def test_a_refusal_that_will_not_pass_raises_its_error_shape() -> None:
    body = b'{"error": {"code": "invalid_parameter", "message": "bad type", "details": []}}'
    with pytest.raises(TidingsError) as raised:
        resume().refused(Answer(400, {}, body, "http://x"))
    assert (raised.value.status, raised.value.code) == (400, "invalid_parameter")


def test_a_503_waits_for_retry_after() -> None:
    body = b'{"error": {"code": "not_ready", "message": "starting"}}'
    assert resume().refused(Answer(503, {"retry-after": "4"}, body, "http://x")) == 4.0


def test_only_a_200_event_stream_is_read_as_frames() -> None:
    state = resume()
    assert state.opened(200, {"content-type": "text/event-stream; charset=utf-8"})
    assert not state.opened(200, {"content-type": "application/json"})
    assert not state.opened(503, {"content-type": "text/event-stream"})


def test_a_200_that_is_not_an_event_stream_raises_not_tidings() -> None:
    with pytest.raises(TidingsError) as raised:
        resume().rejected(Answer(200, {"content-type": "text/html"}, b"<html>", "http://x"))
    assert (raised.value.code, raised.value.status) == ("not_tidings", 200)
    body = b'{"error": {"code": "not_ready", "message": "starting"}}'
    assert resume().rejected(Answer(503, {"retry-after": "2"}, body, "http://x")) == 2.0


def test_every_connection_asks_for_an_event_stream() -> None:
    state = resume(since="2026-11-23T10:00:00Z")
    assert headers_of(state)["Accept"] == "text/event-stream"
    state.frame("connected", '{"connection_id": "c", "position": 41}', "", None)
    assert headers_of(state)["Accept"] == "text/event-stream"


def test_a_broken_connection_reconnects_but_an_impossible_request_raises() -> None:
    state = resume()
    state.request()
    assert state.lost(Lost(TidingsError("timeout", "slow"), transient=True, sent=True)) == 1.0
    error = TidingsError("invalid_url", "bad URL")
    with pytest.raises(TidingsError) as raised:
        state.lost(Lost(error, transient=False, sent=False))
    assert raised.value is error


def test_export_lines_are_events_and_an_error_line_raises() -> None:
    reader = ExportReader("http://x")
    event = reader.line(orjson.dumps(EVENT).decode())
    assert isinstance(event, Event) and event.id == "e1"
    assert reader.line("") is None
    with pytest.raises(TidingsError) as raised:
        reader.line('{"error": {"code": "store_error", "message": "read failed"}}')
    assert raised.value.code == "store_error"
