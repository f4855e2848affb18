"""Auth against a real server with keys required: refusals on every route, scopes, two
tenants that never see each other, revocation, limits, bad keys and the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.exceptions import InvalidStatus

from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import unique, wait_until, ws_connect, ws_recv, ws_send
from tidings.api.fast_paths import ROUTES as FAST_PATHS

ROOT = "tdk_" + "r00t" * 11  # the bootstrap key of the module's server
INGEST_SECRET = "acme-ingest-secret-0123456789"
STREAM = "/v1/events/stream"
# The routes that answer without a key, and why: liveness and readiness for load balancers,
# ingest because each source is authenticated by its signature.
OPEN_ROUTES = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/v1/ingest/{source}")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("auth")
    config = base / "tidings.toml"
    config.write_text(
        f'[sources.acme-hooks]\nverifier = "hmac-sha256"\nsecret = "{INGEST_SECRET}"\n'
        'tenant = "acme"\n'
    )
    env = {
        "TIDINGS_AUTH": "on",
        "TIDINGS_BOOTSTRAP_KEY": ROOT,
        "TIDINGS_CONFIG": str(config),
        "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
        "TIDINGS_HEARTBEAT_S": "0.5",
        "TIDINGS_LOG_LEVEL": "debug",  # the access log is on: keys must not reach it
    }
    process = ServerProcess(base / "data", env=env).start()
    yield process
    process.stop()


def _client(server: ServerProcess, key: str | None = None) -> httpx.AsyncClient:
    headers = {"X-API-Key": key} if key else {}
    return httpx.AsyncClient(base_url=server.url, timeout=15.0, headers=headers)


@pytest.fixture
async def root(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(server, ROOT) as http:
        yield http


@dataclass
class TenantKeys:
    tenant: str
    admin: str  # publish, subscribe and admin
    publish: str
    subscribe: str


async def make_key(root: httpx.AsyncClient, tenant: str, scopes: list[str], **extra: Any) -> str:
    answer = await root.post(
        "/v1/keys", json={"name": unique("k"), "scopes": scopes, "tenant": tenant, **extra}
    )
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["key"]
    return key


async def make_tenant(root: httpx.AsyncClient, tenant: str | None = None) -> TenantKeys:
    tenant = tenant or unique("t")
    answer = await root.post("/v1/tenants", json={"id": tenant, "name": tenant.upper()})
    assert answer.status_code in (201, 409), answer.text
    return TenantKeys(
        tenant,
        await make_key(root, tenant, ["publish", "subscribe", "admin"]),
        await make_key(root, tenant, ["publish"]),
        await make_key(root, tenant, ["subscribe"]),
    )


def _routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, path template) of the OpenAPI document, the fast paths and /v1/ws."""
    found = {
        (method.upper(), path)
        for path, operations in openapi["paths"].items()
        for method in operations
    }
    found |= set(FAST_PATHS)
    found.add(("WS", "/v1/ws"))  # WebSocket routes are not in OpenAPI
    return sorted(found)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x0", path)


async def _answers(server: ServerProcess, method: str, path: str, headers: dict[str, str]) -> int:
    if method == "WS":
        try:
            async with ws_connect(server, additional_headers=headers):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code
    async with _client(server) as http:
        answer = await http.request(method, _concrete(path), headers=headers, content=b"{}")
        if answer.status_code == 401:
            assert answer.json()["error"]["code"] == "unauthorized"
            assert answer.headers["www-authenticate"] == "Bearer"
        return answer.status_code


