"""/openapi.json against the real server: every route is listed with its methods, and the
documented schemas describe the bodies the server really sends and accepts."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, ServerStore

METHODS = ("get", "post", "put", "patch", "delete")
CORE_ROUTES = {
    "/v1/events": {"get", "post"},
    "/v1/events/{event_id}": {"get"},
    "/v1/events/export": {"get"},
    "/v1/events/stream": {"get"},
    "/v1/stats": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
}
EVENT_INPUT_FIELDS = {
    "type", "source", "subject", "data", "payload", "metadata", "id", "time", "trace_id",
    "idempotency_key",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    env = {"TIDINGS_MAX_EVENT_BYTES": "1024", "TIDINGS_MAX_BATCH": "3"}
    process = ServerProcess(
        tmp_path_factory.mktemp("openapi") / "data", env=env, store=server_store
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="module")
def spec(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    assert document["openapi"].startswith("3.")
    return document


class SchemaError(AssertionError):
    pass


def validate(value: Any, schema: dict[str, Any], spec: dict[str, Any], path: str = "$") -> None:
    """Check ``value`` against the JSON Schema subset that the document uses."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        validate(value, spec["components"]["schemas"][name], spec, path)
        return
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        passed = 0
        for option in options:
            try:
                validate(value, option, spec, path)
                passed += 1
            except SchemaError:
                pass
        if passed == 0 or ("oneOf" in schema and passed != 1):
            raise SchemaError(f"{path}: {value!r} matches {passed} of {options}")
        return
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](value):
        raise SchemaError(f"{path}: {value!r} is not of type {kind}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1 << 30):
            raise SchemaError(f"{path}: {value!r} has the wrong length")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise SchemaError(f"{path}: {name!r} is required")
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], spec, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                raise SchemaError(f"{path}: {name!r} is not allowed")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], spec, f"{path}[{index}]")


def response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    response = spec["paths"][path][method]["responses"][str(status)]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-thing", path)


