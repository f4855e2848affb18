"""HTTP Signatures (draft-cavage-http-signatures) with RSA-SHA256, as SmartThings signs its
webhook requests, and the SmartThings verifier that picks it or the HMAC mode (no I/O).

The signature covers the listed headers, not the body; the body is covered through the
``Digest: SHA-256=<base64>`` header, so that header must be among the signed ones and must
match the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from email.utils import parsedate_to_datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tidings.ingest.signatures import (
    HmacSha256Verifier,
    SignatureError,
    SignedRequest,
    check_fresh,
)

_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([0-9.]+))\s*(?:,|$)')
ALGORITHMS = ("rsa-sha256", "hs2019")  # hs2019: the algorithm follows from the key (RSA here)


def parse_signature_params(value: str) -> dict[str, str]:
    """``keyId="..",signature="..",headers=".."`` as a dict; ``invalid_signature`` if not."""
    params: dict[str, str] = {}
    position = 0
    text = value.strip()
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None:
            raise SignatureError("invalid_signature", "the Signature parameters are malformed")
        params[match.group(1).lower()] = (
            match.group(2) if match.group(2) is not None else match.group(3)
        )
        position = match.end()
    return params


def _signature_header(request: SignedRequest) -> str:
    authorization = request.header("authorization") or ""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() == "signature" and rest:
        return rest
    signature = request.header("signature")
    if signature:
        return signature
    raise SignatureError(
        "missing_signature", "neither an Authorization: Signature nor a Signature header is present"
    )


def signing_string(request: SignedRequest, names: list[str], params: dict[str, str]) -> str:
    """The lines that were signed, in the order the ``headers`` parameter lists them."""
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {request.method.lower()} {request.target}")
        elif name in ("(created)", "(expires)"):
            value = params.get(name[1:-1])
            if value is None:
                raise SignatureError("invalid_signature", f"{name} is signed but not given")
            lines.append(f"{name}: {value}")
        else:
            value = request.header(name)
            if value is None:
                raise SignatureError("invalid_signature", f"the signed header {name} is missing")
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def body_digest_matches(header: str, body: bytes) -> bool:
    """Whether a ``Digest`` header's SHA-256 entry (``SHA-256=`` or ``SHA256=``) is the body's."""
    expected = hashlib.sha256(body).digest()
    for entry in header.split(","):
        algorithm, _, value = entry.strip().partition("=")
        if algorithm.strip().upper().replace("-", "") == "SHA256":
            try:
                given = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(given, expected)
    return False


class HttpSignatureVerifier:
    """RSA-SHA256 HTTP Signatures against one configured public key."""

    def __init__(self, public_key: rsa.RSAPublicKey, tolerance_s: float = 300.0) -> None:
        self.public_key = public_key  # the sender's key, from the configured PEM file
        self.tolerance_s = tolerance_s  # how far a signed Date may be from now

    def verify(self, request: SignedRequest, now: float) -> None:
        params = parse_signature_params(_signature_header(request))
        signature_b64 = params.get("signature")
        if not signature_b64:
            raise SignatureError("invalid_signature", "the Signature has no signature parameter")
        algorithm = params.get("algorithm", "rsa-sha256").lower()
        if algorithm not in ALGORITHMS:
            raise SignatureError("invalid_signature", f"unsupported algorithm {algorithm!r}")
        names = params.get("headers", "date").lower().split()
        if "digest" not in names:
            raise SignatureError("invalid_signature", "the Digest header must be signed")
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("invalid_signature", "the signature is not base64") from None
        content = signing_string(request, names, params).encode()
        try:
            self.public_key.verify(signature, content, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SignatureError(
                "invalid_signature", "the signature does not match the signed headers"
            ) from None
        if not body_digest_matches(request.header("digest") or "", request.body):
            raise SignatureError("invalid_signature", "the Digest header does not match the body")
        if "date" in names:
            check_fresh(_date(request.header("date") or ""), now, self.tolerance_s, "Date")


def _date(value: str) -> float:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        raise SignatureError("invalid_signature", "the signed Date header is not a date") from None


class SmartThingsVerifier:
    """SmartThings requests: HTTP Signatures with the configured key, or the HMAC mode."""

    def __init__(
        self,
        *,
        hmac_verifier: HmacSha256Verifier | None = None,
        http_signature: HttpSignatureVerifier | None = None,
    ) -> None:
        if (hmac_verifier is None) == (http_signature is None):
            raise ValueError("a SmartThings source verifies by a secret or by a public key")
        self.mode = hmac_verifier or http_signature  # exactly one of them

    def verify(self, request: SignedRequest, now: float) -> None:
        assert self.mode is not None
        self.mode.verify(request, now)