async def test_every_route_refuses_a_request_without_a_valid_key(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    routes = _routes((await root.get("/openapi.json")).json())
    assert ("POST", "/v1/events") in routes and ("GET", STREAM) in routes
    assert len(routes) > 30
    wrong = {"X-API-Key": "tdk_" + "w" * 43}
    refused = []
    for method, path in routes:
        if (method, path) in OPEN_ROUTES:
            continue
        assert await _answers(server, method, path, {}) == 401, (method, path)
        assert await _answers(server, method, path, wrong) == 401, (method, path)
        refused.append((method, path))
    assert len(refused) == len(routes) - len(OPEN_ROUTES)
    # and the open ones answer without a key
    async with _client(server) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


async def test_a_key_may_do_only_what_its_scopes_allow(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    keys = await make_tenant(root)
    checks = [
        (keys.publish, "GET", "/v1/events", 403),
        (keys.publish, "POST", "/v1/events", 201),
        (keys.subscribe, "POST", "/v1/events", 403),
        (keys.subscribe, "GET", "/v1/events", 200),
        (keys.subscribe, "GET", "/v1/webhooks", 403),
        (keys.subscribe, "GET", "/v1/stats", 403),
        (keys.admin, "GET", "/v1/stats", 200),
        (keys.admin, "GET", "/v1/keys", 200),
        (keys.admin, "GET", "/v1/tenants", 403),
        (keys.admin, "GET", "/metrics", 403),
        (ROOT, "GET", "/metrics", 200),
        (ROOT, "GET", "/v1/tenants", 200),
    ]
    for key, method, path, status in checks:
        async with _client(server, key) as http:
            body = {"type": "scope.checked"} if method == "POST" else None
            answer = await http.request(method, path, json=body)
            assert answer.status_code == status, (key[:12], method, path, answer.text)
            if status == 403:
                assert answer.json()["error"]["code"] == "forbidden"
    async with (
        _client(server, keys.publish) as http,
        aconnect_sse(http, "GET", STREAM) as stream,
    ):
        assert stream.response.status_code == 403


def _sign(body: bytes) -> str:
    return "sha256=" + hmac.new(INGEST_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def test_two_tenants_never_see_each_others_objects(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    acme = await make_tenant(root, "acme")
    other = await make_tenant(root)
    kind = unique("iso").replace("-", "_") + ".happened"
    async with _client(server, acme.admin) as a, _client(server, other.admin) as b:
        # acme: an event, a webhook endpoint with a delivery, a dead letter from its source
        event = (await a.post("/v1/events", json={"type": kind, "data": {"secret": 1}})).json()
        hook = await a.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["#"]})
        assert hook.status_code == 201, hook.text
        hook_id = hook.json()["id"]

        async def delivered() -> bool:
            page = await a.get(f"/v1/webhooks/{hook_id}/deliveries")
            return bool(page.json()["deliveries"])

        assert await wait_until(delivered, timeout=15)
        delivery_id = (await a.get(f"/v1/webhooks/{hook_id}/deliveries")).json()["deliveries"][0][
            "id"
        ]
        raw = b"not json at all"
        async with _client(server) as anyone:
            parked = await anyone.post(
                "/v1/ingest/acme-hooks", content=raw, headers={"X-Signature": _sign(raw)}
            )
        assert parked.status_code == 202, parked.text
        letters = (await a.get("/v1/dead-letters")).json()["dead_letters"]
        letter_id = letters[0]["id"]

        # the other tenant: 404 for every one of them, and empty lists
        for method, path in [
            ("GET", f"/v1/events/{event['id']}"),
            ("GET", f"/v1/webhooks/{hook_id}"),
            ("PATCH", f"/v1/webhooks/{hook_id}"),
            ("DELETE", f"/v1/webhooks/{hook_id}"),
            ("POST", f"/v1/webhooks/{hook_id}/rotate-secret"),
            ("POST", f"/v1/webhooks/{hook_id}/replay"),
            ("GET", f"/v1/webhooks/{hook_id}/deliveries"),
            ("GET", f"/v1/deliveries/{delivery_id}"),
            ("POST", f"/v1/deliveries/{delivery_id}/retry"),
            ("GET", f"/v1/dead-letters/{letter_id}"),
            ("DELETE", f"/v1/dead-letters/{letter_id}"),
            ("POST", f"/v1/dead-letters/{letter_id}/redrive"),
        ]:
            body = {"active": False} if method == "PATCH" else None
            answer = await b.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await b.get("/v1/webhooks")).json() == {"webhooks": []}
        assert (await b.get("/v1/dead-letters")).json()["dead_letters"] == []
        assert (await b.post("/v1/dead-letters/redrive", json={})).json()["redriven"] == 0
        assert all(e["type"] != kind for e in (await b.get("/v1/events")).json()["events"])
        exported = (await b.get("/v1/events/export")).text
        assert kind not in exported and kind in (await a.get("/v1/events/export")).text
        stats = (await b.get("/v1/stats")).json()
        assert kind not in stats["events"]["by_type"]
        assert stats["deliveries"]["endpoints"] == 0
        # and acme still has all of it
        assert (await a.get(f"/v1/events/{event['id']}")).status_code == 200
        assert (await a.get(f"/v1/dead-letters/{letter_id}")).status_code == 200

        # streams: the other tenant's SSE and WebSocket see its own event, never acme's
        mine = unique("mine").replace("-", "_") + ".happened"
        params = {"last_event_id": str(event["seq"] - 1), "type": f"{kind},{mine}"}
        async with aconnect_sse(b, "GET", STREAM, params=params) as stream:
            frames = stream.aiter_sse()
            assert (await anext(frames)).event == "connected"
            await a.post("/v1/events", json={"type": kind})
            await b.post("/v1/events", json={"type": mine})
            async with asyncio.timeout(10):
                async for frame in frames:
                    if frame.event == "event":
                        assert frame.json()["type"] == mine
                        break
        headers = {"X-API-Key": other.subscribe}
        async with ws_connect(server, additional_headers=headers) as ws:
            await ws_send(
                ws,
                {
                    "op": "subscribe",
                    "id": "s1",
                    "filter": {"type": f"{kind},{mine}"},
                    "last_event_id": event["seq"] - 1,
                },
            )
            assert (await ws_recv(ws))["op"] == "subscribed"
            got = await ws_recv(ws)
            assert got["op"] == "event" and got["event"]["type"] == mine


async def test_revoking_a_key_refuses_it_at_once_and_closes_its_streams(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    keys = await make_tenant(root)
    key_id = (await root.get("/v1/keys", params={"tenant": keys.tenant})).json()["keys"][-1]["id"]
    async with _client(server, keys.subscribe) as http:
        async with aconnect_sse(http, "GET", STREAM) as stream:
            frames = stream.aiter_sse()
            assert (await anext(frames)).event == "connected"
            async with ws_connect(server, additional_headers={"X-API-Key": keys.subscribe}) as ws:
                await ws_send(ws, {"op": "subscribe", "id": "s1", "filter": {}})
                assert (await ws_recv(ws))["op"] == "subscribed"
                assert (await root.delete(f"/v1/keys/{key_id}")).status_code == 204
                system = await ws_recv(ws)
                assert (system["op"], system["code"]) == ("system", "key_revoked")
                await asyncio.wait_for(ws.wait_closed(), 10)
                assert ws.close_code == 1008
            last = None
            async with asyncio.timeout(10):
                async for frame in frames:  # ends when the server closes the stream
                    last = frame
            assert last is not None and last.event == "system"
            assert last.json()["code"] == "key_revoked"
        answer = await http.get("/v1/events")
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    shown = (await root.get(f"/v1/keys/{key_id}")).json()
    assert shown["revoked_at"] is not None and "key" not in shown
    audit = await root.get("/v1/events", params={"type": "tidings.audit.key.revoked"})
    assert audit.status_code == 200


async def test_max_streams_counts_sse_and_websocket_together(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    tenant = (await make_tenant(root)).tenant
    key = await make_key(root, tenant, ["subscribe"], max_streams=2)
    async with _client(server, key) as http:
        async with aconnect_sse(http, "GET", STREAM) as first:
            assert first.response.status_code == 200
            async with ws_connect(server, additional_headers={"X-API-Key": key}):
                async with aconnect_sse(http, "GET", STREAM) as third:
                    assert third.response.status_code == 429
                    await third.response.aread()
                    assert third.response.json()["error"]["code"] == "too_many_streams"
                    assert int(third.response.headers["retry-after"]) >= 1
                with pytest.raises(InvalidStatus) as refused:
                    async with ws_connect(server, additional_headers={"X-API-Key": key}):
                        pass
                assert refused.value.response.status_code == 429

        async def accepted() -> bool:
            async with aconnect_sse(http, "GET", STREAM) as again:
                return again.response.status_code == 200

        assert await wait_until(accepted, timeout=10)


async def test_rate_limit_answers_429_with_retry_after(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    tenant = (await make_tenant(root)).tenant
    key = await make_key(root, tenant, ["publish"], rate_limit=1)
    async with _client(server, key) as http:
        assert (await http.post("/v1/events", json={"type": "rate.one"})).status_code == 201
        answer = await http.post("/v1/events", json={"type": "rate.two"})
        assert answer.status_code == 429
        assert answer.json()["error"]["code"] == "rate_limited"
        assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "tdk_short"},
        {"X-API-Key": "tdk_" + "a" * 20 + " " + "b" * 20},
        {"X-API-Key": ""},
        {"X-API-Key": "sk_live_" + "a" * 40},  # another product's key
        {"X-API-Key": ROOT[:-1] + "x"},  # off by one character
        {"Authorization": "Basic " + "a" * 40},
        {"Authorization": "Bearer"},
    ],
)
async def test_bad_keys_are_refused_with_401(
    server: ServerProcess, headers: dict[str, str]
) -> None:
    async with _client(server) as http:
        answer = await http.get("/v1/events", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert ROOT not in answer.text


async def test_the_header_wins_over_the_query_and_bearer_works(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    keys = await make_tenant(root)
    wrong = "tdk_" + "w" * 43
    async with _client(server) as http:
        params = {"access_token": wrong}
        async with aconnect_sse(
            http, "GET", STREAM, params=params, headers={"X-API-Key": keys.subscribe}
        ) as stream:
            assert stream.response.status_code == 200
        params = {"access_token": keys.subscribe}
        async with aconnect_sse(
            http, "GET", STREAM, params=params, headers={"X-API-Key": wrong}
        ) as stream:
            assert stream.response.status_code == 401
        async with aconnect_sse(http, "GET", STREAM, params=params) as stream:
            assert stream.response.status_code == 200
        # the query is read for streams only, where a browser cannot set headers
        assert (await http.get("/v1/events", params=params)).status_code == 401
        bearer = {"Authorization": f"Bearer {keys.subscribe}"}
        assert (await http.get("/v1/events", headers=bearer)).status_code == 200
    log = server.log()
    assert re.search(r"access_token=\*{4,}", log)  # masked
    assert keys.subscribe not in log and ROOT not in log


async def test_bad_tenants_and_scopes_are_refused_with_422(root: httpx.AsyncClient) -> None:
    for bad in ["Acme", "-acme", "a" * 64, "ac_me", ""]:
        answer = await root.post("/v1/tenants", json={"id": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["code"] == "invalid_tenant"
        answer = await root.post(
            "/v1/keys", json={"name": "x", "scopes": ["publish"], "tenant": bad}
        )
        assert answer.status_code == 422, bad
    answer = await root.post("/v1/keys", json={"name": "x", "scopes": ["publish", "write", "own"]})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_scopes"
    assert "'write'" in error["message"] and "'own'" in error["message"]
    answer = await root.post("/v1/keys", json={"name": "x", "scopes": ["publish"], "tenant": "no"})
    assert answer.status_code == 422
    assert (await root.post("/v1/tenants", json={"id": "default"})).status_code == 409


async def test_an_admin_cannot_reach_beyond_its_tenant_or_mint_root(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    mine, theirs = await make_tenant(root), await make_tenant(root)
    their_key = (await root.get("/v1/keys", params={"tenant": theirs.tenant})).json()["keys"][0]
    async with _client(server, mine.admin) as http:
        answer = await http.post("/v1/keys", json={"name": "x", "scopes": ["root"]})
        assert answer.status_code == 403
        answer = await http.post(
            "/v1/keys", json={"name": "x", "scopes": ["publish"], "tenant": theirs.tenant}
        )
        assert answer.status_code == 403
        assert (await http.get(f"/v1/keys/{their_key['id']}")).status_code == 404
        assert (await http.delete(f"/v1/keys/{their_key['id']}")).status_code == 404
        listed = (await http.get("/v1/keys")).json()["keys"]
        assert {k["tenant"] for k in listed} == {mine.tenant}
        assert all("key" not in k for k in listed)
        created = await http.post("/v1/keys", json={"name": "ci", "scopes": ["publish"]})
        assert created.status_code == 201
        assert created.json()["tenant"] == mine.tenant
        assert created.json()["key"].startswith("tdk_")


async def test_root_acts_in_another_tenant_and_the_audit_goes_there(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    acme = await make_tenant(root, "acme")  # the tenant of the ingest source acme-hooks
    kind = unique("rooted").replace("-", "_") + ".happened"
    async with _client(server, acme.admin) as a:
        # an endpoint created by root in acme: acme sees it, root's own tenant does not
        hook = await root.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/x", "events": [kind], "tenant": "acme"},
        )
        assert hook.status_code == 201, hook.text
        hook_id = hook.json()["id"]
        assert hook_id in {w["id"] for w in (await a.get("/v1/webhooks")).json()["webhooks"]}
        assert hook_id not in {w["id"] for w in (await root.get("/v1/webhooks")).json()["webhooks"]}
        listed = await root.get("/v1/webhooks", params={"tenant": "acme"})
        assert hook_id in {w["id"] for w in listed.json()["webhooks"]}
        # by id, root finds it in acme without naming the tenant
        assert (await root.get(f"/v1/webhooks/{hook_id}")).json()["events"] == [kind]
        patched = await root.patch(f"/v1/webhooks/{hook_id}", json={"description": "by root"})
        assert patched.status_code == 200, patched.text
        assert (await a.get(f"/v1/webhooks/{hook_id}")).json()["description"] == "by root"
        assert (await root.post(f"/v1/webhooks/{hook_id}/rotate-secret")).status_code == 200

        # its deliveries, read by root
        event = (await a.post("/v1/events", json={"type": kind})).json()

        async def delivered() -> bool:
            page = await root.get(f"/v1/webhooks/{hook_id}/deliveries")
            return page.status_code == 200 and bool(page.json()["deliveries"])

        assert await wait_until(delivered, timeout=15)
        page = (await root.get(f"/v1/webhooks/{hook_id}/deliveries")).json()
        delivery = page["deliveries"][0]
        assert delivery["event_id"] == event["id"]
        shown = await root.get(f"/v1/deliveries/{delivery['id']}")
        assert shown.status_code == 200 and shown.json()["webhook_id"] == hook_id

        # acme's events, stats and counts through ?tenant=
        found = await root.get("/v1/events", params={"tenant": "acme", "type": kind})
        assert [e["id"] for e in found.json()["events"]] == [event["id"]]
        mine = await root.get("/v1/events", params={"type": kind})
        assert mine.json()["events"] == []
        assert (await root.get(f"/v1/events/{event['id']}")).status_code == 404
        one = await root.get(f"/v1/events/{event['id']}", params={"tenant": "acme"})
        assert one.status_code == 200
        exported = await root.get("/v1/events/export", params={"tenant": "acme", "type": kind})
        assert event["id"] in exported.text
        stats = (await root.get("/v1/stats", params={"tenant": "acme"})).json()
        assert stats["events"]["by_type"].get(kind) == 1
        assert stats["deliveries"]["endpoints"] >= 1
        counts = await root.get("/v1/stats/counts", params={"tenant": "acme", "type": kind})
        assert sum(counts.json()["series"][0]["counts"]) == 1

        # acme's dead letters: listed with ?tenant=, found by id, redriven in bulk by body
        raw = b"root reads this: " + unique("raw").encode()
        async with _client(server) as anyone:
            parked = await anyone.post(
                "/v1/ingest/acme-hooks", content=raw, headers={"X-Signature": _sign(raw)}
            )
        assert parked.status_code == 202, parked.text
        letters = (await root.get("/v1/dead-letters", params={"tenant": "acme"})).json()
        letter_id = letters["dead_letters"][0]["id"]
        own = (await root.get("/v1/dead-letters")).json()["dead_letters"]
        assert letter_id not in {d["id"] for d in own}
        assert (await root.get(f"/v1/dead-letters/{letter_id}")).status_code == 200
        redriven = await root.post("/v1/dead-letters/redrive", json={"tenant": "acme"})
        assert redriven.status_code == 200, redriven.text
        assert redriven.json()["failed"] >= 1  # still not JSON: kept, and counted
        assert (await root.delete(f"/v1/dead-letters/{letter_id}")).status_code == 204
        assert (await a.get(f"/v1/dead-letters/{letter_id}")).status_code == 404

        assert (await root.delete(f"/v1/webhooks/{hook_id}")).status_code == 204
        assert (await a.get(f"/v1/webhooks/{hook_id}")).status_code == 404

        # every action is an audit event in acme's log, none in root's own
        audit = await a.get("/v1/events", params={"type": "tidings.audit.#", "limit": "1000"})
        touched = [
            e
            for e in audit.json()["events"]
            if e["subject"] == hook_id or e["data"].get("dead_letter") == letter_id
        ]
        assert {e["type"] for e in touched} >= {
            "tidings.audit.webhook.created",
            "tidings.audit.webhook.changed",
            "tidings.audit.webhook.rotated",
            "tidings.audit.webhook.deleted",
            "tidings.audit.dead_letter.deleted",
        }
        assert all(e["data"]["key_prefix"] == ROOT[:12] for e in touched)
        bulk = await a.get("/v1/events", params={"type": "tidings.audit.dead_letter.redriven"})
        assert bulk.json()["events"], "the bulk redrive is audited in acme"
        ours = await root.get("/v1/events", params={"type": "tidings.audit.webhook.#"})
        assert all(e["subject"] != hook_id for e in ours.json()["events"])


async def test_root_streams_another_tenants_events(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    keys = await make_tenant(root)
    kind = unique("streamed").replace("-", "_") + ".happened"
    params = {"tenant": keys.tenant, "type": kind}
    async with aconnect_sse(root, "GET", STREAM, params=params) as stream:
        frames = stream.aiter_sse()
        assert (await anext(frames)).event == "connected"
        async with _client(server, keys.publish) as publisher:
            await publisher.post("/v1/events", json={"type": kind})
        async with asyncio.timeout(10):
            async for frame in frames:
                if frame.event == "event":
                    assert frame.json()["type"] == kind
                    break
    query = f"?tenant={keys.tenant}"
    async with ws_connect(server, query=query, additional_headers={"X-API-Key": ROOT}) as ws:
        subscribe = {"op": "subscribe", "id": "s1", "filter": {"type": kind}, "last_event_id": 0}
        await ws_send(ws, subscribe)
        assert (await ws_recv(ws))["op"] == "subscribed"
        got = await ws_recv(ws)
        assert got["op"] == "event" and got["event"]["type"] == kind


async def test_a_key_without_root_naming_another_tenant_is_refused_with_403(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    mine, theirs = await make_tenant(root), await make_tenant(root)
    hook = {"url": "http://127.0.0.1:9/x", "events": ["#"]}
    other = {"tenant": theirs.tenant}
    async with _client(server, mine.admin) as http:
        for method, path, params, body in [
            ("POST", "/v1/webhooks", None, {**hook, **other}),
            ("GET", "/v1/webhooks", other, None),
            ("GET", "/v1/dead-letters", other, None),
            ("POST", "/v1/dead-letters/redrive", None, other),
            ("POST", "/v1/dead-letters/redrive", other, None),
            ("GET", "/v1/stats", other, None),
            ("GET", "/v1/stats/counts", other, None),
            ("GET", "/v1/keys", other, None),
            ("GET", "/v1/events", other, None),
            ("GET", "/v1/events/export", other, None),
            ("GET", STREAM, other, None),
        ]:
            answer = await http.request(method, path, params=params, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"
        # naming its own tenant is naming nothing
        created = await http.post("/v1/webhooks", json={**hook, "tenant": mine.tenant})
        assert created.status_code == 201, created.text
        listed = await http.get("/v1/webhooks", params={"tenant": mine.tenant})
        assert [w["id"] for w in listed.json()["webhooks"]] == [created.json()["id"]]
        # and root's endpoint in its own tenant stays out of reach by id
        theirs_hook = await root.post("/v1/webhooks", json={**hook, **other})
        assert (await http.get(f"/v1/webhooks/{theirs_hook.json()['id']}")).status_code == 404
    headers = {"X-API-Key": mine.subscribe}
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(server, query=f"?tenant={theirs.tenant}", additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403


async def test_root_naming_a_tenant_that_does_not_exist_is_refused(
    root: httpx.AsyncClient,
) -> None:
    hook = {"url": "http://127.0.0.1:9/x", "events": ["#"]}
    answer = await root.post("/v1/webhooks", json={**hook, "tenant": "no-such-tenant"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["body", "tenant"]
    answer = await root.post("/v1/dead-letters/redrive", json={"tenant": "no-such-tenant"})
    assert answer.status_code == 422
    for path in ["/v1/webhooks", "/v1/keys", "/v1/dead-letters", "/v1/stats", "/v1/events"]:
        answer = await root.get(path, params={"tenant": "no-such-tenant"})
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert error["details"][0]["loc"] == ["query", "tenant"]
        assert "no-such-tenant" in error["message"]
        answer = await root.get(path, params={"tenant": "Not_A_Tenant"})
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "invalid_tenant"
    answer = await root.post("/v1/webhooks", json={**hook, "tenant": "Not_A_Tenant"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_tenant")
    twice = await root.get("/v1/webhooks", params=[("tenant", "default"), ("tenant", "acme")])
    assert (twice.status_code, twice.json()["error"]["code"]) == (400, "invalid_parameter")


async def test_admin_actions_are_audit_events_in_the_tenants_own_log(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    keys = await make_tenant(root)
    async with _client(server, keys.admin) as http:
        hook = (
            await http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["x"]})
        ).json()
        await http.post(f"/v1/webhooks/{hook['id']}/rotate-secret")
        await http.delete(f"/v1/webhooks/{hook['id']}")
        page = await http.get("/v1/events", params={"type": "tidings.audit.#", "order": "asc"})
        audit = page.json()["events"]
    types = [e["type"] for e in audit]
    assert types[-3:] == [
        "tidings.audit.webhook.created",
        "tidings.audit.webhook.rotated",
        "tidings.audit.webhook.deleted",
    ]
    assert "tidings.audit.key.created" in types
    created = audit[-3]
    assert created["source"] == "tidings" and created["subject"] == hook["id"]
    assert created["data"]["key_prefix"] == keys.admin[:12]
    assert created["data"]["address"] == "127.0.0.1"
    assert "secret" not in str(created["data"]) and keys.admin not in str(audit)


@pytest.mark.slow
async def test_ten_thousand_wrong_keys_leave_the_server_responsive_and_the_audit_calm(
    server: ServerProcess, root: httpx.AsyncClient
) -> None:
    def refused(text: str) -> float:
        match = re.search(r'tidings_auth_refusals_total\{reason="unknown"\} ([0-9.e+]+)', text)
        return float(match.group(1)) if match else 0.0

    async def audited() -> int:
        page = await root.get(
            "/v1/events", params={"type": "tidings.audit.auth.refused", "limit": 1000}
        )
        return len(page.json()["events"])

    before_count = refused((await root.get("/metrics")).text)
    before_audit = await audited()
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as flood:

        async def attack(n: int) -> None:
            for i in range(n, 10_000, 20):
                key = f"tdk_{i:043d}"
                answer = await flood.get("/v1/events", headers={"X-API-Key": key})
                assert answer.status_code == 401

        attackers = asyncio.gather(*(attack(n) for n in range(20)))
        await asyncio.sleep(0.5)
        # while the flood runs, a good key is answered
        answer = await root.get("/v1/events", params={"limit": 1}, timeout=10)
        assert answer.status_code == 200
        await attackers
    after = refused((await root.get("/metrics")).text)
    assert after - before_count >= 10_000
    assert await audited() - before_audit <= 6  # one address: a handful a minute


async def test_first_start_prints_a_root_key_once(start_server: Any, tmp_path: Path) -> None:
    data = tmp_path / "boot"
    first = start_server({"TIDINGS_AUTH": "on"}, data)
    keys = re.findall(r"tdk_[0-9A-Za-z]{43}", first.log())
    assert len(keys) == 1
    async with _client(first, keys[0]) as http:
        assert (await http.get("/v1/tenants")).status_code == 200
    first.stop()
    first.start()
    assert re.findall(r"tdk_[0-9A-Za-z]{43}", first.log()) == keys  # not again


async def test_auth_off_beyond_loopback_warns_loudly(start_server: Any) -> None:
    exposed = start_server({"TIDINGS_AUTH": "off", "TIDINGS_HOST": "0.0.0.0"})
    assert "AUTH IS OFF on 0.0.0.0" in exposed.log()


async def test_auth_off_on_loopback_refuses_other_host_names(start_server: Any) -> None:
    local = start_server()
    async with _client(local) as http:
        assert (await http.get("/v1/events")).status_code == 200
        rebound = await http.get("/v1/events", headers={"Host": "evil.example:80"})
        assert rebound.status_code == 403
        assert rebound.json()["error"]["code"] == "host_not_allowed"
        localhost = await http.get("/v1/events", headers={"Host": f"localhost:{local.port}"})
        assert localhost.status_code == 200


async def test_websocket_upgrades_check_the_origin_and_cors_allows_listed_origins(
    start_server: Any,
) -> None:
    app = "https://app.example.com"
    hub = start_server({"TIDINGS_CORS_ORIGINS": app})
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(hub, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with ws_connect(hub, origin=app) as ws:
        await ws_send(ws, {"op": "ping"})
    async with ws_connect(hub, origin=f"http://127.0.0.1:{hub.port}") as ws:
        await ws_send(ws, {"op": "ping"})
    async with _client(hub) as http:
        preflight = await http.options(
            "/v1/events",
            headers={
                "Origin": app,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == app
        answer = await http.get("/v1/events", headers={"Origin": app})
        assert answer.headers["access-control-allow-origin"] == app
        other = await http.get("/v1/events", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
