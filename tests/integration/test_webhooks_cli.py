"""``tidings webhooks ...`` run as a real process against a real server and a real receiver."""

from __future__ import annotations

import json
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.integration.module_server import receiver_fixture, server_and_client
from tests.integration.receiver import Receiver, publish, respond, wait_delivery
from tests.integration.server import ServerProcess
from tests.integration.test_cli import assert_clean_failure, tidings

ENV = {
    "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
    "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2",
}


server, client = server_and_client("webhooks-cli", ENV)
receiver = receiver_fixture()


def ok(*args: str, server: ServerProcess) -> str:
    result = tidings("webhooks", *args, url=server.url)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def as_json(*args: str, server: ServerProcess) -> Any:
    result = tidings("webhooks", *args, "--json", url=server.url)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_add_list_show_disable_enable_and_delete_an_endpoint(
    server: ServerProcess, client: httpx.Client, receiver: Receiver
) -> None:
    created = as_json(
        "add", receiver.url, "--events", "cli.order.*", "-e", "cli.invoice.#",
        "--exclude-source", "erp", "--description", "orders", "--rate-limit", "50",
        "-H", "Authorization: Bearer xyz", "--secret", "a secret of sixteen+",
        server=server,
    )  # fmt: skip
    webhook_id = created["id"]
    assert created["secret"] == "a secret of sixteen+"
    assert created["events"] == ["cli.order.*", "cli.invoice.#"]
    assert created["filter"] == {"exclude_source": ["erp"]}
    assert created["headers"] == {"Authorization": "Bearer xyz"}
    assert created["rate_limit"] == 50 and created["description"] == "orders"
    assert client.get(f"/v1/webhooks/{webhook_id}").json()["url"] == receiver.url

    shown = ok("show", webhook_id, server=server)
    assert "a secret of sixteen+" not in shown
    assert any(line.split() == ["description", "orders"] for line in shown.splitlines())

    assert "now disabled" in ok("disable", webhook_id, server=server)
    assert client.get(f"/v1/webhooks/{webhook_id}").json()["active"] is False
    listed = ok("list", server=server)
    assert listed.splitlines()[0].split()[:4] == ["id", "url", "events", "active"]
    row = next(line for line in listed.splitlines() if webhook_id in line).split()
    assert row[:4] == [webhook_id, receiver.url, "cli.order.*,cli.invoice.#", "no"]
    assert "now enabled" in ok("enable", webhook_id, server=server)
    assert client.get(f"/v1/webhooks/{webhook_id}").json()["active"] is True

    event_id = publish(client, "cli.order.created", source="shop")["id"]
    request = receiver.wait_events([event_id])[0]
    Webhook(b"a secret of sixteen+").verify(request.body, request.headers)
    assert request.headers["authorization"] == "Bearer xyz"

    assert "deleted" in ok("delete", webhook_id, server=server)
    assert client.get(f"/v1/webhooks/{webhook_id}").status_code == 404
    gone = tidings("webhooks", "show", webhook_id, url=server.url)
    assert_clean_failure(gone)
    assert "webhook_not_found" in gone.stderr


def test_add_generates_a_secret_and_refuses_bad_input_cleanly(
    server: ServerProcess, receiver: Receiver
) -> None:
    result = tidings("webhooks", "add", receiver.url, url=server.url)
    assert result.returncode == 0, result.stderr
    assert "whsec_" in result.stdout and "only now" in result.stderr

    bad_url = tidings("webhooks", "add", "ftp://127.0.0.1/x", url=server.url)
    assert_clean_failure(bad_url)
    assert "validation_error" in bad_url.stderr and "http" in bad_url.stderr
    bad_header = tidings("webhooks", "add", receiver.url, "-H", "no colon", url=server.url)
    assert_clean_failure(bad_header, code=2)


def test_deliveries_retry_and_replay_from_the_command_line(
    server: ServerProcess, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.default = respond(500, b"not today")
    webhook_id = as_json("add", receiver.url, "-e", "clirep.#", server=server)["id"]
    event_ids = [publish(client, "clirep.x", data={"n": n})["id"] for n in range(2)]
    for event_id in event_ids:
        wait_delivery(client, webhook_id, event_id, "failed")

    table = ok("deliveries", webhook_id, "--status", "failed", server=server)
    lines = table.splitlines()
    assert lines[0].split() == [
        "id",
        "event",
        "seq",
        "status",
        "attempts",
        "last",
        "next",
        "attempt",
    ]
    assert len(lines) == 3 and all("failed" in line and "500" in line for line in lines[1:])
    listed = as_json("deliveries", webhook_id, "--status", "failed", server=server)
    failed = {d["event_id"]: d for d in listed["deliveries"]}
    assert set(failed) == set(event_ids)
    assert all(len(d["attempts"]) == 3 for d in failed.values())
    assert {line.split()[0] for line in lines[1:]} == {d["id"] for d in failed.values()}
    for width in ("80", "40"):  # ids are copied from the table: never folded or cut
        narrow = tidings(
            "webhooks", "deliveries", webhook_id, url=server.url, env={"COLUMNS": width}
        )
        shown = {line.split()[0] for line in narrow.stdout.splitlines()[1:] if line.strip()}
        assert {d["id"] for d in failed.values()} <= shown, narrow.stdout
        endpoints = tidings("webhooks", "list", url=server.url, env={"COLUMNS": width})
        assert any(line.startswith(webhook_id + " ") for line in endpoints.stdout.splitlines())

    receiver.default = respond(200)
    retried = as_json("retry", failed[event_ids[0]]["id"], server=server)
    assert retried["status"] == "pending"
    done = wait_delivery(client, webhook_id, event_ids[0], "succeeded")
    assert len(done["attempts"]) == 4

    seen = len(receiver.received())
    message = ok("replay", webhook_id, "--since", "1h", "--only-failed", server=server)
    assert "replaying 1 events" in message
    got = receiver.wait_for(lambda r: any(x.event_id == event_ids[1] for x in r[seen:]))
    resent = [r for r in got[seen:] if r.event_id == event_ids[1]]
    first = next(r for r in got if r.event_id == event_ids[1])
    assert resent[0].headers["webhook-id"] == first.headers["webhook-id"]
    wait_delivery(client, webhook_id, event_ids[1], "succeeded")
    assert "no deliveries" in ok("deliveries", webhook_id, "--status", "pending", server=server)

    missing = tidings("webhooks", "retry", "no-such-delivery", url=server.url)
    assert_clean_failure(missing)
    assert "delivery_not_found" in missing.stderr
