"""Wire formats: SSE frames a browser parses as intended, WebSocket messages that are JSON."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.envelope import Event
from tidings.streams.framing import (
    SSE_HEADERS,
    http_chunk,
    jittered_retry_ms,
    sse_comment,
    sse_event,
    sse_frame,
    ws_event,
    ws_message,
)

# -- a reference SSE parser -----------------------------------------------------------------


@dataclass
class Message:
    event: str  # the event type a browser would dispatch ("message" when none was given)
    data: str
    last_event_id: str


@dataclass
class Parsed:
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None  # the reconnection time the stream set last


def parse_sse(stream: bytes) -> Parsed:
    """An event stream interpreted as the WHATWG HTML standard says (section 9.2.6).

    The stream must be complete: a trailing partial line would be waiting for more bytes.
    """
    text = stream.decode("utf-8")  # the standard decodes UTF-8, dropping one leading BOM
    text = text.removeprefix("\ufeff")
    *lines, rest = re.split(r"\r\n|\r|\n", text)
    assert rest == "", f"the stream ends inside a line: {rest!r}"
    parsed = Parsed()
    event_type = data = last_event_id = ""
    for line in lines:
        if line == "":  # dispatch
            if data:
                parsed.messages.append(
                    Message(event_type or "message", data.removesuffix("\n"), last_event_id)
                )
            event_type = data = ""
            continue
        if line.startswith(":"):
            parsed.comments.append(line[1:].removeprefix(" "))
            continue
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            parsed.retry = int(value)
        # any other field is ignored
    return parsed


def assert_one_well_formed_frame(frame: bytes) -> list[str]:
    """Our own stricter rules: LF line ends, known fields, one blank line, at the end only."""
    assert frame.endswith(b"\n\n")
    assert b"\r" not in frame
    lines = frame[:-2].decode().split("\n")
    for line in lines:
        assert line, "a blank line inside a frame would end it early"
        if not line.startswith(":"):
            name, separator, _ = line.partition(": ")
            assert separator and name in {"event", "id", "retry", "data"}, line
    return lines


# -- events -----------------------------------------------------------------------------


def make_event(
    seq: int = 7,
    *,
    data: Any = None,
    source: str = "api",
    subject: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Event:
    return Event(
        seq=seq,
        id="0193a5f0-0000-7000-8000-000000000000",
        type="user.created",
        source=source,
        subject=subject,
        time_us=1_700_000_000_123_000,
        received_at_us=1_700_000_000_456_000,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        idempotency_key=None,
        data_json=orjson.dumps(data).decode(),
        metadata_json=orjson.dumps(metadata or {}).decode(),
    )


NASTY_TEXT = 'line1\nline2\r\nline3\rend \u2028\u2029\u0085 é 漢字 🎉 \x00 \x1b "q" \\ data: x'


def test_an_event_frame_is_one_well_formed_sse_event() -> None:
    e = make_event(42, data={"name": "Ada"})
    frame = sse_event(e)
    assert assert_one_well_formed_frame(frame)[:2] == ["event: event", "id: 42"]
    [message] = parse_sse(frame).messages
    assert message.event == "event"
    assert message.last_event_id == "42"
    assert orjson.loads(message.data) == e.to_dict()


def test_an_event_frame_carries_the_events_encoding_byte_for_byte() -> None:
    e = make_event(data=[1, 2, 3])
    [message] = parse_sse(sse_event(e)).messages
    assert message.data.encode() == e.encode()


def test_an_event_frame_is_built_once_and_shared_by_every_consumer() -> None:
    e = make_event()
    first = sse_event(e)
    assert sse_event(e) is first
    assert e.wire["sse"] is first


def test_a_cached_frame_is_the_one_served_even_if_the_encoding_cache_is_gone() -> None:
    e = make_event()
    first = sse_event(e)
    e._encoded = None  # the frame does not depend on rebuilding the JSON
    assert sse_event(e) is first


def test_two_copies_of_an_event_frame_identically() -> None:
    assert sse_event(make_event(data={"a": 1})) == sse_event(make_event(data={"a": 1}))


@pytest.mark.parametrize(
    "where",
    ["data", "source", "subject", "metadata"],
)
def test_line_breaks_and_unicode_in_an_event_stay_on_one_data_line(where: str) -> None:
    fields: dict[str, Any] = {
        "data": {"text": NASTY_TEXT, NASTY_TEXT: [NASTY_TEXT]},
        "source": NASTY_TEXT,
        "subject": NASTY_TEXT,
        "metadata": {"note": NASTY_TEXT},
    }
    e = make_event(**{where: fields[where]})
    frame = sse_event(e)
    lines = assert_one_well_formed_frame(frame)
    assert len(lines) == 3
    [message] = parse_sse(frame).messages
    assert orjson.loads(message.data) == e.to_dict()


TEXT = st.text(st.sampled_from('ab \n\r\u2028\u0085é🎉\x00"\\:')) | st.text(
    st.characters(blacklist_categories=("Cs",))
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(JSON, TEXT, st.integers(1, 2**63 - 1))
def test_any_event_frames_as_one_sse_event_a_browser_decodes_back(
    data: Any, source: str, seq: int
) -> None:
    e = make_event(seq, data=data, source=source)
    frame = sse_event(e)
    assert_one_well_formed_frame(frame)
    [message] = parse_sse(frame).messages
    assert message.last_event_id == str(seq)
    assert orjson.loads(message.data) == e.to_dict()


def test_consecutive_frames_parse_as_consecutive_events() -> None:
    events = [make_event(seq, data={"n": seq}) for seq in [1, 2, 3]]
    stream = b"".join(
        [
            sse_frame("connected", {"position": 0}),
            *(sse_event(e) for e in events),
            sse_comment("keep-alive"),
            sse_frame("heartbeat", {"position": 3}, id=3),
        ]
    )
    parsed = parse_sse(stream)
    assert [(m.event, m.last_event_id) for m in parsed.messages] == [
        ("connected", ""),
        ("event", "1"),
        ("event", "2"),
        ("event", "3"),
        ("heartbeat", "3"),
    ]
    assert [orjson.loads(m.data)["data"] for m in parsed.messages[1:4]] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    assert parsed.comments == ["keep-alive"]


# -- other frames -----------------------------------------------------------------------


def test_a_named_frame_has_its_name_and_json_data() -> None:
    frame = sse_frame("system", {"code": "slow_consumer"})
    assert assert_one_well_formed_frame(frame) == [
        "event: system",
        'data: {"code":"slow_consumer"}',
    ]
    [message] = parse_sse(frame).messages
    assert message.event == "system"
    assert orjson.loads(message.data) == {"code": "slow_consumer"}


def test_a_frame_with_an_id_sets_the_last_event_id() -> None:
    frame = sse_frame("heartbeat", {"position": 12}, id=12)
    assert_one_well_formed_frame(frame)
    assert parse_sse(frame).messages[0].last_event_id == "12"


def test_an_id_of_zero_is_still_sent() -> None:
    assert parse_sse(sse_frame("heartbeat", {}, id=0)).messages[0].last_event_id == "0"


def test_a_frame_without_an_id_leaves_the_last_event_id_alone() -> None:
    frame = sse_frame("heartbeat", {"position": None})
    assert b"id:" not in frame
    stream = sse_frame("heartbeat", {}, id=5) + frame
    assert [m.last_event_id for m in parse_sse(stream).messages] == ["5", "5"]


def test_a_frame_with_retry_sets_the_reconnection_time() -> None:
    frame = sse_frame("shutdown", {"code": "shutdown"}, retry_ms=4321)
    assert_one_well_formed_frame(frame)
    parsed = parse_sse(frame)
    assert parsed.retry == 4321
    assert parsed.messages[0].event == "shutdown"


def test_a_frame_without_retry_sets_no_reconnection_time() -> None:
    assert parse_sse(sse_frame("system", {})).retry is None


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["connected", "heartbeat", "system", "shutdown"]),
    JSON,
    st.none() | st.integers(0, 2**63 - 1),
    st.none() | st.integers(0, 10**7),
)
def test_any_named_frame_is_well_formed_and_decodes_back(
    name: str, data: Any, id: int | None, retry_ms: int | None
) -> None:
    frame = sse_frame(name, data, id=id, retry_ms=retry_ms)
    assert_one_well_formed_frame(frame)
    parsed = parse_sse(frame)
    [message] = parsed.messages
    assert message.event == name
    assert orjson.loads(message.data) == data
    assert message.last_event_id == ("" if id is None else str(id))
    assert parsed.retry == retry_ms


def test_a_comment_dispatches_nothing() -> None:
    frame = sse_comment("ping")
    assert_one_well_formed_frame(frame)
    parsed = parse_sse(frame)
    assert parsed.messages == []
    assert parsed.comments == ["ping"]


def test_an_empty_comment_is_well_formed() -> None:
    frame = sse_comment()
    assert_one_well_formed_frame(frame)
    assert parse_sse(frame).messages == []


@pytest.mark.parametrize("breaks", ["\n", "\r", "\r\n"])
def test_a_comment_with_line_breaks_cannot_forge_an_event(breaks: str) -> None:
    text = breaks.join(["note", "event: system", "data: forged", "", "id: 99", ""])
    frame = sse_comment(text)
    assert_one_well_formed_frame(frame)
    parsed = parse_sse(frame + sse_frame("heartbeat", {}))
    assert [m.event for m in parsed.messages] == ["heartbeat"]
    assert parsed.messages[0].last_event_id == ""
    assert parsed.comments == ["note", "event: system", "data: forged", "", "id: 99", ""]


@settings(max_examples=100, deadline=None)
@given(TEXT)
def test_any_comment_is_only_comments(text: str) -> None:
    frame = sse_comment(text)
    assert_one_well_formed_frame(frame)
    parsed = parse_sse(frame)
    assert parsed.messages == []
    assert parsed.retry is None


def test_the_sse_response_headers_announce_an_unbuffered_event_stream() -> None:
    headers = dict(SSE_HEADERS)
    assert len(headers) == len(SSE_HEADERS)
    assert all(name == name.lower() for name in headers)  # ASGI wants lowercase names
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert b"no-cache" in headers[b"cache-control"]
    assert headers[b"x-accel-buffering"] == b"no"


# -- WebSocket --------------------------------------------------------------------------


def test_a_websocket_event_message_is_json_with_the_event_spliced_in() -> None:
    e = make_event(data={"text": NASTY_TEXT})
    message = orjson.loads(ws_event("sub-1", e))
    assert message == {"op": "event", "sub": "sub-1", "event": e.to_dict()}


def test_a_websocket_event_message_reuses_the_events_encoding() -> None:
    e = make_event(data={"a": 1})
    encoded = e.encode()
    assert encoded in ws_event("s", e)
    assert e.encode() is encoded


@settings(max_examples=150, deadline=None)
@given(TEXT, JSON, TEXT)
def test_any_websocket_event_message_is_valid_json(sub_id: str, data: Any, subject: str) -> None:
    e = make_event(data=data, subject=subject)
    assert orjson.loads(ws_event(sub_id, e)) == {"op": "event", "sub": sub_id, "event": e.to_dict()}


def test_a_websocket_control_message_is_json_with_its_op_first() -> None:
    raw = ws_message("subscribed", id="s1", position=12, filter={"type": "a.#"})
    assert raw.startswith(b'{"op":"subscribed"')
    assert orjson.loads(raw) == {
        "op": "subscribed",
        "id": "s1",
        "position": 12,
        "filter": {"type": "a.#"},
    }


# -- reconnect jitter -------------------------------------------------------------------


def test_the_retry_delay_stays_within_base_and_base_plus_spread() -> None:
    rng = random.Random(7)
    values = [jittered_retry_ms(2000, 8000, rng) for _ in range(2000)]
    assert all(2000 <= value < 10000 for value in values)
    assert all(isinstance(value, int) for value in values)


def test_the_retry_delay_is_spread_out_so_clients_do_not_return_together() -> None:
    rng = random.Random(11)
    values = [jittered_retry_ms(2000, 8000, rng) for _ in range(2000)]
    assert len(set(values)) > 1000
    assert min(values) < 2000 + 800  # both ends of the range are used
    assert max(values) > 10000 - 800


def test_the_retry_delay_uses_the_shared_random_source_by_default() -> None:
    values = {jittered_retry_ms() for _ in range(200)}
    assert all(2000 <= value < 10000 for value in values)
    assert len(values) > 1


def test_a_zero_spread_gives_the_base_delay() -> None:
    assert jittered_retry_ms(1500, 0, random.Random(1)) == 1500


class _Extreme(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("value", "expected"), [(0.0, 2000), (0.5, 6000), (1 - 2**-53, 9999)])
def test_the_retry_delay_maps_the_whole_unit_interval_into_the_range(
    value: float, expected: int
) -> None:
    assert jittered_retry_ms(2000, 8000, _Extreme(value)) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 2**32))
def test_any_retry_delay_is_within_its_range(base: int, spread: int, seed: int) -> None:
    value = jittered_retry_ms(base, spread, random.Random(seed))
    assert base <= value < base + spread or (spread == 0 and value == base)


def test_an_http_chunk_is_framed_as_the_server_frames_its_own() -> None:
    assert http_chunk(b"abc") == b"3\r\nabc\r\n"
    body = b"x" * 300
    assert http_chunk(body) == b"12c\r\n" + body + b"\r\n"
