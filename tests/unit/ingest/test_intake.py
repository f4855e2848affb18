"""Storing or parking input, the webhook receiver and redrive, over the in-memory store."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tidings.envelope import Limits
from tidings.errors import TidingsError
from tidings.ingest.config import IngestConfig, PgNotifyConfig, SourceConfig
from tidings.ingest.intake import Intake, Parked, RawInput, Stored
from tidings.ingest.mapping import Draft, Unmappable
from tidings.ingest.redrive import Redriver
from tidings.ingest.signatures import (
    GithubVerifier,
    HmacSha256Verifier,
    SignatureError,
    SignedRequest,
)
from tidings.ingest.webhooks import WebhookReceiver
from tidings.publish import Publisher
from tidings.store import Query
from tidings.store.dead_letters import DeadLetterQuery
from tidings.testing import MemoryDeadLetters, MemoryStore

NOW = 1_790_000_000.0


@dataclass
class World:
    store: MemoryStore
    letters: MemoryDeadLetters
    intake: Intake
    config: IngestConfig = field(default_factory=IngestConfig)
    fetched: list[tuple[str, list[Any]]] = field(default_factory=list)

    def redriver(self) -> Redriver:
        return Redriver(self.intake, self.letters, lambda: self.config)

    def receiver(self, allow_private: bool = False) -> WebhookReceiver:
        async def fetch(url: str, addresses: list[Any]) -> int:
            self.fetched.append((url, addresses))
            return 200

        return WebhookReceiver(
            self.intake, allow_private=allow_private, clock=lambda: NOW, fetch=fetch
        )

    async def events(self) -> list[Any]:
        return await self.store.query("default", Query(order="asc", limit=1000))


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = MemoryStore()
    await store.open()
    letters = MemoryDeadLetters()
    yield World(store, letters, Intake(Publisher(store), letters, Limits()))
    await store.close()


def hmac_source(name: str = "devices", default_type: str = "devices.received") -> SourceConfig:
    return SourceConfig(name, "hmac-sha256", default_type, HmacSha256Verifier(b"k"))


def signed(body: bytes, secret: bytes = b"k", **headers: str) -> SignedRequest:
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return SignedRequest.of(
        "POST", "/v1/ingest/devices", {"X-Signature": signature, **headers}, body
    )


async def test_mappable_input_is_stored_through_the_publisher(world: World) -> None:
    outcome = await world.intake.take(
        RawInput("s", "webhook", b"{}"), lambda: [Draft({"type": "a.b", "source": "s"})]
    )
    assert isinstance(outcome, Stored) and not outcome.results[0].duplicate
    assert [e.type for e in await world.events()] == ["a.b"]


async def test_unmappable_input_is_parked_with_raw_bytes_and_reason(world: World) -> None:
    def build() -> list[Draft]:
        raise Unmappable("not_json", "the input is not valid JSON")

    outcome = await world.intake.take(RawInput("mqtt", "mqtt", b"\xff", "t/a"), build)
    assert isinstance(outcome, Parked)
    (letter,) = await world.letters.find(DeadLetterQuery())
    assert (letter.raw, letter.topic, letter.source, letter.reason_code) == (
        b"\xff",
        "t/a",
        "mqtt",
        "not_json",
    )
    assert letter.reason.startswith("not_json: ")
    assert await world.events() == []


async def test_an_idempotency_conflict_is_parked(world: World) -> None:
    item = RawInput("s", "webhook", b"{}")
    await world.intake.take(item, lambda: [Draft({"type": "a", "source": "s", "data": 1}, "k")])
    outcome = await world.intake.take(
        item, lambda: [Draft({"type": "a", "source": "s", "data": 2}, "k")]
    )
    assert isinstance(outcome, Parked) and outcome.problem.code == "idempotency_conflict"


async def test_a_store_that_cannot_commit_is_raised_and_nothing_is_parked(world: World) -> None:
    await world.store.close()
    with pytest.raises(TidingsError) as caught:
        await world.intake.take(RawInput("s", "webhook", b"{}"), lambda: [Draft({"type": "a"})])
    assert caught.value.status == 503
    assert await world.letters.find(DeadLetterQuery()) == []
    await world.store.open()


async def test_a_webhook_with_a_bad_signature_is_refused_and_stores_nothing(world: World) -> None:
    with pytest.raises(SignatureError):
        await world.receiver().receive(hmac_source(), signed(b'{"a": 1}', secret=b"wrong"))
    assert await world.events() == []
    assert await world.letters.find(DeadLetterQuery()) == []


async def test_a_signed_webhook_is_stored_then_its_repeat_is_a_duplicate(world: World) -> None:
    body = orjson.dumps({"type": "reading.taken", "idempotency_key": "r-1", "data": {"t": 20}})
    first = await world.receiver().receive(hmac_source(), signed(body))
    again = await world.receiver().receive(hmac_source(), signed(body))
    assert first.status == 201 and again.status == 200
    assert first.body["events"][0]["id"] == again.body["events"][0]["id"]
    assert again.body["events"][0]["duplicate"] is True
    assert len(await world.events()) == 1


async def test_a_signed_body_that_does_not_map_is_parked_and_answered_202(world: World) -> None:
    answer = await world.receiver().receive(hmac_source(), signed(b"not json"))
    assert answer.status == 202
    letter = await world.letters.get(answer.body["dead_letter"]["id"])
    assert letter is not None and letter.raw == b"not json"
    assert answer.body["dead_letter"]["reason"] == letter.reason


async def test_a_github_dead_letter_keeps_the_headers_its_mapping_needs(world: World) -> None:
    source = SourceConfig("gh", "github", "gh.received", GithubVerifier(b"k"))
    body = b'{"action": "bad action!"}'
    signature = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    request = SignedRequest.of(
        "POST",
        "/",
        {"X-Hub-Signature-256": signature, "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-1"},
        body,
    )
    answer = await world.receiver().receive(source, request)
    assert answer.status == 202
    letter = await world.letters.get(answer.body["dead_letter"]["id"])
    assert letter is not None
    assert letter.headers == {"x-github-event": "issues", "x-github-delivery": "d-1"}


async def test_a_smartthings_confirmation_url_is_requested_only_when_vetted(world: World) -> None:
    source = SourceConfig("st", "smartthings", "st.received", HmacSha256Verifier(b"k"))
    body = orjson.dumps(
        {
            "lifecycle": "CONFIRMATION",
            "confirmationData": {"appId": "a", "confirmationUrl": "http://127.0.0.1:9/confirm"},
        }
    )
    with pytest.raises(TidingsError) as caught:
        await world.receiver().receive(source, signed(body))
    assert (caught.value.status, caught.value.code) == (422, "confirmation_refused")
    assert world.fetched == []
    answer = await world.receiver(allow_private=True).receive(
        source, signed(body), "https://hub/v1/ingest/st"
    )
    assert answer.status == 200 and answer.body == {"targetUrl": "https://hub/v1/ingest/st"}
    assert world.fetched == [("http://127.0.0.1:9/confirm", [ipaddress.ip_address("127.0.0.1")])]


async def test_redrive_after_the_source_is_fixed_stores_once_and_deletes_the_letter(
    world: World,
) -> None:
    world.config = IngestConfig(sources={"devices": hmac_source(default_type="bad type")})
    answer = await world.receiver().receive(world.config.sources["devices"], signed(b'{"t": 1}'))
    letter = await world.letters.get(answer.body["dead_letter"]["id"])
    assert letter is not None

    with pytest.raises(TidingsError) as still:
        await world.redriver().redrive(letter)
    assert (still.value.status, still.value.code) == (422, "redrive_failed")
    assert await world.letters.get(letter.id) is not None

    world.config = IngestConfig(sources={"devices": hmac_source(default_type="devices.reading")})
    results = await world.redriver().redrive(letter)
    assert len(results) == 1 and not results[0].duplicate
    assert await world.letters.get(letter.id) is None
    again = await world.redriver().redrive(letter)  # a repeat (crash before the delete)
    assert again[0].duplicate and again[0].id == results[0].id
    assert [e.type for e in await world.events()] == ["devices.reading"]


async def test_redrive_of_a_source_no_longer_configured_fails_and_keeps_the_letter(
    world: World,
) -> None:
    letter = await world.letters.add(source="gone", reason_code="not_json", reason="r", raw=b"{}")
    with pytest.raises(TidingsError, match="no longer configured"):
        await world.redriver().redrive(letter)
    assert await world.letters.get(letter.id) is not None


async def test_bulk_redrive_counts_what_was_stored_and_what_failed(world: World) -> None:
    world.config = IngestConfig(
        pg_notify=(PgNotifyConfig("postgresql://h/d", "ch", "db.changed", "db"),)
    )
    for raw in (b'{"id": 1}', b'{"id": 2}', b"nope"):
        await world.letters.add(
            source="db", reason_code="not_json", reason="r", raw=raw, topic="ch"
        )
    await world.letters.add(source="other", reason_code="not_json", reason="r", raw=b"{}")
    counts = await world.redriver().redrive_many(DeadLetterQuery(sources=("db",)))
    assert (counts["redriven"], counts["failed"], counts["events"]) == (2, 1, 2)
    assert "not_json" in counts["failures"][0]["error"]
    remaining = await world.letters.find(DeadLetterQuery())
    assert sorted(d.raw for d in remaining) == [b"nope", b"{}"]
