"""Webhook signature verifiers: HMAC-SHA256, GitHub and Standard Webhooks (no I/O).

Each verifier takes the request as received (``SignedRequest``) and the current time, and
either returns or raises ``SignatureError`` (HTTP 401) with one of three codes:
``missing_signature``, ``invalid_signature``, ``stale_timestamp``. Digests are compared with
``hmac.compare_digest`` so the time taken says nothing about how much of a guess was right.
The signature is checked before the timestamp: only a sender who holds the secret learns that
its clock is off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from tidings.errors import TidingsError

SignatureCode = Literal["missing_signature", "invalid_signature", "stale_timestamp"]
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"-?\d+(\.\d+)?")
WEBHOOK_TOLERANCE_S = 300.0  # Standard Webhooks: five minutes either way


class SignatureError(TidingsError):
    """The request is not signed as the source's verifier requires: 401, nothing stored."""

    def __init__(self, code: SignatureCode, message: str) -> None:
        super().__init__(401, code, message)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An inbound webhook as the verifiers see it: header names in lower case."""

    method: str
    target: str  # the path and query string as received, for HTTP Signatures
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def of(
        cls,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
    ) -> SignedRequest:
        """Lower-case the header names; repeated headers are joined with ``, `` (RFC 9110)."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        joined: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        return cls(method.upper(), target, joined, body)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower())
        return value.strip() if value is not None else None


class Verifier(Protocol):
    def verify(self, request: SignedRequest, now: float) -> None:
        """Return when ``request`` is authentic and fresh at ``now`` (epoch seconds)."""


def hmac_sha256(key: bytes, content: bytes) -> bytes:
    return hmac.new(key, content, hashlib.sha256).digest()


def decode_digest(value: str) -> bytes | None:
    """A SHA-256 digest written as ``sha256=<hex>``, bare hex or base64; None if none of them."""
    text = value.strip()
    if text[:7].lower() == "sha256=":
        text = text[7:]
        return bytes.fromhex(text) if _HEX_DIGEST.fullmatch(text) else None
    if _HEX_DIGEST.fullmatch(text):
        return bytes.fromhex(text)
    decoded = _b64(text)
    return decoded if decoded is not None and len(decoded) == 32 else None


def _b64(text: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None when it is not base64."""
    padded = text + "=" * (-len(text) % 4)
    for alphabet in (b"+/", b"-_"):
        try:
            return base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def parse_timestamp(value: str, header: str) -> float:
    """Epoch seconds from a timestamp header; ``invalid_signature`` when it is not a number."""
    if not _DIGITS.fullmatch(value):
        raise SignatureError("invalid_signature", f"{header} must be a Unix time in seconds")
    return float(value)


def check_fresh(timestamp: float, now: float, tolerance_s: float, header: str) -> None:
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(
            "stale_timestamp",
            f"{header} is {abs(now - timestamp):.0f}s away from the server's clock; "
            f"at most {tolerance_s:.0f}s is accepted",
        )


def _require(request: SignedRequest, header: str) -> str:
    value = request.header(header)
    if not value:
        raise SignatureError("missing_signature", f"the {header} header is missing")
    return value


class HmacSha256Verifier:
    """HMAC-SHA256 of the body (or of ``<timestamp>.<body>`` with a timestamp header)."""

    def __init__(
        self,
        secret: bytes,
        header: str = "X-Signature",
        timestamp_header: str | None = None,
        tolerance_s: float = 300.0,
    ) -> None:
        self.secret = secret  # the key: the configured secret's UTF-8 bytes
        self.header = header  # where the signature is
        self.timestamp_header = timestamp_header  # when set, the timestamp is signed too
        self.tolerance_s = tolerance_s  # how far the timestamp may be from now

    def verify(self, request: SignedRequest, now: float) -> None:
        given = _require(request, self.header)
        content, timestamp = request.body, None
        if self.timestamp_header is not None:
            stamp = _require(request, self.timestamp_header)
            timestamp = parse_timestamp(stamp, self.timestamp_header)
            content = stamp.encode() + b"." + request.body
        digest = decode_digest(given)
        if digest is None:
            raise SignatureError(
                "invalid_signature",
                f"{self.header} must be sha256=<hex>, a hex digest or a base64 digest",
            )
        if not hmac.compare_digest(digest, hmac_sha256(self.secret, content)):
            raise SignatureError("invalid_signature", f"{self.header} does not match the body")
        if timestamp is not None and self.timestamp_header is not None:
            check_fresh(timestamp, now, self.tolerance_s, self.timestamp_header)


class GithubVerifier:
    """GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``."""

    HEADER = "X-Hub-Signature-256"

    def __init__(self, secret: bytes) -> None:
        self.secret = secret  # the webhook secret's UTF-8 bytes, as GitHub uses it

    def verify(self, request: SignedRequest, now: float) -> None:
        given = _require(request, self.HEADER)
        if given[:7].lower() != "sha256=" or not _HEX_DIGEST.fullmatch(given[7:]):
            raise SignatureError("invalid_signature", f"{self.HEADER} must be sha256=<hex>")
        expected = hmac_sha256(self.secret, request.body)
        if not hmac.compare_digest(bytes.fromhex(given[7:]), expected):
            raise SignatureError("invalid_signature", f"{self.HEADER} does not match the body")


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 part of ``whsec_...``, else the UTF-8 bytes.

    Raises ValueError when a ``whsec_`` secret is not base64.
    """
    if secret.startswith("whsec_"):
        key = _b64(secret.removeprefix("whsec_"))
        if not key:
            raise ValueError("a whsec_ secret must be followed by base64")
        return key
    return secret.encode()


class StandardWebhooksVerifier:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (standardwebhooks.com):
    HMAC-SHA256 of ``<id>.<timestamp>.<body>``; several space-separated ``v1,<base64>``
    signatures may be sent (during a key rotation) and one matching is enough."""

    def __init__(self, key: bytes, tolerance_s: float = WEBHOOK_TOLERANCE_S) -> None:
        self.key = key  # see standard_webhooks_key
        self.tolerance_s = tolerance_s  # five minutes by the specification

    def verify(self, request: SignedRequest, now: float) -> None:
        msg_id = _require(request, "webhook-id")
        stamp = _require(request, "webhook-timestamp")
        given = _require(request, "webhook-signature")
        timestamp = parse_timestamp(stamp, "webhook-timestamp")
        expected = hmac_sha256(self.key, f"{msg_id}.{stamp}.".encode() + request.body)
        matched = False
        for entry in given.split():
            version, _, signature = entry.partition(",")
            if version != "v1":
                continue  # other schemes (v1a: asymmetric) are not configured here
            decoded = _b64(signature)
            if decoded is not None and hmac.compare_digest(decoded, expected):
                matched = True
        if not matched:
            raise SignatureError(
                "invalid_signature", "no v1 signature in webhook-signature matches the body"
            )
        check_fresh(timestamp, now, self.tolerance_s, "webhook-timestamp")
