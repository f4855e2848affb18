"""/openapi.json says exactly what the server accepts and answers.

FastAPI derives the document from the handlers, which read most parameters as text and judge
them themselves (so a bad one gets the error shape, not the framework's). This module then
states what the handlers enforce: enums, integer ranges, times, the empty value that means
"not given", required bodies, the URL of an endpoint, the error shape on every error status,
the answers of every route, and the frames of the two streams.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tidings.api import response_models as models
from tidings.api.schemas import ErrorBody
from tidings.delivery.sender import RESERVED_HEADERS
from tidings.ingest.mapping import REASON_CODES

MAX_SEQ = (1 << 63) - 1
TENANT_ID = "^[a-z0-9][a-z0-9-]{0,62}$"
EMPTY = {"type": "string", "maxLength": 0}  # ``?after=`` is the same as leaving it out


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, EMPTY]}


_SEGMENT = r"(?:[A-Za-z0-9_:\-]+|\*)"
# One type pattern: segments, ``*`` for one segment, ``#`` as the last for the rest.
TYPE_PATTERN = rf"(?:{_SEGMENT}(?:\.{_SEGMENT})*(?:\.#)?|#)"
_TYPE_LIST = {"type": "string", "pattern": rf"^(?:{TYPE_PATTERN}(?:,{TYPE_PATTERN})*)?$"}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_TEXT = {"type": "string"}
# A value to compare with: a number, a boolean, null, or text with something besides commas
# and spaces (a comma list of nothing has no value).
_VALUE = {
    "anyOf": [{"type": ["number", "boolean", "null"]}, {"type": "string", "pattern": r"[^\s,]"}]
}
# A webhook's filter object (type patterns go in `events`): names take text, paths scalars.
FILTER_OBJECT = {
    "type": "object",
    "patternProperties": {
        r"^(?:source|exclude_source|subject|trace_id)$": {
            "anyOf": [_TEXT, {"type": "array", "items": _SCALAR}]
        },
        # A path segment: no double quote, backslash or control character (a JSON path label).
        r'^(?:data|metadata)(?:\.[^."\\\x00-\x1f]+)+$': {
            "anyOf": [_VALUE, {"type": "array", "items": _VALUE, "minItems": 1}]
        },
    },
    "additionalProperties": False,
}
_REASONS = "|".join(REASON_CODES)
_REASON_LIST = {"type": "string", "pattern": rf"^(?:(?:{_REASONS})(?:,(?:{_REASONS}))*)?$"}

_TIME = _or_empty({"type": "string", "format": "date-time"})
_SEQ = _or_empty({"type": "integer", "minimum": 0, "maximum": MAX_SEQ})

# The query parameters the handlers judge, by name.
PARAMETERS: dict[str, dict[str, Any]] = {
    "since": _TIME,
    "until": _TIME,
    "time_since": _TIME,
    "time_until": _TIME,
    "after": _SEQ,
    "before": _SEQ,
    "order": _or_empty({"type": "string", "enum": ["asc", "desc"]}),
    "format": _or_empty({"type": "string", "enum": ["ndjson", "csv"]}),
    "limit": _or_empty({"type": "integer", "minimum": 1, "maximum": 1000}),
    "type": _TYPE_LIST,
    "reason": _REASON_LIST,
    "tenant": {"type": "string", "pattern": TENANT_ID},
}
# The counts behind the console's charts (/v1/stats/counts).
COUNT_PARAMETERS: dict[str, dict[str, Any]] = {
    "bucket": _or_empty({"type": "string", "enum": ["hour", "day"]}),
    "by": _or_empty({"type": "string", "enum": ["type", "source", "subject"]}),
    "utc_offset": _or_empty({"type": "integer", "minimum": -18 * 60, "maximum": 18 * 60}),
    "top": _or_empty({"type": "integer", "minimum": 1, "maximum": 100}),
}
# The deliveries list is validated by FastAPI: an empty value is refused there.
STRICT_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "status": {"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]},
}
_NULL = {"type": "null"}
# The bodies of the routes that read raw JSON (so FastAPI cannot derive them).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/keys", "post"): {
        "type": "object",
        "required": ["name", "scopes"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "scopes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": ["publish", "subscribe", "admin", "root"]},
            },
            "tenant": {"anyOf": [{"type": "string", "pattern": TENANT_ID}, _NULL]},
            "rate_limit": {
                "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000}, _NULL]
            },
            "max_streams": {"type": "integer", "minimum": 0, "maximum": 100_000},
        },
    },
    ("/v1/tenants", "post"): {
        "type": "object",
        "required": ["id"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": TENANT_ID},
            "name": {"anyOf": [{"type": "string", "maxLength": 200}, _NULL]},
        },
    },
}
_PRINTABLE = "^[^\\x00-\\x1f\\x7f]+$"  # as the event input's id and source
# A CloudEvent as the publish route reads it (structured mode, or an item of a batch).
CLOUD_EVENT = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _PRINTABLE},
        "source": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _PRINTABLE},
        "type": {
            "type": "string",
            "maxLength": 200,
            "pattern": r"^[A-Za-z0-9_:\-]+(?:\.[A-Za-z0-9_:\-]+)*$",
        },
        "subject": {"anyOf": [{"type": "string", "maxLength": 1000}, {"type": "null"}]},
        "time": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "datacontenttype": {"type": ["string", "number", "boolean", "null"]},
        "data": {},
        "data_base64": {"type": "string"},
    },
    # Extension attributes: lowercase letters and digits, with scalar values.
    "propertyNames": {"pattern": "^[a-z0-9]+$"},
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}
# /v1/events/export reads no cursor and takes any positive limit (stop after that many).
EXPORT_LIMIT = _or_empty({"type": "integer", "minimum": 1, "maximum": MAX_SEQ})

# The answer of each route, by (path, method, status).
ANSWERS: dict[tuple[str, str, str], type[BaseModel]] = {
    ("/v1/webhooks", "post", "201"): models.WebhookOut,
    ("/v1/webhooks", "get", "200"): models.WebhookList,
    ("/v1/webhooks/{webhook_id}", "get", "200"): models.WebhookOut,
    ("/v1/webhooks/{webhook_id}", "patch", "200"): models.WebhookOut,
    ("/v1/webhooks/{webhook_id}/rotate-secret", "post", "200"): models.WebhookOut,
    ("/v1/webhooks/{webhook_id}/replay", "post", "202"): models.ReplayResult,
    ("/v1/webhooks/{webhook_id}/deliveries", "get", "200"): models.DeliveryPage,
    ("/v1/deliveries/{delivery_id}", "get", "200"): models.DeliveryOut,
    ("/v1/deliveries/{delivery_id}/retry", "post", "202"): models.DeliveryOut,
    ("/v1/dead-letters", "get", "200"): models.DeadLetterPage,
    ("/v1/dead-letters/redrive", "post", "200"): models.RedrivenMany,
    ("/v1/dead-letters/{letter_id}", "get", "200"): models.DeadLetterOut,
    ("/v1/dead-letters/{letter_id}/redrive", "post", "200"): models.RedrivenOne,
    ("/v1/stats", "get", "200"): models.Stats,
    ("/healthz", "get", "200"): models.Health,
    ("/v1/keys", "post", "201"): models.KeyOut,
    ("/v1/keys", "get", "200"): models.KeyList,
    ("/v1/keys/{key_id}", "get", "200"): models.KeyOut,
    ("/v1/tenants", "post", "201"): models.TenantOut,
    ("/v1/tenants", "get", "200"): models.TenantList,
    ("/readyz", "get", "200"): models.Health,
}

FRAMES = (
    models.ConnectedFrame,
    models.HeartbeatFrame,
    models.SystemFrame,
    models.ShutdownFrame,
)

STREAM_DESCRIPTION = """Server-Sent Events. Frames, in order:

