"""API keys: generated at random, shown once, stored and looked up by their SHA-256.

A key carries 32 random bytes, so a fast hash is the right one: there is nothing to guess
that a slow key-derivation function would protect (unlike a password).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "tdk_"
ID_PREFIX = "key_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 62**43 > 2**256: every 32-byte value fits
SHOWN_PREFIX = 12  # characters of a key kept to recognise it in lists and audit events
MIN_KEY_LENGTH = 32  # also the least a TIDINGS_BOOTSTRAP_KEY may have
MAX_KEY_LENGTH = 256


def base62(data: bytes, width: int) -> str:
    """``data`` as a big-endian number in base 62, left-padded with zeros to ``width``."""
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def generate_key() -> str:
    """``tdk_`` and 32 random bytes in base 62 (47 characters)."""
    return KEY_PREFIX + base62(secrets.token_bytes(32), _BODY_LENGTH)


def generate_key_id() -> str:
    """``key_`` and 12 random bytes in base 62: an id that reveals nothing of the key."""
    return ID_PREFIX + base62(secrets.token_bytes(12), 17)


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def shown_prefix(key: str) -> str:
    """What lists and audit events show of a key: its first characters, never enough to use."""
    if key.startswith(KEY_PREFIX):
        return key[:SHOWN_PREFIX]
    return key[: SHOWN_PREFIX // 2]  # a chosen bootstrap key: show less of it


def malformed(candidate: str) -> str | None:
    """Why a presented credential cannot be a key (None when it could be one).

    Generated keys are ``tdk_`` + 43 characters; a bootstrap key may be any string of at
    least 32 printable characters. Anything else is refused without a lookup.
    """
    if not candidate:
        return "the API key is empty"
    if len(candidate) < MIN_KEY_LENGTH:
        return f"the API key is malformed: keys have at least {MIN_KEY_LENGTH} characters"
    if len(candidate) > MAX_KEY_LENGTH:
        return f"the API key is malformed: keys have at most {MAX_KEY_LENGTH} characters"
    if not (candidate.isascii() and candidate.isprintable()) or " " in candidate:
        return "the API key is malformed: keys are printable ASCII without spaces"
    return None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: the secret (shown once), its id, hash and shown prefix."""

    id: str
    secret: str
    hash: str
    prefix: str

    @classmethod
    def generate(cls, secret: str | None = None) -> NewKey:
        value = secret if secret is not None else generate_key()
        return cls(generate_key_id(), value, hash_key(value), shown_prefix(value))
