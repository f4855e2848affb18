"""Scopes, tenant ids and the route table: what each request needs."""

from __future__ import annotations

import pytest

from tidings.auth.policy import Access, required
from tidings.auth.scopes import Scope, allows, check_tenant_id, parse_scopes
from tidings.errors import TidingsError


def test_known_scopes_are_parsed() -> None:
    assert parse_scopes(["publish", "subscribe"], ["body", "scopes"]) == {
        Scope.PUBLISH,
        Scope.SUBSCRIBE,
    }


def test_unknown_scopes_are_refused_with_422_naming_every_one() -> None:
    with pytest.raises(TidingsError) as caught:
        parse_scopes(["publish", "write", 3, "ROOT"], ["body", "scopes"])
    error = caught.value
    assert (error.status, error.code) == (422, "invalid_scopes")
    assert "'write'" in error.message and "3" in error.message and "'ROOT'" in error.message
    assert [d["msg"] for d in error.details] == [
        "unknown scope 'write'",
        "unknown scope 3",
        "unknown scope 'ROOT'",
    ]
    assert error.details[0]["loc"] == ["body", "scopes"]


def test_a_key_needs_at_least_one_scope() -> None:
    with pytest.raises(TidingsError) as caught:
        parse_scopes([], ["body", "scopes"])
    assert caught.value.status == 422


@pytest.mark.parametrize("tenant", ["a", "acme", "acme-2", "0", "a" * 63, "9-lives"])
def test_valid_tenant_ids(tenant: str) -> None:
    assert check_tenant_id(tenant, ["body", "id"]) == tenant


@pytest.mark.parametrize(
    "tenant", ["", "-acme", "Acme", "ac me", "acme_1", "a" * 64, "acme.", "é", None, 3, "a\n"]
)
def test_invalid_tenant_ids_are_refused_with_422(tenant: object) -> None:
    with pytest.raises(TidingsError) as caught:
        check_tenant_id(tenant, ["body", "id"])
    assert (caught.value.status, caught.value.code) == (422, "invalid_tenant")
    assert caught.value.details[0]["loc"] == ["body", "id"]


def test_scopes_do_not_imply_one_another_except_root() -> None:
    assert not allows(frozenset({Scope.ADMIN}), Scope.PUBLISH)
    assert not allows(frozenset({Scope.PUBLISH}), Scope.SUBSCRIBE)
    assert not allows(frozenset({Scope.ADMIN}), Scope.ROOT)
    for scope in Scope:
        assert allows(frozenset({Scope.ROOT}), scope)


@pytest.mark.parametrize(
    ("method", "path", "need"),
    [
        ("POST", "/v1/events", Scope.PUBLISH),
        ("GET", "/v1/events", Scope.SUBSCRIBE),
        ("GET", "/v1/events/stream", Scope.SUBSCRIBE),
        ("GET", "/v1/events/export", Scope.SUBSCRIBE),
        ("GET", "/v1/events/0193", Scope.SUBSCRIBE),
        ("GET", "/v1/ws", Scope.SUBSCRIBE),
        ("POST", "/v1/webhooks", Scope.ADMIN),
        ("POST", "/v1/webhooks/w1/rotate-secret", Scope.ADMIN),
        ("GET", "/v1/deliveries/d1", Scope.ADMIN),
        ("DELETE", "/v1/dead-letters/x", Scope.ADMIN),
        ("GET", "/v1/stats", Scope.ADMIN),
        ("POST", "/v1/keys", Scope.ADMIN),
        ("DELETE", "/v1/keys/key_1", Scope.ADMIN),
        ("POST", "/v1/tenants", Scope.ROOT),
        ("GET", "/metrics", Scope.ROOT),
        ("GET", "/healthz", Access.OPEN),
        ("GET", "/readyz", Access.OPEN),
        ("GET", "/", Access.OPEN),
        ("GET", "/static/app.js", Access.OPEN),
        ("POST", "/v1/ingest/github", Access.OPEN),
        ("GET", "/v1/nothing-here", Access.ANY_KEY),
        ("GET", "/v1/eventsx", Access.ANY_KEY),
        ("GET", "/metricsx", Access.ANY_KEY),
        ("GET", "/healthz/x", Access.ANY_KEY),
    ],
)
def test_what_each_request_needs(method: str, path: str, need: object) -> None:
    assert required(method, path) == need
