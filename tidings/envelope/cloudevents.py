"""CloudEvents 1.0 in and out: the JSON format (structured and batch) and HTTP binary mode.

Mapping: ``id``, ``source``, ``type``, ``subject``, ``time`` map to the envelope fields of the
same name; a CloudEvent's ``id`` is unique per ``source`` by the spec, so (source, id) is its
deduplication key. ``datacontenttype``, ``dataschema`` and extension attributes are kept under
``metadata["cloudevents"]`` so that the event goes out as it came in. The ``traceparent``
extension (the CloudEvents distributed-tracing extension) gives the trace id.
"""

from __future__ import annotations

import base64
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
_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _to_input(
    attributes: Mapping[str, Any], data: Any, loc: list[str | int]
) -> tuple[dict[str, Any], str | None]:
    """An envelope input dict and its dedupe key from CloudEvents attributes."""
    specversion = attributes.get("specversion")
    problems = []
    if specversion != "1.0":
        problems.append({"loc": [*loc, "specversion"], "msg": "specversion must be \"1.0\""})
    for required in ("id", "source", "type"):
        value = attributes.get(required)
        if not isinstance(value, str) or not value:
            problems.append({"loc": [*loc, required], "msg": "required CloudEvents attribute"})
    for name in attributes:
        if name not in _CORE and not _ATTRIBUTE_NAME.match(name):
            problems.append(
                {"loc": [*loc, name], "msg": "attribute names are 1-20 lowercase letters or digits"}
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
        raise invalid("a CloudEvent must be a JSON object", [{"loc": loc, "msg": "expected an object"}])
    check_size(raw, limits, loc)
    data = raw.get("data")
    attributes = dict(raw)
    if "data_base64" in raw:
        if "data" in raw:
            raise invalid("a CloudEvent has either data or data_base64", [{"loc": loc, "msg": "both given"}])
        encoded = raw["data_base64"]
        try:
            base64.b64decode(encoded, validate=True)
        except (ValueError, TypeError):
            raise invalid("data_base64 is not base64", [{"loc": [*loc, "data_base64"], "msg": "not base64"}]) from None
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
        raise invalid("a CloudEvents batch is a JSON array", [{"loc": ["body"], "msg": "expected an array"}])
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
    return "ce-specversion" in headers


def from_binary(
    headers: Mapping[str, str], body: bytes, ctx: PublishContext, limits: Limits
) -> list[Candidate]:
    """HTTP binary mode: attributes in ``ce-*`` headers, the body is the data."""
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("ce-"):
            attributes[lower[3:]] = unquote(value)
    content_type = headers.get("content-type")
    if content_type:
        attributes["datacontenttype"] = content_type
    data: Any = None
    if body:
        if _is_json_type(content_type):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                raise TidingsError(400, "malformed_json", f"the body is not valid JSON: {error}") from None
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
    if event.subject is not None:
        out["subject"] = event.subject
    out.update(extensions)
    out.setdefault("sequence", str(event.seq))
    out.setdefault("traceparent", f"00-{event.trace_id}-{event.id.replace('-', '')[-16:]}-01")
    if as_base64:
        out["data_base64"] = event.data
    elif event.data_json != "null":
        out["data"] = event.data
    return out


def to_binary_headers(event: Event) -> dict[str, str]:
    """``ce-*`` headers for HTTP binary mode (values percent-encoded as the binding says)."""
    structured = to_structured(event)
    headers = {}
    for name, value in structured.items():
        if name in ("data", "data_base64", "datacontenttype"):
            continue
        headers[f"ce-{name}"] = quote(str(value), safe=" !#$&'()*+,/:;=?@[]~")
    headers["content-type"] = str(structured.get("datacontenttype", "application/json"))
    return headers
