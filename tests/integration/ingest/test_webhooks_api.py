"""Signed webhooks against a real server: stored, deduplicated, refused, parked and redriven."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import pytest
import typer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook
from typer.testing import CliRunner

from tests.integration.ingest.harness import IngestServer, dead_letters, events, wait_for
from tests.integration.server import free_port
from tidings.cli import dlq_command

GH_SECRET = "gh-secret-0123456789"
DEV_SECRET = "devices-secret-0123"
WHSEC = "whsec_" + base64.b64encode(b"standard webhooks key 32 bytes!!").decode()
ST_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ST_TARGET_URL = "https://hub.example.com/v1/ingest/st_proxied"


class Confirmations(http.server.BaseHTTPRequestHandler):
    """Stands in for SmartThings' confirmation endpoint: records the paths it was asked."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Confirmations.seen.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def confirm_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Confirmations)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def write_config(path: Path, devices_type: str = "devices.reading") -> Path:
    pem = ST_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (path.parent / "st.pem").write_bytes(pem)
    path.write_text(
        f"""
[sources.github]
verifier = "github"
secret = "{GH_SECRET}"

[sources.devices]
verifier = "hmac-sha256"
secret = "{DEV_SECRET}"
timestamp_header = "X-Timestamp"
tolerance_s = 300
type = "{devices_type}"

[sources.payments]
verifier = "standard-webhooks"
secret = "{WHSEC}"

[sources.smartthings]
verifier = "smartthings"
public_key = "st.pem"

[sources.st_proxied]
verifier = "smartthings"
public_key = "st.pem"
target_url = "{ST_TARGET_URL}"
"""
    )
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestServer]:
    root = tmp_path_factory.mktemp("webhooks")
    config = write_config(root / "tidings.toml")
    env = {
        "TIDINGS_CONFIG": str(config),
        "TIDINGS_MAX_BODY_BYTES": "65536",
        "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
        "TIDINGS_LOG_LEVEL": "info",  # what a deployment logs; no credential may be in it
    }
    process = IngestServer(root / "data", env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: IngestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def github_headers(
    body: bytes, event: str, delivery: str, secret: str = GH_SECRET
) -> dict[str, str]:
    signature = hmac.new(secret.encode(), msg=body, digestmod=hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": "sha256=" + signature,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


def device_headers(
    body: bytes, at: float | None = None, secret: str = DEV_SECRET
) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "X-Timestamp": stamp}


def test_a_signed_github_webhook_is_stored_and_a_redelivery_is_a_duplicate(
    client: httpx.Client,
) -> None:
    delivery = str(uuid.uuid4())
    body = orjson.dumps({"action": "opened", "issue": {"number": 12}, "marker": delivery})
    first = client.post(
        "/v1/ingest/github", content=body, headers=github_headers(body, "issues", delivery)
    )
    assert first.status_code == 201, first.text
    (stored,) = first.json()["events"]
    again = client.post(
        "/v1/ingest/github", content=body, headers=github_headers(body, "issues", delivery)
    )
    assert again.status_code == 200, again.text
    assert again.json()["events"] == [{**stored, "duplicate": True}]
    event = client.get(f"/v1/events/{stored['id']}").json()
    assert (event["type"], event["source"], event["idempotency_key"]) == (
        "github.issues.opened",
        "github",
        delivery,
    )
    assert event["data"]["marker"] == delivery
    assert (
        len(
            [
                e
                for e in events(client.base_url.__str__(), source="github")
                if e["idempotency_key"] == delivery
            ]
        )
        == 1
    )


def test_a_standard_webhook_signed_by_the_reference_package_is_stored_once(
    client: httpx.Client,
) -> None:
    msg_id = "msg_" + uuid.uuid4().hex
    body = orjson.dumps(
        {"type": "invoice.paid", "timestamp": "2026-11-23T10:00:00Z", "data": {"id": msg_id}}
    )
    now = datetime.now(tz=UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(WHSEC).sign(msg_id, now, body.decode()),
    }
    assert client.post("/v1/ingest/payments", content=body, headers=headers).status_code == 201
    assert client.post("/v1/ingest/payments", content=body, headers=headers).status_code == 200
    found = [
        e for e in events(str(client.base_url), source="payments") if e["idempotency_key"] == msg_id
    ]
    assert len(found) == 1
    assert (found[0]["type"], found[0]["time"]) == ("invoice.paid", "2026-11-23T10:00:00.000Z")


def test_a_timestamped_hmac_webhook_of_plain_json_gets_the_default_type(
    client: httpx.Client,
) -> None:
    marker = uuid.uuid4().hex
    body = orjson.dumps({"temperature": 21.5, "marker": marker})
    answer = client.post("/v1/ingest/devices", content=body, headers=device_headers(body))
    assert answer.status_code == 201, answer.text
    event = client.get(f"/v1/events/{answer.json()['events'][0]['id']}").json()
    assert (event["type"], event["source"], event["data"]["marker"]) == (
        "devices.reading",
        "devices",
        marker,
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (lambda b: {}, "missing_signature"),
        (lambda b: {"X-Signature": device_headers(b)["X-Signature"]}, "missing_signature"),
        (lambda b: device_headers(b, secret="not the secret"), "invalid_signature"),
        (lambda b: device_headers(b + b" "), "invalid_signature"),
        (lambda b: device_headers(b, at=time.time() - 3600), "stale_timestamp"),
    ],
    ids=["no-headers", "no-timestamp", "wrong-secret", "tampered-body", "stale"],
)
def test_a_webhook_that_fails_verification_is_401_and_stores_nothing(
    client: httpx.Client, headers: Any, code: str
) -> None:
    marker = uuid.uuid4().hex
    body = orjson.dumps({"marker": marker})
    answer = client.post("/v1/ingest/devices", content=body, headers=headers(body))
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == code
    assert not [
        e
        for e in events(str(client.base_url), source="devices")
        if e["data"].get("marker") == marker
    ]
    assert not [
        d for d in dead_letters(str(client.base_url), source="devices") if marker in d["raw"]
    ]


