"""Outbound signatures, checked against the independent ``standardwebhooks`` package.

The package treats a ``str`` secret as base64 always (``whsec_`` prefix or not) and a
``bytes`` secret as the raw key; the contract of Tidings is "the base64-decoded part of a
``whsec_`` secret, else the secret's UTF-8 bytes", so plain secrets are handed to it as
bytes, and also checked with HMAC code written here from the specification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tidings.delivery.signing import (
    generate_secret,
    secret_key,
    signature_headers,
    standard_signature,
)
from tidings.store.deliveries import Endpoint, Secret

BODY = b'{"event":{"id":"e-1","type":"order.created","data":{"n":1}},"delivered_at":"x"}'
MSG_ID = "msg_0123456789abcdef"


def now_s() -> int:
    return int(time.time())


def spec_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` straight from the specification."""
    content = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def entries(headers: dict[str, str]) -> list[str]:
    return headers["webhook-signature"].split(" ")


def test_generated_secret_is_whsec_and_base64_of_24_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and second.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 24
    assert first != second


def test_a_whsec_secret_signs_with_its_decoded_bytes_and_verifies_with_standardwebhooks() -> None:
    secret = generate_secret()
    ts = now_s()
    headers = signature_headers([secret], MSG_ID, ts, BODY)
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == str(ts)
    assert Webhook(secret).verify(BODY, headers)["event"]["id"] == "e-1"
    decoded = base64.b64decode(secret.removeprefix("whsec_"))
    assert entries(headers) == [spec_signature(decoded, MSG_ID, ts, BODY)]


def test_a_plain_secret_signs_with_its_utf8_bytes() -> None:
    secret = "correct horse battery staple ✓"
    ts = now_s()
    headers = signature_headers([secret], MSG_ID, ts, BODY)
    assert entries(headers) == [spec_signature(secret.encode(), MSG_ID, ts, BODY)]
    Webhook(secret.encode()).verify(BODY, headers)


def test_a_plain_secret_that_happens_to_be_base64_is_still_used_as_text() -> None:
    secret = "QUJDREVGR0hJSktMTU5PUA=="  # valid base64, but no whsec_ prefix
    headers = signature_headers([secret], MSG_ID, now_s(), BODY)
    Webhook(secret.encode()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)  # the package's str form would decode it


def test_a_whsec_secret_without_base64_padding_verifies_with_standardwebhooks() -> None:
    secret = "whsec_" + base64.b64encode(b"sixteen byte key!").decode().rstrip("=")
    assert not secret.endswith("=")
    headers = signature_headers([secret], MSG_ID, now_s(), BODY)
    Webhook(secret).verify(BODY, headers)
    assert secret_key(secret) == b"sixteen byte key!"


def test_a_whsec_secret_that_is_not_base64_falls_back_to_its_utf8_bytes() -> None:
    secret = "whsec_this is not base64 at all!"
    assert secret_key(secret) == secret.encode()
    headers = signature_headers([secret], MSG_ID, now_s(), BODY)
    Webhook(secret.encode()).verify(BODY, headers)


def test_x_signature_is_hex_hmac_of_the_body_keyed_with_the_newest_secret_string() -> None:
    newest, older = generate_secret(), "an older plain secret"
    headers = signature_headers([newest, older], MSG_ID, now_s(), BODY)
    expected = hmac.new(newest.encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == "sha256=" + expected  # the whsec_ string itself, not decoded


def test_during_a_rotation_every_live_secret_adds_one_v1_entry_that_verifies() -> None:
    live = [generate_secret(), "plain-old-secret-0123", generate_secret()]
    ts = now_s()
    headers = signature_headers(live, MSG_ID, ts, BODY)
    signatures = entries(headers)
    assert len(signatures) == 3 and all(s.startswith("v1,") for s in signatures)
    assert signatures == [standard_signature(s, MSG_ID, ts, BODY) for s in live]
    Webhook(live[0]).verify(BODY, headers)
    Webhook(live[1].encode()).verify(BODY, headers)
    Webhook(live[2]).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_a_changed_body_id_or_timestamp_does_not_verify() -> None:
    secret = generate_secret()
    ts = now_s()
    headers = signature_headers([secret], MSG_ID, ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"1", b"2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(ts - 1)})


def test_an_endpoint_always_has_a_secret_to_sign_with() -> None:
    with pytest.raises(ValueError):
        signature_headers([], MSG_ID, now_s(), BODY)


def test_live_secrets_are_newest_first_and_leave_out_expired_ones() -> None:
    endpoint = Endpoint(
        id="wh_1",
        tenant="default",
        url="https://example.com/",
        events=["#"],
        filter={},
        secrets=[Secret("new-secret-value-1"), Secret("old", 2_000), Secret("older", 1_000)],
        active=True,
        description=None,
        rate_limit=None,
        headers={},
        created_at_us=0,
        updated_at_us=0,
    )
    assert endpoint.live_secrets(500) == ["new-secret-value-1", "old", "older"]
    assert endpoint.live_secrets(1_000) == ["new-secret-value-1", "old"]
    assert endpoint.live_secrets(2_000) == ["new-secret-value-1"]


@settings(max_examples=150, deadline=None)
@given(
    raw_key=st.binary(min_size=16, max_size=64),
    plain=st.text(min_size=16, max_size=40).filter(lambda s: not s.startswith("whsec_")),
    message_id=st.from_regex(r"msg_[0-9a-f]{1,32}", fullmatch=True),
    body=st.binary(max_size=300).map(lambda b: base64.b64encode(b)),  # text, as JSON is
)
def test_any_secret_and_body_verify_with_standardwebhooks(
    raw_key: bytes, plain: str, message_id: str, body: bytes
) -> None:
    whsec = "whsec_" + base64.b64encode(raw_key).decode()
    ts = now_s()
    headers = signature_headers([whsec, plain], message_id, ts, body)
    Webhook(whsec).verify(body, headers, json_parse=False)
    Webhook(plain.encode()).verify(body, headers, json_parse=False)
    assert entries(headers)[1] == spec_signature(plain.encode(), message_id, ts, body)
