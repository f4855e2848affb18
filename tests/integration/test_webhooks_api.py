"""``/v1/webhooks`` and ``/v1/deliveries`` against a real server process and a real receiver."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.module_server import receiver_fixture, server_and_client
from tests.integration.receiver import (
    Receiver,
    create_endpoint,
    deliveries,
    poll,
    publish,
    respond,
    wait_delivery,
)
from tests.integration.server import ServerProcess

OVERLAP_S = 4.0
ENV = {
    "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
    "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2,0.2",
    "TIDINGS_WEBHOOK_ROTATION_OVERLAP_S": str(OVERLAP_S),
    "TIDINGS_WEBHOOK_TIMEOUT_S": "5",
}
ENDPOINT_FIELDS = {
    "id", "url", "events", "filter", "active", "description", "rate_limit", "headers",
    "created_at", "disabled_reason",
}  # fmt: skip
DELIVERY_FIELDS = {"id", "webhook_id", "event_id", "status", "attempts", "next_attempt_at"}


server, client = server_and_client("webhooks-api", ENV)
receiver = receiver_fixture()


def prefix() -> str:
    """A type prefix of one test, so endpoints of other tests never match its events."""
    return "t" + uuid.uuid4().hex[:10]


def error_of(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code
    return error


def named_fields(error: dict[str, Any]) -> set[str]:
    return {str(detail["loc"][1]) for detail in error["details"] if len(detail["loc"]) > 1}


# -- create, read ----------------------------------------------------------------------------


def test_create_answers_201_with_location_and_a_generated_whsec_secret_shown_once(
    client: httpx.Client, receiver: Receiver
) -> None:
    answer = client.post(
        "/v1/webhooks",
        json={
            "url": receiver.url,
            "events": ["order.*", "invoice.#"],
            "exclude_source": "billing",
            "description": "orders to the ERP",
            "rate_limit": 20,
            "headers": {"Authorization": "Bearer t0k3n"},
        },
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == ENDPOINT_FIELDS | {"secret"}
    assert answer.headers["location"] == f"/v1/webhooks/{created['id']}"
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"), validate=True)) == 24
    assert created["events"] == ["order.*", "invoice.#"]
    assert created["filter"] == {"exclude_source": "billing"}
    assert created["active"] is True and created["disabled_reason"] is None
    assert created["rate_limit"] == 20 and created["headers"] == {"Authorization": "Bearer t0k3n"}

    shown = client.get(answer.headers["location"]).json()
    assert set(shown) == ENDPOINT_FIELDS
    assert shown["headers"] == {"Authorization": "********"}  # like the secret: once
    assert {k: v for k, v in created.items() if k not in ("secret", "headers")} == {
        k: v for k, v in shown.items() if k != "headers"
    }
    listed = client.get("/v1/webhooks").json()["webhooks"]
    assert shown in listed
    assert all("secret" not in e for e in listed)


def test_a_given_secret_is_kept_as_given(client: httpx.Client, receiver: Receiver) -> None:
    created = create_endpoint(client, receiver.url, secret="a plain secret of 16+ chars")
    assert created["secret"] == "a plain secret of 16+ chars"
    assert created["events"] == ["#"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "/relative/hook"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"events": ["order.#.created"]}, "events"),
        ({"events": ["bad type!"]}, "events"),
        ({"events": []}, "events"),
        ({"secret": "too-short"}, "secret"),
        ({"headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"colour": "blue"}, "colour"),
        ({"filter": {"type": "order.*"}}, "filter"),
        ({"filter": {"nonsense": "x"}}, "filter"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"active": "sometimes"}, "active"),
    ],
)
def test_invalid_endpoints_are_refused_with_422_naming_the_field(
    client: httpx.Client, receiver: Receiver, body: dict[str, Any], field: str
) -> None:
    answer = client.post("/v1/webhooks", json={"url": receiver.url, **body})
    assert field in named_fields(error_of(answer, 422, "validation_error"))


def test_a_body_that_is_not_an_object_or_not_json_is_refused(client: httpx.Client) -> None:
    assert client.post("/v1/webhooks", json=["http://127.0.0.1/"]).status_code == 422
    answer = client.post(
        "/v1/webhooks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400


def test_private_destinations_are_refused_without_the_allow_setting(
    start_server: Callable[..., ServerProcess],
) -> None:
    strict = start_server(env={"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "false"})
    with httpx.Client(base_url=strict.url, timeout=30.0) as http:
        for url in (
            "http://127.0.0.1:9/hook",
            "http://localhost:9/hook",
            "http://[::1]:9/hook",
            "http://[::ffff:127.0.0.1]:9/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data/",
        ):
            error = error_of(http.post("/v1/webhooks", json={"url": url}), 422, "validation_error")
            assert named_fields(error) == {"url"}, url
        public = http.post("/v1/webhooks", json={"url": "https://93.184.216.34/hook?x=1"})
        assert public.status_code == 201, public.text
        moved = http.patch(f"/v1/webhooks/{public.json()['id']}", json={"url": "http://10.0.0.1/"})
        assert named_fields(error_of(moved, 422, "validation_error")) == {"url"}


def test_unknown_ids_answer_404(client: httpx.Client) -> None:
    missing = "wh_" + uuid.uuid4().hex
    for answer in (
        client.get(f"/v1/webhooks/{missing}"),
        client.patch(f"/v1/webhooks/{missing}", json={"active": False}),
        client.delete(f"/v1/webhooks/{missing}"),
        client.post(f"/v1/webhooks/{missing}/rotate-secret"),
        client.post(f"/v1/webhooks/{missing}/replay", json={}),
        client.get(f"/v1/webhooks/{missing}/deliveries"),
    ):
        error_of(answer, 404, "webhook_not_found")
    for answer in (
        client.get(f"/v1/deliveries/{uuid.uuid4()}"),
        client.post(f"/v1/deliveries/{uuid.uuid4()}/retry"),
    ):
        error_of(answer, 404, "delivery_not_found")


def test_with_auth_off_the_tenant_field_acts_as_for_a_root_key(
    client: httpx.Client, receiver: Receiver
) -> None:
    # Auth off: the caller may do everything (the server listens on loopback only), so it
    # may name a tenant, which must exist, and finds an endpoint by id in any tenant.
    tenant = "blue-" + uuid.uuid4().hex[:8]
    assert client.post("/v1/tenants", json={"id": tenant}).status_code == 201
    own = create_endpoint(client, receiver.url, tenant="default")
    blue = create_endpoint(client, receiver.url, tenant=tenant)
    listed = {w["id"] for w in client.get("/v1/webhooks").json()["webhooks"]}
    assert own["id"] in listed and blue["id"] not in listed
    theirs = client.get("/v1/webhooks", params={"tenant": tenant}).json()["webhooks"]
    assert [w["id"] for w in theirs] == [blue["id"]]
    assert client.get(f"/v1/webhooks/{blue['id']}").status_code == 200
    assert client.delete(f"/v1/webhooks/{blue['id']}").status_code == 204
    assert client.get("/v1/webhooks", params={"tenant": tenant}).json()["webhooks"] == []
    error_of(
        client.post("/v1/webhooks", json={"url": receiver.url, "tenant": "no-such-tenant"}),
        422,
        "validation_error",
    )
    error_of(client.get("/v1/webhooks", params={"tenant": "no-such"}), 400, "invalid_parameter")


# -- change, delete ------------------------------------------------------------------------


def test_patch_changes_filter_headers_and_active_and_keeps_the_rest(
    client: httpx.Client, receiver: Receiver
) -> None:
    p = prefix()
    created = create_endpoint(
        client, receiver.url, events=[f"{p}.a"], headers={"X-One": "1"}, description="d"
    )
    path = f"/v1/webhooks/{created['id']}"
    changed = client.patch(
        path,
        json={"events": [f"{p}.b"], "filter": {"subject": "s-1"}, "headers": {"X-Two": "2"}},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["events"] == [f"{p}.b"]
    assert body["filter"] == {"subject": "s-1"}
    assert body["headers"] == {"X-Two": "********"}  # values are shown on creation only
    assert body["description"] == "d" and "secret" not in body
    assert client.get(path).json() == body

    ignored = publish(client, f"{p}.a", subject="s-1")["id"]
    wrong_subject = publish(client, f"{p}.b", subject="s-2")["id"]
    wanted = publish(client, f"{p}.b", subject="s-1")["id"]
    got = receiver.wait_events([wanted])
    assert got[0].headers["x-two"] == "2" and "x-one" not in got[0].headers
    assert {d["event_id"] for d in deliveries(client, created["id"])} == {wanted}
    assert ignored not in receiver.event_ids() and wrong_subject not in receiver.event_ids()

    assert client.patch(path, json={"active": False}).json()["active"] is False
    publish(client, f"{p}.b", subject="s-1")
    assert client.patch(path, json={"active": True}).json()["active"] is True
    again = publish(client, f"{p}.b", subject="s-1")["id"]
    receiver.wait_events([again])
    assert len(receiver.received()) == 2  # the event published while inactive was not sent

    for patch, field in (
        ({"events": None}, "events"),
        ({"events": ["a.#.b"]}, "events"),
        ({"headers": {"User-Agent": "x"}}, "headers"),
        ({"filter": {"bogus": "1"}}, "filter"),
        ({"secret": "a-new-secret-here"}, "secret"),
    ):
        answer = client.patch(path, json=patch)
        assert field in named_fields(error_of(answer, 422, "validation_error")), patch


def test_delete_answers_204_then_404_and_cancels_pending_deliveries(
    client: httpx.Client, receiver: Receiver
) -> None:
    receiver.default = respond(429, b"slow down", {"Retry-After": "120"})
    p = prefix()
    created = create_endpoint(client, receiver.url, events=[f"{p}.#"])
    event_id = publish(client, f"{p}.x")["id"]
    receiver.wait_events([event_id])
    pending = poll(
        lambda: deliveries(client, created["id"]),
        lambda found: len(found) == 1 and len(found[0]["attempts"]) == 1,
        what="the first attempt logged",
    )[0]
    assert pending["status"] == "pending" and pending["next_attempt_at"] is not None

    assert client.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    error_of(client.get(f"/v1/webhooks/{created['id']}"), 404, "webhook_not_found")
    error_of(client.delete(f"/v1/webhooks/{created['id']}"), 404, "webhook_not_found")
    cancelled = client.get(f"/v1/deliveries/{pending['id']}").json()
    assert cancelled["status"] == "cancelled" and cancelled["next_attempt_at"] is None
    assert created["id"] not in {e["id"] for e in client.get("/v1/webhooks").json()["webhooks"]}


# -- secret rotation -----------------------------------------------------------------------


def test_rotation_signs_with_old_and_new_secrets_during_the_overlap_then_only_the_new(
    client: httpx.Client, receiver: Receiver
) -> None:
    p = prefix()
    created = create_endpoint(client, receiver.url, events=[f"{p}.#"])
    old = created["secret"]
    first = publish(client, f"{p}.before")["id"]
    request = receiver.wait_events([first])[0]
    Webhook(old).verify(request.body, request.headers)

    answer = client.post(f"/v1/webhooks/{created['id']}/rotate-secret")
    rotated_at = time.monotonic()
    assert answer.status_code == 200, answer.text
    new = answer.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert "secret" not in client.get(f"/v1/webhooks/{created['id']}").json()

    during = publish(client, f"{p}.during")["id"]
    request = next(r for r in receiver.wait_events([during]) if r.event_id == during)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)

    while time.monotonic() < rotated_at + OVERLAP_S + 0.5:  # let the overlap run out
        time.sleep(0.1)
    after = publish(client, f"{p}.after")["id"]
    request = next(r for r in receiver.wait_events([after]) if r.event_id == after)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_rotation_accepts_a_chosen_secret_and_refuses_a_short_one(
    client: httpx.Client, receiver: Receiver
) -> None:
    created = create_endpoint(client, receiver.url, events=["never.sent"])
    path = f"/v1/webhooks/{created['id']}/rotate-secret"
    chosen = client.post(path, json={"secret": "my own rotated secret"})
    assert chosen.status_code == 200 and chosen.json()["secret"] == "my own rotated secret"
    error = error_of(client.post(path, json={"secret": "short"}), 422, "validation_error")
    assert named_fields(error) == {"secret"}


# -- the delivery log ----------------------------------------------------------------------


def test_deliveries_are_listed_newest_first_by_status_and_in_pages(
    client: httpx.Client, receiver: Receiver
) -> None:
    p = prefix()
    receiver.choose = lambda r: respond(500, b"no") if r.json()["event"]["data"]["n"] % 3 else None
    created = create_endpoint(client, receiver.url, events=[f"{p}.#"])
    ids = [publish(client, f"{p}.item", data={"n": n})["id"] for n in range(9)]
    failing = {ids[n] for n in range(9) if n % 3}
    poll(
        lambda: deliveries(client, created["id"]),
        lambda found: len(found) == 9 and all(d["status"] != "pending" for d in found),
        what="every delivery finished",
    )
    succeeded = deliveries(client, created["id"], status="succeeded")
    failed = deliveries(client, created["id"], status="failed")
    assert {d["event_id"] for d in succeeded} == set(ids) - failing
    assert {d["event_id"] for d in failed} == failing
    assert all(len(d["attempts"]) == 4 for d in failed)
    assert deliveries(client, created["id"], status="cancelled") == []

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/v1/webhooks/{created['id']}/deliveries", params=params).json()
        pages.append(body["deliveries"])
        cursor = body["next"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [4, 4, 1]
    listed = [d["event_id"] for page in pages for d in page]
    assert listed == list(reversed(ids))  # newest first, no repeat, none missing

    one = pages[0][0]
    assert set(one) >= DELIVERY_FIELDS
    assert client.get(f"/v1/deliveries/{one['id']}").json() == one
    assert one["webhook_id"] == created["id"]
    bad = client.get(f"/v1/webhooks/{created['id']}/deliveries", params={"status": "lost"})
    assert bad.status_code in (400, 422)


def test_retry_of_a_pending_delivery_is_refused(client: httpx.Client, receiver: Receiver) -> None:
    receiver.default = respond(503, b"busy", {"Retry-After": "120"})
    p = prefix()
    created = create_endpoint(client, receiver.url, events=[f"{p}.#"])
    event_id = publish(client, f"{p}.x")["id"]
    receiver.wait_events([event_id])
    pending = wait_delivery(client, created["id"], event_id, "pending")
    error_of(client.post(f"/v1/deliveries/{pending['id']}/retry"), 409, "delivery_pending")
    client.delete(f"/v1/webhooks/{created['id']}")