def test_an_unknown_source_is_404(client: httpx.Client) -> None:
    answer = client.post("/v1/ingest/nowhere", content=b"{}")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_source"


def test_a_body_over_the_limit_is_413(client: httpx.Client) -> None:
    body = b'{"x": "' + b"a" * 70_000 + b'"}'
    answer = client.post("/v1/ingest/devices", content=body, headers=device_headers(body))
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "body_too_large"


def test_a_verified_body_that_is_not_json_is_parked_and_shown_as_a_dead_letter(
    client: httpx.Client,
) -> None:
    body = b"\xff\xfe not json " + uuid.uuid4().hex.encode()
    answer = client.post("/v1/ingest/devices", content=body, headers=device_headers(body))
    assert answer.status_code == 202, answer.text
    parked = answer.json()["dead_letter"]
    assert parked["reason"].startswith("not_json: ")
    letter = client.get(f"/v1/dead-letters/{parked['id']}").json()
    assert set(letter) == {"id", "source", "reason", "raw", "received_at", "topic", "raw_encoding"}
    assert (letter["source"], letter["topic"], letter["raw_encoding"]) == (
        "devices",
        None,
        "base64",
    )
    assert base64.b64decode(letter["raw"]) == body
    failed = client.post(f"/v1/dead-letters/{parked['id']}/redrive")
    assert failed.status_code == 422
    assert failed.json()["error"]["code"] == "redrive_failed"
    assert client.get(f"/v1/dead-letters/{parked['id']}").status_code == 200
    assert client.delete(f"/v1/dead-letters/{parked['id']}").status_code == 204
    assert (
        client.get(f"/v1/dead-letters/{parked['id']}").json()["error"]["code"]
        == "dead_letter_not_found"
    )
    assert client.delete(f"/v1/dead-letters/{parked['id']}").status_code == 404


