"""Pydantic models that describe the API in /openapi.json.

Handlers encode their answers with orjson directly (events are encoded once); these models
document those answers and are checked against real responses by the tests.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tidings.envelope.validate import EventIn


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorInfo(BaseModel):
    code: str = Field(description="stable snake_case code, listed in docs/errors.md")
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class EventOut(BaseModel):
    id: str
    seq: int
    type: str
    source: str
    subject: str | None
    time: str = Field(description="the producer's time, ISO 8601 UTC")
    received_at: str = Field(description="stamped by the store; never decreases with seq")
    trace_id: str
    idempotency_key: str | None
    data: Any
    metadata: dict[str, Any]


class PublishResult(BaseModel):
    id: str
    seq: int
    duplicate: bool


class BatchPublishResult(BaseModel):
    events: list[PublishResult]


class EventPage(BaseModel):
    events: list[EventOut]
    next: str | None = Field(description="pass as ?cursor= with the same filters for the next page")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


PUBLISH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/EventIn"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}},
                    ]
                }
            },
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {
                "schema": {"type": "array", "items": {"type": "object"}}
            },
        },
    }
}


def _event_in_schema() -> dict[str, Any]:
    schema = EventIn.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    # `payload` is accepted as another name for `data`; pydantic lists only the first name of a
    # validation alias, and the schema forbids other properties, so it is named here.
    properties = schema["properties"]
    properties["payload"] = {
        **properties["data"],
        "title": "Payload",
        "description": "another name for `data`",
    }
    return schema


EVENT_IN_SCHEMA = _event_in_schema()

_PUBLISH_RESULT = {
    "application/json": {
        "schema": {
            "oneOf": [
                {"$ref": "#/components/schemas/PublishResult"},
                {"$ref": "#/components/schemas/BatchPublishResult"},
            ]
        }
    }
}

PUBLISH_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "stored", "content": _PUBLISH_RESULT},
    200: {
        "description": "a repeat of a stored idempotency key: the original, `duplicate: true`",
        "content": _PUBLISH_RESULT,
    },
    **error_responses(400, 409, 413, 415, 422, 503),
}
