"""Inbound webhooks: verify the signature, answer SmartThings lifecycles, then store or park.

A request that fails verification is refused (401) and nothing is stored. A verified request
whose body cannot be mapped is parked and answered 202, because webhook senders do not retry a
4xx and the input would otherwise be lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from tidings import netguard
from tidings.envelope import PublishContext
from tidings.envelope.ids import trace_id_from_traceparent
from tidings.errors import TidingsError
from tidings.ingest import metrics
from tidings.ingest.config import SourceConfig
from tidings.ingest.inputs import MAPPED_HEADERS, read_webhook
from tidings.ingest.intake import Intake, Parked, RawInput
from tidings.ingest.mapping import Draft, Unmappable
from tidings.ingest.signatures import SignatureError, SignedRequest
from tidings.ingest.smartthings import Confirmation, OtherLifecycle, Ping

log = logging.getLogger("tidings.ingest")
CONFIRM_TIMEOUT_S = 10.0

Fetch = Callable[[str, list[netguard.IPAddress]], Awaitable[int]]
"""GET a vetted URL at one of its vetted addresses; the status code (raises httpx2.HTTPError)."""


async def _fetch(url: str, addresses: list[netguard.IPAddress]) -> int:
    pinned, host_header = netguard.pin_url(url, addresses[0])
    parts = urlsplit(url)
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else None
    async with httpx2.AsyncClient(timeout=CONFIRM_TIMEOUT_S, follow_redirects=False) as client:
        response = await client.get(pinned, headers={"Host": host_header}, extensions=extensions)
        return response.status_code


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


class WebhookReceiver:
    def __init__(
        self,
        intake: Intake,
        *,
        allow_private: bool = False,
        clock: Callable[[], float] = time.time,
        fetch: Fetch = _fetch,
    ) -> None:
        self.intake = intake  # stores the events or parks the body
        self.allow_private = allow_private  # TIDINGS_WEBHOOK_ALLOW_PRIVATE, for confirmation URLs
        self.clock = clock  # epoch seconds, for signature timestamps
        self.fetch = fetch  # requests a vetted SmartThings confirmation URL

    async def receive(
        self, source: SourceConfig, request: SignedRequest, target_url: str = ""
    ) -> Answer:
        try:
            source.check.verify(request, self.clock())
        except SignatureError as error:
            metrics.refused(source.name, error.code)
            raise
        headers = {k: v for k in MAPPED_HEADERS if (v := request.headers.get(k)) is not None}
        item = RawInput(source.name, "webhook", request.body, None, headers, source.tenant)
        try:
            mapped = read_webhook(source, request.body, request.headers)
        except Unmappable as problem:
            return _parked(Parked(await self.intake.park(item, problem), problem))
        if isinstance(mapped, Ping):
            log.info("SmartThings PING on source %s answered", source.name)
            return Answer(200, mapped.answer())
        if isinstance(mapped, Confirmation):
            await self.confirm(source, mapped)
            return Answer(200, {"targetUrl": source.target_url or target_url})
        if isinstance(mapped, OtherLifecycle):
            log.info("SmartThings %s lifecycle on source %s", mapped.lifecycle, source.name)
            return Answer(200, mapped.answer())
        drafts: list[Draft] = mapped
        ctx = PublishContext(
            trace_id=trace_id_from_traceparent(headers.get("traceparent")), tenant=source.tenant
        )
        outcome = await self.intake.take(item, lambda: drafts, ctx)
        if isinstance(outcome, Parked):
            return _parked(outcome)
        results = outcome.results
        status = 201 if any(not r.duplicate for r in results) else 200
        body: dict[str, Any] = {"events": [r.to_dict() for r in results]}
        if source.verifier == "smartthings":
            # SmartThings documents 200 OK with {"eventData": {}} for every EVENT.
            status = 200
            body["eventData"] = {}
        return Answer(status, body)

    async def confirm(self, source: SourceConfig, confirmation: Confirmation) -> None:
        """Request the CONFIRMATION URL once, after vetting it like a webhook destination."""
        url = confirmation.url
        # The URL carries the token that confirms the app: logged whole only at debug level.
        log.info(
            "SmartThings CONFIRMATION on source %s (app %s): %s",
            source.name,
            confirmation.app_id,
            redacted(url),
        )
        log.debug("SmartThings confirmation URL: %s", url)
        try:
            addresses = await asyncio.to_thread(netguard.vet_url, url, self.allow_private)
        except netguard.UnsafeURL as error:
            shown = str(error).replace(url, redacted(url))
            log.warning("SmartThings confirmation URL refused: %s", shown)
            raise TidingsError(
                422, "confirmation_refused", f"the confirmationUrl was not requested: {error}"
            ) from None
        try:
            status = await self.fetch(url, addresses)
        except httpx2.HTTPError as error:
            raise TidingsError(
                502, "confirmation_failed", f"requesting the confirmationUrl failed: {error}"
            ) from None
        if not 200 <= status < 300:
            raise TidingsError(
                502, "confirmation_failed", f"the confirmationUrl answered HTTP {status}"
            )
        log.info("SmartThings app %s confirmed (HTTP %d)", confirmation.app_id, status)


def redacted(url: str) -> str:
    """``url`` without what may be a credential: query values, user info and fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<an invalid URL>"
    query = "&".join(
        f"{pair.split('=', 1)[0]}=<redacted>" for pair in parts.query.split("&") if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _parked(outcome: Parked) -> Answer:
    return Answer(202, {"dead_letter": {"id": outcome.letter.id, "reason": outcome.letter.reason}})