def test_dead_letters_are_listed_with_filters_and_pages(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex
    ids = []
    for index in range(3):
        body = f"not json {tag} {index}".encode()
        ids.append(
            client.post("/v1/ingest/devices", content=body, headers=device_headers(body)).json()[
                "dead_letter"
            ]["id"]
        )
    first = client.get(
        "/v1/dead-letters", params={"source": "devices", "reason": "not_json", "limit": 2}
    )
    assert first.status_code == 200
    page = first.json()
    assert [d["id"] for d in page["dead_letters"]] == ids[::-1][:2]
    second = client.get(
        "/v1/dead-letters",
        params={"source": "devices", "reason": "not_json", "limit": 2, "cursor": page["next"]},
    )
    assert second.json()["dead_letters"][0]["id"] == ids[0]
    assert all(d["source"] == "github" for d in dead_letters(str(client.base_url), source="github"))
    since = client.get(f"/v1/dead-letters/{ids[1]}").json()["received_at"]
    later = [d["id"] for d in dead_letters(str(client.base_url), source="devices", since=since)]
    assert ids[1] in later and ids[2] in later
    until = client.get(f"/v1/dead-letters/{ids[0]}").json()["received_at"]
    earlier = [d["id"] for d in dead_letters(str(client.base_url), source="devices", until=until)]
    assert ids[0] in earlier
    assert set(later) | set(earlier) >= set(ids)
    bad = client.get("/v1/dead-letters", params={"reason": "whatever"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_parameter")
    assert client.get("/v1/dead-letters", params={"colour": "red"}).status_code == 400
    for letter_id in ids:
        client.delete(f"/v1/dead-letters/{letter_id}")


def post_smartthings(
    client: httpx.Client, payload: dict[str, Any], source: str = "smartthings"
) -> httpx.Response:
    body = orjson.dumps(payload)
    path = f"/v1/ingest/{source}"
    return client.post(path, content=body, headers=smartthings_headers(body, path=path))


def test_smartthings_ping_confirmation_and_device_events_answer_as_documented(
    client: httpx.Client, server: IngestServer, confirm_port: int
) -> None:
    def post(payload: dict[str, Any]) -> httpx.Response:
        return post_smartthings(client, payload)

    ping = post({"lifecycle": "PING", "pingData": {"challenge": "c-123"}})
    assert (ping.status_code, ping.json()) == (200, {"pingData": {"challenge": "c-123"}})

    token = uuid.uuid4().hex
    url = f"http://127.0.0.1:{confirm_port}/apps/a1/confirm-registration?token={token}"
    confirmation = post(
        {"lifecycle": "CONFIRMATION", "confirmationData": {"appId": "a1", "confirmationUrl": url}}
    )
    assert confirmation.status_code == 200, confirmation.text
    assert confirmation.json() == {"targetUrl": f"{server.url}/v1/ingest/smartthings"}
    assert f"/apps/a1/confirm-registration?token={token}" in Confirmations.seen
    log = wait_for(
        lambda: (text := server.log()) and "confirmed (HTTP 200)" in text and text,
        what="the confirmation to be logged",
    )
    # masked where it is logged, and again by the log formatter's filter of credentials
    assert re.search(r"/apps/a1/confirm-registration\?token=(<redacted>|\*+)", log), log
    assert token not in log  # the token confirms the app: never logged at info

    device = str(uuid.uuid4())
    event_id = str(uuid.uuid4())
    payload = {
        "lifecycle": "EVENT",
        "eventData": {
            "authToken": "t",
            "installedApp": {"installedAppId": "i", "locationId": "l"},
            "events": [
                {
                    "eventTime": "2026-11-23T10:00:00Z",
                    "eventType": "DEVICE_EVENT",
                    "deviceEvent": {
                        "eventId": event_id,
                        "locationId": "l",
                        "deviceId": device,
                        "componentId": "main",
                        "capability": "switch",
                        "attribute": "switch",
                        "value": "on",
                        "valueType": "string",
                        "stateChange": True,
                    },
                }
            ],
        },
    }
    first = post(payload)
    assert first.status_code == 200, first.text  # SmartThings expects 200 for every lifecycle
    assert first.json()["eventData"] == {}
    assert first.json()["events"][0]["duplicate"] is False
    again = post(payload)  # SmartThings retried: the eventId dedupes
    assert again.status_code == 200 and again.json()["events"][0]["duplicate"] is True
    (event,) = events(str(client.base_url), subject=device)
    assert (event["type"], event["source"], event["idempotency_key"]) == (
        "device.switch.switch",
        "smartthings",
        event_id,
    )
    assert event["data"]["value"] == "on"


def test_a_smartthings_confirmation_answers_the_configured_target_url(
    client: httpx.Client, confirm_port: int
) -> None:
    url = f"http://127.0.0.1:{confirm_port}/apps/a2/confirm-registration?token=t"
    answer = post_smartthings(
        client,
        {"lifecycle": "CONFIRMATION", "confirmationData": {"appId": "a2", "confirmationUrl": url}},
        source="st_proxied",
    )
    assert (answer.status_code, answer.json()) == (200, {"targetUrl": ST_TARGET_URL})


@pytest.mark.parametrize("lifecycle", ["INSTALL", "UPDATE", "UNINSTALL", "CONFIGURATION"])
def test_other_smartthings_lifecycles_answer_200(client: httpx.Client, lifecycle: str) -> None:
    answer = post_smartthings(client, {"lifecycle": lifecycle})
    assert answer.status_code == 200, answer.text


def test_a_smartthings_request_signed_by_another_key_is_refused(client: httpx.Client) -> None:
    body = b'{"lifecycle": "PING", "pingData": {"challenge": "x"}}'
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = client.post(
        "/v1/ingest/smartthings", content=body, headers=smartthings_headers(body, other)
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_signature"


def smartthings_headers(
    body: bytes, key: rsa.RSAPrivateKey = ST_KEY, path: str = "/v1/ingest/smartthings"
) -> dict[str, str]:
    date = format_datetime(datetime.now(tz=UTC), usegmt=True)
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    signed = f"(request-target): post {path}\ndigest: {digest}\ndate: {date}"
    signature = base64.b64encode(
        key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    return {
        "Date": date,
        "Digest": digest,
        "Authorization": f'Signature keyId="/pl/useast1/k",signature="{signature}",'
        'headers="(request-target) digest date",algorithm="rsa-sha256"',
    }


def test_the_dlq_command_lists_shows_and_redrives(
    client: httpx.Client, server: IngestServer
) -> None:
    app = typer.Typer()
    dlq_command.register(app)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    tag = uuid.uuid4().hex
    body = f"broken {tag}".encode()
    letter_id = client.post(
        "/v1/ingest/devices", content=body, headers=device_headers(body)
    ).json()["dead_letter"]["id"]
    env = {"TIDINGS_URL": server.url, "COLUMNS": "250"}
    listed = runner.invoke(app, ["dlq", "list", "--source", "devices", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert letter_id in listed.output
    shown = runner.invoke(app, ["dlq", "show", letter_id], env=env)
    assert shown.exit_code == 0 and tag in shown.output
    failed = runner.invoke(app, ["dlq", "redrive", letter_id], env=env)
    assert failed.exit_code == 1 and "redrive_failed" in failed.output
    usage = runner.invoke(app, ["dlq", "redrive"], env=env)
    assert usage.exit_code == 2
    deleted = runner.invoke(app, ["dlq", "delete", letter_id], env=env)
    assert deleted.exit_code == 0
    assert client.get(f"/v1/dead-letters/{letter_id}").status_code == 404


def test_unmappable_input_is_redriven_once_after_the_default_type_is_fixed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "tidings.toml", devices_type="devices reading (broken)")
    env = {"TIDINGS_CONFIG": str(config)}
    server = IngestServer(tmp_path / "data", env=env).start()
    body = orjson.dumps({"temperature": 19})
    try:
        parked = httpx.post(
            server.url + "/v1/ingest/devices", content=body, headers=device_headers(body)
        )
        assert parked.status_code == 202, parked.text
        letter_id = parked.json()["dead_letter"]["id"]
        assert parked.json()["dead_letter"]["reason"].startswith("invalid_event")
        assert events(server.url, source="devices") == []
        still = httpx.post(server.url + f"/v1/dead-letters/{letter_id}/redrive")
        assert (still.status_code, still.json()["error"]["code"]) == (422, "redrive_failed")
    finally:
        assert server.stop() == 0

    write_config(config, devices_type="devices.reading")
    server.start()
    try:
        redriven = httpx.post(server.url + f"/v1/dead-letters/{letter_id}/redrive")
        assert redriven.status_code == 200, redriven.text
        (result,) = redriven.json()["events"]
        again = httpx.post(server.url + f"/v1/dead-letters/{letter_id}/redrive")
        assert again.status_code == 404
        (event,) = events(server.url, source="devices")
        assert (event["id"], event["type"], event["data"]) == (
            result["id"],
            "devices.reading",
            {"temperature": 19},
        )
        assert dead_letters(server.url) == []

        for n in range(2):
            raw = f"bulk {n}".encode()
            httpx.post(server.url + "/v1/ingest/devices", content=raw, headers=device_headers(raw))
        bulk = httpx.post(server.url + "/v1/dead-letters/redrive", json={"source": "devices"})
        assert bulk.status_code == 200, bulk.text
        assert (bulk.json()["redriven"], bulk.json()["failed"]) == (0, 2)
        assert len(dead_letters(server.url, source="devices")) == 2
    finally:
        server.stop()
    wait_for(lambda: server.proc is not None and server.proc.poll() is not None, 5, "server exit")
    assert free_port()


def test_the_ingest_and_dead_letter_routes_are_documented_with_exactly_their_methods(
    client: httpx.Client,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        "/v1/ingest/{source}": {"post"},
        "/v1/dead-letters": {"get"},
        "/v1/dead-letters/redrive": {"post"},
        "/v1/dead-letters/{letter_id}": {"get", "delete"},
        "/v1/dead-letters/{letter_id}/redrive": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        assert all(paths[path][m].get("summary") for m in methods)
        concrete = path.replace("{source}", "no-such-thing").replace("{letter_id}", "no-such-thing")
        refused = client.put(concrete)
        assert refused.status_code == 405, path
        assert {m.strip() for m in refused.headers["allow"].split(",")} - {"HEAD"} == {
            m.upper() for m in methods
        }
    assert (
        client.get("/v1/dead-letters/no-such-thing").json()["error"]["code"]
        == "dead_letter_not_found"
    )
    missing = client.post("/v1/dead-letters/no-such-thing/redrive")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "dead_letter_not_found")


def test_dead_letters_and_refusals_are_counted_by_source_and_code(client: httpx.Client) -> None:
    def sample(name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    parked = sample("tidings_dead_letters_total", source="devices", reason="not_json")
    refused = sample("tidings_ingest_refused_total", source="devices", code="invalid_signature")
    ingested = sample("tidings_events_ingested_total", source="devices", transport="webhook")
    body = b"still not json"
    client.post("/v1/ingest/devices", content=body, headers=device_headers(body))
    client.post("/v1/ingest/devices", content=body, headers=device_headers(body, secret="nope"))
    good = b'{"n": 1}'
    client.post("/v1/ingest/devices", content=good, headers=device_headers(good))
    assert sample("tidings_dead_letters_total", source="devices", reason="not_json") == parked + 1
    assert (
        sample("tidings_ingest_refused_total", source="devices", code="invalid_signature")
        == refused + 1
    )
    assert (
        sample("tidings_events_ingested_total", source="devices", transport="webhook")
        == ingested + 1
    )
