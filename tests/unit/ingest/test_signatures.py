"""Webhook verifiers against signatures made by independent code: Python's hmac as GitHub
documents it, the ``standardwebhooks`` package, and RSA HTTP Signatures built by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from standardwebhooks import Webhook

from tidings.ingest.http_signatures import (
    HttpSignatureVerifier,
    SmartThingsVerifier,
    parse_signature_params,
)
from tidings.ingest.signatures import (
    GithubVerifier,
    HmacSha256Verifier,
    SignatureError,
    SignedRequest,
    StandardWebhooksVerifier,
    standard_webhooks_key,
)

BODY = b'{"action":"opened","number":1}'
NOW = 1_790_000_000.0


def request(
    headers: dict[str, str], body: bytes = BODY, target: str = "/v1/ingest/x"
) -> SignedRequest:
    return SignedRequest.of("POST", target, headers, body)


def refused(verifier: object, req: SignedRequest, code: str, now: float = NOW) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verifier.verify(req, now)  # type: ignore[attr-defined]
    assert caught.value.code == code
    assert caught.value.status == 401
    assert caught.value.message
    return caught.value


# -- GitHub -----------------------------------------------------------------------------------


def github_signature(secret: str, body: bytes) -> str:
    """Exactly as GitHub's documentation computes it."""
    digest = hmac.new(secret.encode("utf-8"), msg=body, digestmod=hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def test_github_documented_test_vector_verifies() -> None:
    verifier = GithubVerifier(b"It's a Secret to Everybody")
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verifier.verify(request({"X-Hub-Signature-256": signature}, b"Hello, World!"), NOW)


def test_github_signature_verifies() -> None:
    GithubVerifier(b"s3cret").verify(
        request({"X-Hub-Signature-256": github_signature("s3cret", BODY)}), NOW
    )


def test_github_signature_with_wrong_secret_is_invalid() -> None:
    req = request({"X-Hub-Signature-256": github_signature("other", BODY)})
    refused(GithubVerifier(b"s3cret"), req, "invalid_signature")


def test_github_signature_of_a_tampered_body_is_invalid() -> None:
    req = request({"X-Hub-Signature-256": github_signature("s3cret", BODY)}, BODY + b" ")
    refused(GithubVerifier(b"s3cret"), req, "invalid_signature")


def test_github_without_signature_header_is_missing_signature() -> None:
    refused(GithubVerifier(b"s3cret"), request({}), "missing_signature")


def test_github_signature_must_carry_its_sha256_prefix() -> None:
    bare = github_signature("s3cret", BODY).removeprefix("sha256=")
    refused(GithubVerifier(b"s3cret"), request({"X-Hub-Signature-256": bare}), "invalid_signature")


# -- hmac-sha256 ------------------------------------------------------------------------------


def digest(secret: str, content: bytes) -> bytes:
    return hmac.new(secret.encode(), content, hashlib.sha256).digest()


@pytest.mark.parametrize(
    "encode",
    [
        lambda d: "sha256=" + d.hex(),
        lambda d: "SHA256=" + d.hex().upper(),
        lambda d: d.hex(),
        lambda d: base64.b64encode(d).decode(),
        lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
    ],
    ids=["prefixed-hex", "upper-case", "bare-hex", "base64", "base64url-unpadded"],
)
def test_hmac_signature_is_accepted_in_every_documented_form(encode: object) -> None:
    value = encode(digest("k", BODY))  # type: ignore[operator]
    HmacSha256Verifier(b"k").verify(request({"X-Signature": value}), NOW)


def test_hmac_header_name_is_configurable() -> None:
    value = "sha256=" + digest("k", BODY).hex()
    HmacSha256Verifier(b"k", header="X-Device-Sig").verify(request({"x-device-sig": value}), NOW)
    refused(
        HmacSha256Verifier(b"k", header="X-Device-Sig"),
        request({"X-Signature": value}),
        "missing_signature",
    )


def test_hmac_signature_with_wrong_secret_or_tampered_body_is_invalid() -> None:
    value = "sha256=" + digest("k", BODY).hex()
    refused(HmacSha256Verifier(b"other"), request({"X-Signature": value}), "invalid_signature")
    refused(HmacSha256Verifier(b"k"), request({"X-Signature": value}, b"{}"), "invalid_signature")


def test_hmac_signature_that_is_not_a_digest_is_invalid() -> None:
    for value in ("sha256=zz", "nothex", "c2hvcnQ=", "sha256=" + "ab" * 31):
        refused(HmacSha256Verifier(b"k"), request({"X-Signature": value}), "invalid_signature")


def test_hmac_with_timestamp_signs_timestamp_dot_body() -> None:
    stamp = str(int(NOW))
    value = digest("k", f"{stamp}.".encode() + BODY).hex()
    verifier = HmacSha256Verifier(b"k", timestamp_header="X-Timestamp", tolerance_s=300)
    verifier.verify(request({"X-Signature": value, "X-Timestamp": stamp}), NOW + 299)


def test_hmac_with_timestamp_refuses_a_stale_timestamp() -> None:
    stamp = str(int(NOW))
    value = digest("k", f"{stamp}.".encode() + BODY).hex()
    verifier = HmacSha256Verifier(b"k", timestamp_header="X-Timestamp", tolerance_s=300)
    req = request({"X-Signature": value, "X-Timestamp": stamp})
    refused(verifier, req, "stale_timestamp", now=NOW + 301)
    refused(verifier, req, "stale_timestamp", now=NOW - 301)


def test_hmac_with_timestamp_refuses_a_changed_timestamp_and_a_missing_one() -> None:
    stamp = str(int(NOW))
    value = digest("k", f"{stamp}.".encode() + BODY).hex()
    verifier = HmacSha256Verifier(b"k", timestamp_header="X-Timestamp")
    refused(
        verifier,
        request({"X-Signature": value, "X-Timestamp": str(int(NOW) + 1)}),
        "invalid_signature",
    )
    refused(verifier, request({"X-Signature": value}), "missing_signature")
    refused(
        verifier, request({"X-Signature": value, "X-Timestamp": "yesterday"}), "invalid_signature"
    )


def test_hmac_body_signature_without_timestamp_does_not_verify_with_timestamp_mode() -> None:
    value = digest("k", BODY).hex()
    verifier = HmacSha256Verifier(b"k", timestamp_header="X-Timestamp")
    refused(
        verifier, request({"X-Signature": value, "X-Timestamp": str(int(NOW))}), "invalid_signature"
    )


# -- Standard Webhooks -------------------------------------------------------------------------

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def standard_headers(signer: Webhook, msg_id: str, at: float, body: bytes = BODY) -> dict[str, str]:
    stamp = datetime.fromtimestamp(at, tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": signer.sign(msg_id, stamp, body.decode()),
    }


def test_standard_webhooks_signature_from_the_reference_package_verifies() -> None:
    verifier = StandardWebhooksVerifier(standard_webhooks_key(WHSEC))
    verifier.verify(request(standard_headers(Webhook(WHSEC), "msg_1", NOW)), NOW + 10)


def test_standard_webhooks_raw_secret_is_its_utf8_bytes() -> None:
    secret = "a plain secret of enough length"
    verifier = StandardWebhooksVerifier(standard_webhooks_key(secret))
    verifier.verify(request(standard_headers(Webhook(secret.encode()), "msg_2", NOW)), NOW)


def test_standard_webhooks_accepts_any_matching_signature_among_several() -> None:
    headers = standard_headers(Webhook(WHSEC), "msg_3", NOW)
    other = standard_headers(Webhook(b"another key of thirty two bytes!"), "msg_3", NOW)
    headers["webhook-signature"] = " ".join(
        ["v1a,bm90IGNoZWNrZWQ=", other["webhook-signature"], headers["webhook-signature"]]
    )
    StandardWebhooksVerifier(standard_webhooks_key(WHSEC)).verify(request(headers), NOW)


def test_standard_webhooks_wrong_secret_or_tampered_body_or_id_is_invalid() -> None:
    verifier = StandardWebhooksVerifier(standard_webhooks_key(WHSEC))
    wrong = standard_headers(Webhook(b"another key of thirty two bytes!"), "m", NOW)
    refused(verifier, request(wrong), "invalid_signature")
    good = standard_headers(Webhook(WHSEC), "m", NOW)
    refused(verifier, request(good, BODY + b"x"), "invalid_signature")
    refused(verifier, request({**good, "webhook-id": "other"}), "invalid_signature")


def test_standard_webhooks_refuses_timestamps_more_than_five_minutes_away() -> None:
    verifier = StandardWebhooksVerifier(standard_webhooks_key(WHSEC))
    req = request(standard_headers(Webhook(WHSEC), "m", NOW))
    verifier.verify(req, NOW + 299)
    refused(verifier, req, "stale_timestamp", now=NOW + 301)
    refused(verifier, req, "stale_timestamp", now=NOW - 301)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_webhooks_missing_header_is_missing_signature(missing: str) -> None:
    headers = standard_headers(Webhook(WHSEC), "m", NOW)
    del headers[missing]
    refused(
        StandardWebhooksVerifier(standard_webhooks_key(WHSEC)),
        request(headers),
        "missing_signature",
    )


def test_whsec_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        standard_webhooks_key("whsec_!!!not base64!!!")


# -- SmartThings: HTTP Signatures (RSA-SHA256) ----------------------------------------------------

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
TARGET = "/v1/ingest/smartthings"


def http_signed(
    body: bytes = BODY,
    *,
    key: rsa.RSAPrivateKey = KEY,
    date: float = NOW,
    signed: tuple[str, ...] = ("(request-target)", "digest", "date"),
    digest_body: bytes | None = None,
    digest_label: str = "SHA-256",
    header: str = "Authorization",
) -> dict[str, str]:
    """Headers as a SmartThings-style sender builds them (draft-cavage-http-signatures-12)."""
    headers = {
        "Date": format_datetime(datetime.fromtimestamp(date, tz=UTC), usegmt=True),
        "Digest": f"{digest_label}="
        + base64.b64encode(
            hashlib.sha256(body if digest_body is None else digest_body).digest()
        ).decode(),
        "Content-Type": "application/json",
    }
    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): post {TARGET}")
        else:
            lines.append(f"{name}: {headers[name.title()]}")
    signature = key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    params = (
        f'keyId="/pl/useast2/1a-2b-3c",signature="{base64.b64encode(signature).decode()}",'
        f'headers="{" ".join(signed)}",algorithm="rsa-sha256"'
    )
    headers[header] = f"Signature {params}" if header == "Authorization" else params
    return headers