def test_every_core_route_is_listed_with_exactly_its_methods(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    for path, methods in CORE_ROUTES.items():
        assert path in paths, path
        assert {m for m in paths[path] if m in METHODS} == methods, path


def test_every_listed_operation_is_served_by_the_server(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    for path, operations in spec["paths"].items():
        for method in operations:
            if method not in METHODS:
                continue
            with client.stream(method.upper(), concrete(path)) as answer:
                assert answer.status_code != 405, (method, path)
                if answer.status_code == 404:
                    answer.read()
                    assert answer.json()["error"]["code"] != "not_found", (method, path)


def test_a_method_left_out_of_the_document_is_refused_with_the_documented_allow_list(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    for path, operations in spec["paths"].items():
        documented = {m.upper() for m in operations if m in METHODS}
        other = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in documented)
        answer = client.request(other, concrete(path))
        assert answer.status_code == 405, (other, path)
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert allowed - {"HEAD"} == documented, path


def test_every_operation_has_a_summary_and_an_id(spec: dict[str, Any]) -> None:
    seen: set[str] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            assert operation.get("summary"), (method, path)
            assert operation["operationId"] not in seen
            seen.add(operation["operationId"])


def test_the_event_input_schema_is_present_and_names_every_input_field(
    spec: dict[str, Any],
) -> None:
    event_in = spec["components"]["schemas"]["EventIn"]
    assert event_in["type"] == "object"
    assert event_in["required"] == ["type"]
    assert set(event_in["properties"]) == EVENT_INPUT_FIELDS
    assert event_in["additionalProperties"] is False
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    json_schema = body["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/EventIn"} in json_schema["oneOf"]
    batch = {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}, "minItems": 1}
    assert batch in json_schema["oneOf"]  # an empty batch is refused


@pytest.mark.parametrize(
    "event",
    [
        {"type": "door.opened"},
        {"type": "door.opened", "payload": {"by": "payload"}},
        {
            "type": "door.opened",
            "source": "hall",
            "subject": "door-1",
            "data": [1, {"a": None}],
            "metadata": {"m": 1},
            "id": "my-own-id-1",
            "time": "2026-01-01T00:00:00Z",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "idempotency_key": "k-1",
        },
    ],
    ids=["minimal", "payload", "everything"],
)
def test_an_input_the_server_accepts_is_valid_by_the_documented_schema(
    client: httpx.Client, spec: dict[str, Any], event: dict[str, Any]
) -> None:
    if "id" in event:
        event = {**event, "id": f"{event['id']}-{uuid.uuid4().hex[:8]}"}
    validate(event, {"$ref": "#/components/schemas/EventIn"}, spec)
    assert client.post("/v1/events", json=event).status_code == 201


@pytest.mark.parametrize(
    "event",
    [{"source": "no-type"}, {"type": "a", "extra": 1}, {"type": "a", "trace_id": "XYZ"}],
    ids=["no type", "unknown field", "bad trace id"],
)
def test_an_input_the_document_rules_out_is_refused_by_the_server(
    client: httpx.Client, spec: dict[str, Any], event: dict[str, Any]
) -> None:
    with pytest.raises(SchemaError):
        validate(event, {"$ref": "#/components/schemas/EventIn"}, spec)
    assert client.post("/v1/events", json=event).status_code == 422


def test_publish_documents_every_answer_it_gives(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/v1/events"]["post"]["responses"]
    assert {"200", "201", "400", "409", "413", "415", "422"} <= set(responses)
    for status in ("400", "409", "413", "415", "422"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status


def test_the_documented_publish_answers_describe_the_real_ones(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    key = uuid.uuid4().hex
    created = client.post("/v1/events", json={"type": "a.b"}, headers={"Idempotency-Key": key})
    repeat = client.post("/v1/events", json={"type": "a.b"}, headers={"Idempotency-Key": key})
    batch = client.post("/v1/events", json=[{"type": "a.b"}, {"type": "c"}])
    for answer, status in ((created, 201), (repeat, 200), (batch, 201)):
        assert answer.status_code == status
        validate(answer.json(), response_schema(spec, "/v1/events", "post", status), spec)


def test_the_documented_error_model_matches_real_error_bodies(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    key = uuid.uuid4().hex
    client.post("/v1/events", json={"type": "a", "data": 1}, headers={"Idempotency-Key": key})
    json_headers = {"content-type": "application/json"}
    failures = {
        400: client.post("/v1/events", content=b"{nope", headers=json_headers),
        404: client.get("/v1/events/missing-event"),
        405: client.delete("/v1/events"),
        409: client.post(
            "/v1/events", json={"type": "a", "data": 2}, headers={"Idempotency-Key": key}
        ),
        413: client.post("/v1/events", json=[{"type": "a"}] * 4),
        415: client.post("/v1/events", content=b"x", headers={"content-type": "text/plain"}),
        422: client.post("/v1/events", json=[{"type": "a"}, {"time": "x"}]),
    }
    failures_with_details = [
        client.get("/v1/events", params={"limit": "0"}),
        client.post("/v1/events", json={"type": "a", "data": "x" * 2000}),
        client.get("/v1/nothing-here"),
    ]
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for status, answer in failures.items():
        assert answer.status_code == status
        validate(answer.json(), error_body, spec)
    for answer in failures_with_details:
        validate(answer.json(), error_body, spec)
    details = failures[422].json()["error"]["details"]
    assert [d["loc"] for d in details] == [["body", 1, "type"], ["body", 1, "time"]]
    error_info = spec["components"]["schemas"]["ErrorInfo"]
    assert set(error_info["required"]) == {"code", "message"}
    assert set(error_info["properties"]) == {"code", "message", "details"}


def test_the_documented_event_schemas_describe_real_events_and_pages(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    created = client.post(
        "/v1/events",
        json={"type": "shape.check", "subject": "s", "data": {"n": 1}, "idempotency_key": "x1"},
    ).json()
    client.post("/v1/events", json={"type": "shape.check"})
    one = client.get(f"/v1/events/{created['id']}")
    validate(one.json(), response_schema(spec, "/v1/events/{event_id}", "get", 200), spec)
    page = client.get("/v1/events", params={"type": "shape.check", "limit": 1})
    assert page.json()["next"] is not None
    validate(page.json(), response_schema(spec, "/v1/events", "get", 200), spec)
    last = client.get("/v1/events", params={"type": "shape.check", "limit": 10})
    assert last.json()["next"] is None
    validate(last.json(), response_schema(spec, "/v1/events", "get", 200), spec)
    event_out = spec["components"]["schemas"]["EventOut"]
    assert set(event_out["properties"]) == set(one.json())


def test_the_validator_used_here_does_reject_mismatches(spec: dict[str, Any]) -> None:
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for wrong in (
        {"error": {"code": "x"}},
        {"error": {"code": 1, "message": "m"}},
        {"error": {"code": "x", "message": "m", "details": [{"loc": "body", "msg": "m"}]}},
        {"detail": "Not Found"},
    ):
        with pytest.raises(SchemaError):
            validate(wrong, error_body, spec)


def test_export_documents_its_two_formats(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/v1/events/export"]["get"]
    assert {"application/x-ndjson", "text/csv"} <= set(operation["responses"]["200"]["content"])
    assert "format" in {p["name"] for p in operation["parameters"]}


def test_history_documents_its_query_parameters(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/v1/events"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {
        "type", "source", "exclude_source", "subject", "since", "until", "time_since",
        "time_until", "after", "before", "order", "limit", "cursor",
    } <= names  # fmt: skip
    assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_a_root_key_names_another_tenant_where_the_document_says(spec: dict[str, Any]) -> None:
    tenant_id = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}
    for path in [
        "/v1/events", "/v1/events/{event_id}", "/v1/events/export", "/v1/events/stream",
        "/v1/webhooks", "/v1/dead-letters", "/v1/stats", "/v1/stats/counts", "/v1/keys",
    ]:  # fmt: skip
        operation = spec["paths"][path]["get"]
        (tenant,) = [p for p in operation["parameters"] if p["name"] == "tenant"]
        assert tenant["schema"] == tenant_id, path
        assert {"400", "403"} <= set(operation["responses"]), path
        assert "422" not in operation["responses"], path  # a parameter is refused with 400
    body = spec["paths"]["/v1/webhooks"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["tenant"]["anyOf"][0] == tenant_id
    assert {"403", "422"} <= set(spec["paths"]["/v1/webhooks"]["post"]["responses"])
    for path in ["/v1/webhooks/{webhook_id}", "/v1/deliveries/{delivery_id}"]:
        names = {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
        assert "tenant" not in names, path  # found by id in any tenant
