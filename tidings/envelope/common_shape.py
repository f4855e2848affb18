"""A hand-checked path for the common event shape; anything else goes to the full validator.

Most publishes are ``{"type", "source", "subject", "data", "metadata"}`` with plain strings.
Checking those fields by hand costs a small fraction of building and validating a pydantic
model per event (``bench/profile_publish.py --load batch100``). The check here only ever
*accepts*: another field, a value of another kind, a type or source that breaks its rule, an
event over the size limit: each answers None, and the caller runs the full validator on that
event, which produces the exact 413 and 422 messages of DESIGN.md section 4. So the errors
stay where they are, and an accepted event is one the full validator would accept unchanged.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from tidings.envelope.types import MAX_TYPE_LENGTH, TYPE_RE

# The fields this path knows; any other key (id, time, trace_id, payload...) needs the full
# validator, which also knows the aliases and refuses unknown fields.
_FIELDS = frozenset({"type", "source", "subject", "data", "metadata"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # what a source may not contain
MAX_SOURCE = 200
MAX_SUBJECT = 1000
_DEFAULT_SOURCE = "api"


class CommonEvent(NamedTuple):
    """The validated fields of one event in the common shape, data and metadata encoded."""

    type: str
    source: str
    subject: str | None
    data_json: str
    metadata_json: str


def check_common(raw: Any, max_event_bytes: int) -> CommonEvent | None:
    """The event's fields when ``raw`` is a valid event in the common shape, else None.

    The size is the length of ``orjson.dumps(raw)``, the measure the full validator uses,
    added up from the parts encoded anyway: data and metadata are encoded once, here.
    """
    if type(raw) is not dict or not raw.keys() <= _FIELDS:
        return None
    event_type = raw.get("type")
    if (
        type(event_type) is not str
        or not 0 < len(event_type) <= MAX_TYPE_LENGTH
        or TYPE_RE.fullmatch(event_type) is None
    ):
        return None
    # "{" + "}" + a comma between fields + '"name":' per field (len(name) + 3).
    size = 1 + len(raw) + len(event_type) + 9
    source = raw.get("source", _DEFAULT_SOURCE)
    if "source" in raw:
        if (
            type(source) is not str
            or not 0 < len(source) <= MAX_SOURCE
            or _CONTROL.search(source) is not None
        ):
            return None
        size += len(orjson.dumps(source)) + 9
    subject = raw.get("subject")
    if "subject" in raw:
        if subject is not None and (type(subject) is not str or len(subject) > MAX_SUBJECT):
            return None
        size += len(orjson.dumps(subject)) + 10
    metadata = raw.get("metadata", _NO_METADATA)
    if metadata is not _NO_METADATA and type(metadata) is not dict:
        return None
    try:
        data_json = orjson.dumps(raw.get("data"))
        metadata_json = b"{}" if metadata is _NO_METADATA else orjson.dumps(metadata)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: the full validator explains
        return None
    if "data" in raw:
        size += len(data_json) + 7
    if "metadata" in raw:
        size += len(metadata_json) + 11
    if size > max_event_bytes:
        return None
    return CommonEvent(event_type, source, subject, data_json.decode(), metadata_json.decode())


_NO_METADATA: Any = object()
