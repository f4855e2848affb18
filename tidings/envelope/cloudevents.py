"""CloudEvents 1.0 in and out: the JSON format (structured and batch) and HTTP binary mode.

Mapping: ``id``, ``source``, ``type``, ``subject``, ``time`` map to the envelope fields of the
same name; a CloudEvent's ``id`` is unique per ``source`` by the spec, so (source, id) is its
deduplication key. ``datacontenttype``, ``dataschema`` and extension attributes are kept under
``metadata["cloudevents"]`` so that the event goes out as it came in. The ``traceparent``
extension (the CloudEvents distributed-tracing extension) gives the trace id.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import orjson

from tidings.envelope.ids import trace_id_from_traceparent
from tidings.envelope.model import Candidate, Event
from tidings.envelope.timefmt import format_us
from tidings.envelope.validate import (
    Limits,
    PublishContext,
    batch_key,
    check_batch,
    check_size,
    parse_event,
    to_candidate,
)
from tidings.errors import TidingsError, invalid

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_CORE = {"specversion", "id", "source", "type", "subject", "time", "data", "data_base64"}
_KEPT = {"datacontenttype", "dataschema"}
# Lowercase ASCII letters and digits (CloudEvents 1.0: names "SHOULD NOT" exceed 20 characters,
# so longer ones are still valid). Used with fullmatch, which no trailing newline slips past.
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")
_HEX16 = re.compile(r"[0-9a-f]{16}")
# Percent-encoded in a header value (HTTP binding 3.1.3.2): space, '"', '%' and anything
# outside printable ASCII; every other printable character is kept.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _to_input(
    attributes: Mapping[str, Any], data: Any, loc: list[str | int]
) -> tuple[dict[str, Any], str | None]:
    """An envelope input dict and its dedupe key from CloudEvents attributes."""
    # In the JSON format an attribute whose value is null is absent.
    attributes = {k: v for k, v in attributes.items() if v is not None}
    specversion = attributes.get("specversion")
    problems = []
    if specversion != "1.0":
        problems.append({"loc": [*loc, "specversion"], "msg": 'specversion must be "1.0"'})
    for required in ("id", "source", "type"):
        value = attributes.get(required)
        if not isinstance(value, str) or not value:
            problems.append({"loc": [*loc, required], "msg": "required CloudEvents attribute"})
    for name, value in attributes.items():
        if name in _CORE:
            continue
        if not _ATTRIBUTE_NAME.fullmatch(name):
            problems.append(
                {"loc": [*loc, name], "msg": "attribute names are lowercase letters or digits"}
            )
        elif isinstance(value, dict | list):
            problems.append(
                {"loc": [*loc, name], "msg": "an attribute is a string, number or boolean"}
            )
    if problems:
        raise invalid("the CloudEvent is not valid", problems)
    extensions = {k: v for k, v in attributes.items() if k not in _CORE}
    item: dict[str, Any] = {
        "id": attributes["id"],
        "source": attributes["source"],
        "type": attributes["type"],
        "data": data,
        "metadata": {"cloudevents": extensions} if extensions else {},
    }
    for optional in ("subject", "time"):
        if attributes.get(optional) is not None:
            item[optional] = attributes[optional]
    trace_id = trace_id_from_traceparent(str(extensions.get("traceparent") or ""))
    if trace_id:
        item["trace_id"] = trace_id
    return item, f"ce:{attributes['source']}\x1f{attributes['id']}"


def _structured_item(
    raw: Any, ctx: PublishContext, limits: Limits, loc: list[str | int], index: int | None
) -> Candidate:
    if not isinstance(raw, dict):
        raise invalid(
            "a CloudEvent must be a JSON object", [{"loc": loc, "msg": "expected an object"}]
        )
    check_size(raw, limits, loc)
    data = raw.get("data")
    attributes = dict(raw)
    if "data_base64" in raw:
        if "data" in raw:
            raise invalid(
                "a CloudEvent has either data or data_base64", [{"loc": loc, "msg": "both given"}]
            )
        encoded = raw["data_base64"]
        try:
            base64.b64decode(encoded, validate=True)
        except (ValueError, TypeError):
            raise invalid(
                "data_base64 is not base64", [{"loc": [*loc, "data_base64"], "msg": "not base64"}]
            ) from None
        data = encoded
        attributes["data_base64"] = True
    item, dedupe = _to_input(attributes, data, loc)
    if attributes.get("data_base64") is True:
        item["metadata"].setdefault("cloudevents", {})["data_base64"] = True
    model = parse_event(item, ctx, limits, loc)
    key = batch_key(ctx.idempotency_key, index) if index is not None else ctx.idempotency_key
    return to_candidate(model, ctx, idempotency_key=key, dedupe_key=None if key else dedupe)


def from_structured(body: Any, ctx: PublishContext, limits: Limits) -> list[Candidate]:
    """``application/cloudevents+json``: one CloudEvent as a JSON object."""
    return [_structured_item(body, ctx, limits, ["body"], None)]


def from_batch(body: Any, ctx: PublishContext, limits: Limits) -> list[Candidate]:
    """``application/cloudevents-batch+json``: a JSON array of CloudEvents, all or nothing."""
    if not isinstance(body, list):
        raise invalid(
            "a CloudEvents batch is a JSON array", [{"loc": ["body"], "msg": "expected an array"}]
        )
    check_batch(len(body), limits)
    out: list[Candidate] = []
    details: list[dict[str, Any]] = []
    for index, raw in enumerate(body):
        try:
            out.append(_structured_item(raw, ctx, limits, ["body", index], index))
        except TidingsError as error:
            if error.status != 422:
                raise
            details.extend(error.details)
    if details:
        raise invalid("some CloudEvents in the batch are not valid", details)
    return out


def is_binary(headers: Mapping[str, str]) -> bool:
    """Whether a request is HTTP binary mode: it has a ``ce-specversion`` header (any case)."""
    return any(name.lower() == "ce-specversion" for name in headers)


def from_binary(
    headers: Mapping[str, str], body: bytes, ctx: PublishContext, limits: Limits
) -> list[Candidate]:
    """HTTP binary mode: attributes in ``ce-*`` headers, the body is the data."""
    attributes: dict[str, Any] = {}
    content_type: str | None = None
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("ce-"):
            attributes[lower[3:]] = unquote(value)
        elif lower == "content-type":
            content_type = value
    if content_type:
        attributes["datacontenttype"] = content_type
    data: Any = None
    if body:
        if _is_json_type(content_type):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                raise TidingsError(
                    400, "malformed_json", f"the body is not valid JSON: {error}"
                ) from None
        elif content_type and content_type.lower().startswith("text/"):
            try:
                data = body.decode()
            except UnicodeDecodeError:
                raise TidingsError(400, "malformed_body", "a text/* body must be UTF-8") from None
        else:
            data = base64.b64encode(body).decode()
            attributes["data_base64"] = True
    item, dedupe = _to_input(attributes, data, ["header"])
    if attributes.get("data_base64") is True:
        item["metadata"].setdefault("cloudevents", {})["data_base64"] = True
    model = parse_event(item, ctx, limits, ["header"])
    key = ctx.idempotency_key
    return [to_candidate(model, ctx, idempotency_key=key, dedupe_key=None if key else dedupe)]


def to_structured(event: Event) -> dict[str, Any]:
    """The stored event as a CloudEvents 1.0 JSON object (the ``sequence`` extension is seq)."""
    metadata = event.metadata
    kept = metadata.get("cloudevents")
    extensions: dict[str, Any] = dict(kept) if isinstance(kept, dict) else {}
    as_base64 = extensions.pop("data_base64", False) is True
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": format_us(event.time_us),
        "datacontenttype": "application/json",
    }
    if event.subject:  # CloudEvents: a subject, when present, is not empty
        out["subject"] = event.subject
    # Only what came in as extensions: never let metadata replace a core attribute.
    out.update(
        (name, value)
        for name, value in extensions.items()
        if name not in _CORE and _ATTRIBUTE_NAME.fullmatch(name)
    )
    out.setdefault("sequence", str(event.seq))
    out.setdefault("traceparent", f"00-{event.trace_id}-{_parent_id(event.id)}-01")
    if as_base64:
        out["data_base64"] = event.data
    elif event.data_json != "null":
        out["data"] = event.data
    return out


def _parent_id(event_id: str) -> str:
    """A W3C parent-id (16 hex digits, not zeros) for the event: a UUID's random tail, else a hash.

    A client-chosen CloudEvents id need not be hex, and an invalid traceparent is dropped.
    """
    tail = event_id.replace("-", "").lower()[-16:]
    if not _HEX16.fullmatch(tail) or tail == "0" * 16:
        tail = hashlib.sha256(event_id.encode()).hexdigest()[:16]
    return tail if tail != "0" * 16 else "0" * 15 + "1"


def _header_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return quote(text, safe=_HEADER_SAFE)


def to_binary_headers(event: Event) -> dict[str, str]:
    """``ce-*`` headers for HTTP binary mode (values percent-encoded as the binding says)."""
    structured = to_structured(event)
    headers = {}
    for name, value in structured.items():
        if name in ("data", "data_base64", "datacontenttype"):
            continue
        headers[f"ce-{name}"] = _header_value(value)
    headers["content-type"] = str(structured.get("datacontenttype", "application/json"))
    return headers
