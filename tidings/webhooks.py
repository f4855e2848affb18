"""Verify a webhook request from Tidings, for receivers (no server dependency).

Every delivery carries two signatures (DESIGN.md section 4); checking either is enough:

* Standard Webhooks: ``webhook-signature: v1,<base64>`` over ``<webhook-id>.<webhook-timestamp>
  .<body>``, keyed with the base64-decoded part of a ``whsec_`` secret (else its UTF-8 bytes).
  The timestamp must be within ``tolerance_s`` of now, so a captured request cannot be replayed
  later. During a rotation the header holds one ``v1,`` entry per live secret.
* ``X-Signature: sha256=<hex>``: HMAC-SHA256 of the body keyed with the secret string exactly as
  shown (UTF-8). It signs no timestamp, so prefer the first where you can.

    from tidings.webhooks import verify, WebhookVerificationError

    try:
        payload = verify(request_body, request_headers, "whsec_...")
    except WebhookVerificationError:
        return 401
    event = payload["event"]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tidings.delivery.signing import standard_signature

DEFAULT_TOLERANCE_S = 300

__all__ = ["DEFAULT_TOLERANCE_S", "WebhookVerificationError", "verify", "verify_signature"]


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh delivery signed with the given secret."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, found in headers.items():
        if key.lower() == wanted:
            return found
    return None


def _secrets(secret: str | Iterable[str]) -> list[str]:
    found = [secret] if isinstance(secret, str) else list(secret)
    if not found or not all(found):
        raise WebhookVerificationError("no secret to verify with")
    return found


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookVerificationError` unless ``body`` is signed with ``secret``
    (or one of several, while you rotate). The Standard Webhooks signature is checked when
    present, else ``X-Signature``."""
    keys = _secrets(secret)
    signatures = _header(headers, "webhook-signature")
    if signatures is not None:
        _verify_standard(body, headers, signatures, keys, tolerance_s, now)
        return
    plain = _header(headers, "x-signature")
    if plain is None:
        raise WebhookVerificationError("no webhook-signature or X-Signature header")
    _verify_plain(body, plain, keys)


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check the signature (see :func:`verify_signature`), then return the JSON body:
    ``{"event": {...}, "delivered_at": "..."}``."""
    verify_signature(body, headers, secret, tolerance_s=tolerance_s, now=now)
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None


def _verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    signatures: str,
    keys: list[str],
    tolerance_s: float,
    now: float | None,
) -> None:
    message_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    if not message_id or stamp is None:
        raise WebhookVerificationError("webhook-id and webhook-timestamp are required")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too old or too far ahead")
    offered = [entry for entry in signatures.split() if entry.startswith("v1,")]
    for key in keys:
        expected = standard_signature(key, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, entry) for entry in offered):
            return
    raise WebhookVerificationError("no webhook-signature entry matches the secret")


def _verify_plain(body: bytes, header: str, keys: list[str]) -> None:
    offered = header.strip().removeprefix("sha256=").lower()
    for key in keys:
        expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, offered):
            return
    raise WebhookVerificationError("X-Signature does not match the secret")