* `event: connected`, `data:` ConnectedFrame;
* `event: event`, `id: <seq>`, `data:` EventOut, for each matching event;
* `event: heartbeat`, `id: <position>` at the head, `data:` HeartbeatFrame, every
  `TIDINGS_HEARTBEAT_S`;
* `event: system`, `data:` SystemFrame;
* `event: shutdown` with a `retry:` line, `data:` ShutdownFrame, before the server closes.

Resume with the `Last-Event-ID` header (or `last_event_id`), else `since`, else from the head.
"""

WS_DESCRIPTION = """WebSocket (`Upgrade: websocket`). Client messages:
`{"op":"subscribe","id","filter",("last_event_id"|"since")}`, `{"op":"unsubscribe","id"}`,
`{"op":"ping"}`. Server messages: `{"op":"connected","connection_id"}`,
`{"op":"subscribed","id","position"}`, `{"op":"event","sub","event"}` (EventOut),
`{"op":"heartbeat","position"}`, `{"op":"system","code",...}` (SystemFrame),
`{"op":"error","id","code","message"}` (the socket stays open), `{"op":"shutdown","retry_ms"}`
then close code 1012; a stalled socket is closed with 1008."""


def _components(schema: dict[str, Any], *used: type[BaseModel]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in used:
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in found.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = found


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _tighten_parameters(path: str, operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        name = parameter["name"]
        if path == "/v1/stats/counts" and name in COUNT_PARAMETERS:
            parameter["schema"] = COUNT_PARAMETERS[name]
        elif path.endswith("/deliveries") and name in STRICT_PARAMETERS:
            parameter["schema"] = STRICT_PARAMETERS[name]
        elif path == "/v1/events/export" and name == "limit":
            parameter["schema"] = EXPORT_LIMIT
        elif name in PARAMETERS:
            parameter["schema"] = PARAMETERS[name]


def _error_shape_everywhere(operation: dict[str, Any]) -> None:
    """Every error status answers the error shape; a body can be malformed (400), too large
    (413) or of another media type (415)."""
    responses = operation.setdefault("responses", {})
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        responses.setdefault("400", {"description": "a parameter is not valid"})
    if "requestBody" in operation:
        for status in ("400", "413"):
            responses.setdefault(status, {"description": "refused"})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response.setdefault("description", "refused")
            response["content"] = {"application/json": {"schema": _ref(ErrorBody)}}


def _webhook_bodies(schema: dict[str, Any]) -> None:
    """The endpoint URL is http(s); type patterns are 1-200 characters; a PATCH has a body."""
    paths = schema["paths"]
    for path, method in (("/v1/webhooks", "post"), ("/v1/webhooks/{webhook_id}", "patch")):
        operation = paths.get(path, {}).get(method)
        if operation is None or "requestBody" not in operation:
            continue
        operation["requestBody"]["required"] = True
        for content in operation["requestBody"].get("content", {}).values():
            properties = content.get("schema", {}).get("properties", {})
            if "url" in properties:
                url = {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}
                properties["url"] = url
            if "events" in properties:
                pattern = {"type": "string", "maxLength": 200, "pattern": f"^{TYPE_PATTERN}$"}
                properties["events"] = {"type": "array", "items": pattern, "minItems": 1}
            if "headers" in properties:
                names = {
                    "pattern": r"^[^ :\r\n]+$",
                    "not": {"enum": sorted(RESERVED_HEADERS)},
                }
                headers = {
                    "type": "object",
                    "propertyNames": names,
                    "additionalProperties": {"type": "string"},
                }
                properties["headers"] = {"anyOf": [headers, {"type": "null"}]}
            if "filter" in properties:
                properties["filter"] = FILTER_OBJECT
            if "tenant" in properties:
                tenant = {"type": "string", "pattern": TENANT_ID}
                properties["tenant"] = {
                    "anyOf": [tenant, _NULL],
                    "description": properties["tenant"].get("description", ""),
                }
            if path != "/v1/webhooks":  # a PATCH may leave these out, but not clear them
                for name in ("active", "filter"):
                    if name in properties:
                        options = properties[name].get("anyOf", [properties[name]])
                        kept = [o for o in options if o.get("type") != "null"]
                        properties[name] = kept[0] if len(kept) == 1 else {"anyOf": kept}


def _publish_batches(schema: dict[str, Any]) -> None:
    """A batch (JSON array or CloudEvents batch) holds at least one event."""
    operation = schema["paths"].get("/v1/events", {}).get("post")
    if operation is None:
        return
    contents = operation.get("requestBody", {}).get("content", {})
    for content in contents.values():
        body = content.get("schema", {})
        for option in [body, *body.get("oneOf", [])]:
            if option.get("type") == "array":
                option["minItems"] = 1
    event_in = schema.get("components", {}).get("schemas", {}).get("EventIn", {})
    if "type" in event_in.get("properties", {}):
        type_pattern = r"^[A-Za-z0-9_:\-]+(?:\.[A-Za-z0-9_:\-]+)*$"
        event_in["properties"]["type"] = {
            "type": "string",
            "maxLength": 200,
            "pattern": type_pattern,
        }
        event_in["not"] = {"required": ["data", "payload"]}  # two names for one field
    if "trace_id" in event_in.get("properties", {}):
        # W3C Trace Context: 32 lowercase hex digits, not all zeros.
        trace_id = {
            "type": "string",
            "minLength": 32,
            "maxLength": 32,
            "pattern": "^[0-9a-f]*[1-9a-f][0-9a-f]*$",
        }
        event_in["properties"]["trace_id"] = {"anyOf": [trace_id, {"type": "null"}]}
    if "application/cloudevents+json" in contents:
        contents["application/cloudevents+json"]["schema"] = CLOUD_EVENT
    if "application/cloudevents-batch+json" in contents:
        batch = {"type": "array", "items": CLOUD_EVENT, "minItems": 1}
        contents["application/cloudevents-batch+json"]["schema"] = batch


def _streams(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    stream = paths.get("/v1/events/stream", {}).get("get")
    if stream is not None:
        stream["description"] = STREAM_DESCRIPTION
        ok = stream.setdefault("responses", {}).setdefault("200", {"description": "the stream"})
        ok["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    # OpenAPI has no WebSocket operations; the socket is described beside the paths, and its
    # frames are the same components as the SSE stream's.
    schema["x-websocket"] = {
        "/v1/ws": {
            "summary": "WebSocket stream (several subscriptions on one socket)",
            "description": WS_DESCRIPTION,
            "frames": [_ref(model) for model in FRAMES],
        }
    }


def _refusals_of_auth(schema: dict[str, Any]) -> None:
    """A route that takes ``?tenant=`` or a body's ``tenant`` answers 403 to a key without
    ``root`` naming another tenant, and refuses a malformed or unknown tenant with 400 in a
    query string (as every parameter), 422 in a body (as ``POST /v1/keys``)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            in_query = any(
                p.get("in") == "query" and p.get("name") == "tenant"
                for p in operation.get("parameters", [])
            )
            contents = operation.get("requestBody", {}).get("content", {}).values()
            in_body = any("tenant" in c.get("schema", {}).get("properties", {}) for c in contents)
            if in_query or in_body:
                operation["responses"].setdefault("403", {"description": "not root"})
            if in_body:
                operation["responses"].setdefault("422", {"description": "not a tenant id"})


def tighten(schema: dict[str, Any]) -> None:
    """Make the generated document say exactly what the server accepts and answers."""
    _components(schema, ErrorBody, *set(ANSWERS.values()), *FRAMES)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _tighten_parameters(path, operation)
            if (path, method) in BODIES:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": BODIES[(path, method)]}},
                }
            for (answer_path, answer_method, status), model in ANSWERS.items():
                if (answer_path, answer_method) == (path, method):
                    response = operation["responses"].setdefault(status, {"description": "ok"})
                    response["content"] = {"application/json": {"schema": _ref(model)}}
    _webhook_bodies(schema)
    _publish_batches(schema)
    _streams(schema)
    _refusals_of_auth(schema)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _error_shape_everywhere(operation)