def smartthings() -> SmartThingsVerifier:
    return SmartThingsVerifier(http_signature=HttpSignatureVerifier(KEY.public_key(), 300))


def st_request(headers: dict[str, str], body: bytes = BODY) -> SignedRequest:
    return SignedRequest.of("POST", TARGET, headers, body)


def test_http_signature_over_target_digest_and_date_verifies() -> None:
    smartthings().verify(st_request(http_signed()), NOW + 5)


def test_http_signature_in_a_signature_header_and_sha256_digest_label_verify() -> None:
    smartthings().verify(st_request(http_signed(header="Signature", digest_label="SHA256")), NOW)


def test_http_signature_by_another_key_is_invalid() -> None:
    refused(smartthings(), st_request(http_signed(key=OTHER_KEY)), "invalid_signature")


def test_http_signature_with_a_body_that_does_not_match_the_digest_is_invalid() -> None:
    refused(smartthings(), st_request(http_signed(), BODY + b" "), "invalid_signature")


def test_http_signature_over_a_digest_of_another_body_is_invalid() -> None:
    headers = http_signed(digest_body=b"{}")
    refused(smartthings(), st_request(headers), "invalid_signature")


def test_http_signature_must_cover_the_digest() -> None:
    headers = http_signed(signed=("(request-target)", "date"))
    refused(smartthings(), st_request(headers), "invalid_signature")


