"""``tidings.webhooks.verify`` against what the server signs and the standardwebhooks library."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from tidings.delivery.signing import generate_secret, signature_headers
from tidings.webhooks import WebhookVerificationError, verify, verify_signature

BODY = b'{"event": {"id": "e1", "type": "door.opened"}, "delivered_at": "2026-11-23T10:00:00Z"}'
NOW = 1_800_000_000


def signed(*secrets: str, body: bytes = BODY, at: int = NOW) -> dict[str, str]:
    return signature_headers(list(secrets), "msg_1", at, body)


def test_a_delivery_verifies_and_gives_its_json() -> None:
    secret = generate_secret()
    assert verify(BODY, signed(secret), secret, now=NOW)["event"]["id"] == "e1"


def test_the_standardwebhooks_library_accepts_what_the_server_signs() -> None:
    secret = generate_secret()
    headers = signed(secret, at=int(time.time()))
    assert standardwebhooks.Webhook(secret).verify(BODY, headers)["event"]["id"] == "e1"


def test_verify_accepts_what_the_standardwebhooks_library_signs() -> None:
    secret = generate_secret()
    moment = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign("msg_2", moment, BODY.decode()),
    }
    assert verify(BODY, headers, secret)["event"]["type"] == "door.opened"


def test_any_of_the_signatures_of_a_rotation_verifies_with_either_secret() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signed(new, old)
    verify_signature(BODY, headers, old, now=NOW)
    verify_signature(BODY, headers, [generate_secret(), new], now=NOW)


def test_a_plain_secret_string_is_its_own_utf8_key() -> None:
    secret = "a plain secret of 16+ characters"
    verify_signature(BODY, signed(secret), secret, now=NOW)


def test_header_names_are_matched_without_regard_to_case() -> None:
    secret = generate_secret()
    headers = {name.upper(): value for name, value in signed(secret).items()}
    verify_signature(BODY, headers, secret, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
    ],
    ids=["body", "id", "signature", "no-timestamp", "bad-timestamp"],
)
def test_a_tampered_request_is_refused(tamper: object) -> None:
    secret = generate_secret()
    headers, body = tamper(signed(secret), BODY)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError):
        verify_signature(body, headers, secret, now=NOW)


def test_a_stale_or_future_timestamp_is_refused() -> None:
    secret = generate_secret()
    for at in (NOW - 301, NOW + 301):
        with pytest.raises(WebhookVerificationError, match="too old or too far ahead"):
            verify_signature(BODY, signed(secret, at=at), secret, now=NOW)


def test_the_wrong_secret_is_refused() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_signature(BODY, signed(generate_secret()), generate_secret(), now=NOW)


def test_x_signature_alone_verifies_and_a_wrong_one_is_refused() -> None:
    secret = generate_secret()
    digest = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert verify(BODY, {"X-Signature": f"sha256={digest}"}, secret)["event"]["id"] == "e1"
    with pytest.raises(WebhookVerificationError):
        verify(BODY, {"X-Signature": "sha256=" + "0" * 64}, secret)


def test_no_signature_header_or_no_secret_is_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook-signature"):
        verify(BODY, {}, generate_secret())
    with pytest.raises(WebhookVerificationError, match="no secret"):
        verify(BODY, signed("x" * 20), [])


def test_a_signed_body_that_is_not_json_is_refused_by_verify() -> None:
    secret = generate_secret()
    with pytest.raises(WebhookVerificationError, match="not JSON"):
        verify(b"not json", signed(secret, body=b"not json"), secret, now=NOW)
