"""Signatures of outbound webhook requests (no I/O).

Two schemes ride on every request (DESIGN.md section 4):

* Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
  ``<webhook-id>.<webhook-timestamp>.<body>``, one ``v1,`` entry per live secret during a
  rotation. The key is the base64-decoded part of a ``whsec_`` secret, else its UTF-8 bytes.
* ``X-Signature: sha256=<hex HMAC-SHA256 of the body>`` keyed with the newest secret string
  exactly as shown (UTF-8), for receivers that only know plain HMAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
MIN_SECRET_LENGTH = 16


def generate_secret() -> str:
    """``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: a ``whsec_`` secret's decoded bytes, else its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            # Padding is optional, as in the Standard Webhooks libraries receivers verify with.
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` entry of the ``webhook-signature`` header."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    live_secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The signing headers; ``live_secrets`` is newest first and never empty."""
    if not live_secrets:
        raise ValueError("an endpoint always has at least one secret")
    newest = live_secrets[0]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(s, message_id, timestamp, body) for s in live_secrets
        ),
        "X-Signature": "sha256=" + hmac.new(newest.encode(), body, hashlib.sha256).hexdigest(),
    }
