"""Reading streams: the SSE resume state and the export's lines (no I/O).

A stream keeps its place across reconnects: the last ``id:`` seen (of an event or of a
heartbeat, so a sparse filter's place stays fresh) is sent back as ``Last-Event-ID``; before
any id arrives, the position the server reported in ``connected`` is. So a reconnect never
skips an event and never repeats one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings.client._calls import (
    Answer,
    Call,
    Moment,
    Values,
    Where,
    check,
    filter_params,
    iso,
)
from tidings.client._errors import TidingsError
from tidings.client._models import Event, SystemMessage
from tidings.client._policy import RETRY_STATUSES, Backoff

StreamItem = Event | SystemMessage


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)
class StreamResume:
    """Where a stream is, and what to do when its connection ends."""

    call: Call  # the stream request without a resume point
    position: int | None = None  # the resume point: events after it are wanted
    since: str | None = None  # used only until the first position is known
    max_retries: int | None = None  # reconnects in a row without progress; None: for ever
    backoff: Backoff = field(default_factory=Backoff)
    on_system: Callable[[SystemMessage], None] | None = None  # told of every system message
    # told of every reconnect: what ended the connection (None: it closed) and the wait
    on_reconnect: Callable[[Exception | None, float], None] | None = None
    _server_retry_ms: int | None = None  # the last ``retry:`` the server sent
    _progressed: bool = False  # the current connection delivered an event or heartbeat
    _failures: int = 0  # connections in a row that delivered nothing

    def request(self) -> Call:
        """The next connection's request: from the resume point, else from ``since``."""
        self._progressed = False
        if self.position is not None:
            headers = (*self.call.headers, ("Last-Event-ID", str(self.position)))
            return Call(self.call.method, self.call.path, self.call.params, None, headers, True)
        if self.since is not None:
            return self.call.with_param("since", self.since)
        return self.call

    def refused(self, answer: Answer) -> float:
        """The wait before reconnecting after a refusal that may pass (429, 503, ...);
        any other refusal is raised."""
        if answer.status not in RETRY_STATUSES:
            check(answer)
            raise TidingsError(
                "not_tidings",
                f"{answer.url} answered HTTP {answer.status} without an event stream",
                status=answer.status,
            )
        error = TidingsError.from_answer(answer.status, answer.headers, answer.body, answer.url)
        delay = self._next_wait(error)
        wait = error.retry_after if error.retry_after is not None else delay
        if self.on_reconnect is not None:
            self.on_reconnect(error, wait)
        return wait

    def ended(self, error: Exception | None = None) -> float:
        """The wait before reconnecting after the connection ended (``error`` if it broke)."""
        failure = error or TidingsError("transport_error", "the stream ended")
        wait = self._next_wait(failure)
        if self.on_reconnect is not None:
            self.on_reconnect(error, wait)
        return wait

    def _next_wait(self, error: Exception) -> float:
        if self._progressed:
            self._failures = 0
            self.backoff.reset()
        else:
            self._failures += 1
        if self.max_retries is not None and self._failures > self.max_retries:
            if isinstance(error, TidingsError):
                raise error
            raise TidingsError("unreachable", f"the stream failed: {error}") from error
        if self._server_retry_ms is not None:
            wait, self._server_retry_ms = self._server_retry_ms / 1000, None
            return wait
        return self.backoff.next()

    def frame(self, event: str, data: str, id: str, retry: int | None) -> StreamItem | None:
        """Read one SSE frame; an event or a system message to hand out, else None."""
        item = self._read(event, data, id, retry)
        if isinstance(item, SystemMessage) and self.on_system is not None:
            self.on_system(item)
        return item

    def _read(self, event: str, data: str, id: str, retry: int | None) -> StreamItem | None:
        if id.isdigit():
            self.position = int(id)
        if retry is not None:
            self._server_retry_ms = retry
        if event == "event":
            self._progressed = True
            return Event.from_json(orjson.loads(data))
        if event == "heartbeat":
            self._progressed = True
            return None
        info = _json_object(data)
        if event == "connected":
            start = info.get("position")
            if self.position is None and isinstance(start, int):
                self.position = start
            return SystemMessage("connected", "connected", "", info)
        if event == "system":
            code, message = str(info.get("code", "")), str(info.get("message", ""))
            return SystemMessage("system", code, message, info)
        if event == "shutdown":
            message = str(info.get("message", "the server is shutting down"))
            return SystemMessage("shutdown", "shutdown", message, info, retry)
        return None


def event_stream_type(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


def ndjson_export(call: Call) -> Call:
    """``call`` when it asks for NDJSON, which is what reading events needs."""
    if ("format", "ndjson") not in call.params:
        raise TidingsError("invalid_parameter", "events are read from NDJSON; use export_lines")
    return call


@dataclass(slots=True)
class ExportReader:
    """Reads NDJSON export lines as events; an error line ends the export with its error."""

    url: str  # for the error of a line that is not JSON

    def line(self, text: str) -> Event | None:
        if not text.strip():
            return None
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise TidingsError("not_tidings", f"{self.url} sent a line that is not JSON") from None
        if not isinstance(value, dict):
            raise TidingsError("not_tidings", f"{self.url} sent a line that is not an event")
        if "error" in value and "seq" not in value:
            raise error_line(value)
        return Event.from_json(value)


def error_line(value: dict[str, Any]) -> TidingsError:
    """The error an export ends with (``{"error": {"code", "message"}}`` as its last line)."""
    error = value.get("error")
    if not isinstance(error, dict):
        return TidingsError("export_failed", "the export ended with an error")
    return TidingsError(
        str(error.get("code", "export_failed")),
        str(error.get("message", "the export ended with an error")),
        details=list(error.get("details") or []),
    )


def stream(
    *,
    type: Values = None,
    source: Values = None,
    exclude_source: Values = None,
    subject: Values = None,
    trace_id: Values = None,
    where: Where = None,
    last_event_id: int | None = None,
    since: Moment = None,
    max_retries: int | None = None,
    on_system: Callable[[SystemMessage], None] | None = None,
    on_reconnect: Callable[[Exception | None, float], None] | None = None,
) -> StreamResume:
    """Follow the matching events live, from after ``last_event_id``, else from ``since``
    (a time), else from now. Reconnects by itself (waits with jitter, honouring ``retry:``
    and ``Retry-After``) and resumes where it was, with no gap and no duplicate; gives up
    after ``max_retries`` failed connections in a row (default: never). System messages
    (``connected``, ``system``, ``shutdown``) also go to ``on_system``; each reconnect, with
    what ended the connection and the wait before the next, goes to ``on_reconnect``."""
    params = filter_params(
        type=type,
        source=source,
        exclude_source=exclude_source,
        subject=subject,
        trace_id=trace_id,
        where=where,
    )
    call = Call("GET", "/v1/events/stream", tuple(params), None, (), True)
    return StreamResume(
        call,
        position=last_event_id,
        since=iso(since) if since is not None else None,
        max_retries=max_retries,
        on_system=on_system,
        on_reconnect=on_reconnect,
    )
