"""A Server-Sent Events parser (no I/O), following the WHATWG event-stream rules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Frame:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


@dataclass(slots=True)
class SSEParser:
    """Feed lines (without their line ending); get a Frame at each blank line that ends one."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    _retry: int | None = None

    def feed(self, line: str) -> Frame | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> Frame | None:
        if not self._data and not self._event and self._id is None and self._retry is None:
            return None
        frame = Frame(self._event or "message", "\n".join(self._data), self._id, self._retry)
        self._event, self._data, self._id, self._retry = "", [], None, None
        return frame