def test_http_signature_for_another_path_is_invalid() -> None:
    req = SignedRequest.of("POST", "/v1/ingest/other", http_signed(), BODY)
    refused(smartthings(), req, "invalid_signature")


def test_http_signature_with_a_stale_date_is_refused() -> None:
    refused(smartthings(), st_request(http_signed(date=NOW - 600)), "stale_timestamp")


def test_http_signature_missing_is_missing_signature() -> None:
    headers = http_signed()
    del headers["Authorization"]
    refused(smartthings(), st_request(headers), "missing_signature")


def test_http_signature_parameters_that_do_not_parse_are_invalid() -> None:
    with pytest.raises(SignatureError):
        parse_signature_params('keyId="a",,signature')
    assert parse_signature_params('keyId="a", signature="b=",created=1402170695') == {
        "keyid": "a",
        "signature": "b=",
        "created": "1402170695",
    }


def test_smartthings_hmac_mode_verifies_like_hmac_sha256() -> None:
    verifier = SmartThingsVerifier(hmac_verifier=HmacSha256Verifier(b"k"))
    verifier.verify(request({"X-Signature": digest("k", BODY).hex()}), NOW)
    refused(verifier, request({"X-Signature": digest("x", BODY).hex()}), "invalid_signature")


def test_verifiers_use_a_timing_safe_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    GithubVerifier(b"s").verify(request({"X-Hub-Signature-256": github_signature("s", BODY)}), NOW)
    HmacSha256Verifier(b"k").verify(request({"X-Signature": digest("k", BODY).hex()}), NOW)
    StandardWebhooksVerifier(standard_webhooks_key(WHSEC)).verify(
        request(standard_headers(Webhook(WHSEC), "m", NOW)), NOW
    )
    assert len(calls) >= 3


def test_signed_request_joins_repeated_headers_and_ignores_case() -> None:
    req = SignedRequest.of("post", "/x", [("A", "1"), ("a", "2")], b"")
    assert req.header("A") == "1, 2"
    assert req.method == "POST"
