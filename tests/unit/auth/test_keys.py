"""Keys: format, randomness, hashing, what is shown, and what is refused unseen."""

from __future__ import annotations

import hashlib
import re

import pytest

from tidings.auth.keys import (
    KEY_PREFIX,
    NewKey,
    base62,
    generate_key,
    generate_key_id,
    hash_key,
    malformed,
    shown_prefix,
)


def test_a_generated_key_is_tdk_and_43_base62_characters() -> None:
    key = generate_key()
    assert re.fullmatch(r"tdk_[0-9A-Za-z]{43}", key)
    assert malformed(key) is None


def test_generated_keys_and_ids_do_not_repeat() -> None:
    assert len({generate_key() for _ in range(2000)}) == 2000
    assert len({generate_key_id() for _ in range(2000)}) == 2000
    assert all(generate_key_id().startswith("key_") for _ in range(10))


def test_base62_keeps_every_32_byte_value_in_43_characters() -> None:
    assert base62(b"\x00" * 32, 43) == "0" * 43
    top = base62(b"\xff" * 32, 43)
    assert len(top) == 43
    assert int.from_bytes(b"\xff" * 32, "big") == _decode(top)
    assert _decode(base62(b"\x01\x02\x03", 43)) == 0x010203


def _decode(text: str) -> int:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    value = 0
    for char in text:
        value = value * 62 + alphabet.index(char)
    return value


def test_a_key_is_stored_as_the_hex_sha256_of_its_text() -> None:
    key = generate_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(key) != hash_key(key + "x")


def test_the_shown_prefix_is_never_enough_to_use_the_key() -> None:
    key = generate_key()
    assert shown_prefix(key) == key[:12]
    assert shown_prefix(key).startswith(KEY_PREFIX)
    chosen = "my-own-bootstrap-key-of-forty-characters"
    assert shown_prefix(chosen) == chosen[:6]


def test_new_key_carries_the_hash_and_prefix_of_its_secret() -> None:
    new = NewKey.generate()
    assert new.hash == hash_key(new.secret)
    assert new.prefix == shown_prefix(new.secret)
    chosen = NewKey.generate("x" * 40)
    assert chosen.secret == "x" * 40


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("", "empty"),
        ("tdk_short", "at least 32"),
        ("x" * 257, "at most 256"),
        ("tdk_" + "a" * 30 + " " + "b" * 10, "printable ASCII"),
        ("tdk_" + "é" * 40, "printable ASCII"),
        ("tdk_" + "a" * 30 + "\n" + "b" * 10, "printable ASCII"),
    ],
)
def test_malformed_keys_are_refused_with_a_reason(candidate: str, reason: str) -> None:
    problem = malformed(candidate)
    assert problem is not None and reason in problem


def test_a_key_of_another_prefix_is_well_formed_and_simply_unknown() -> None:
    # wrong prefixes are not singled out: they are looked up and found to be no key
    assert malformed("sk_live_" + "a" * 40) is None
