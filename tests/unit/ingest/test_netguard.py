"""Vetting outbound URLs: only public addresses, unless private ones are allowed."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from tidings.netguard import UnsafeURL, allow_private_from_env, pin_url, vet_url


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> Sequence[str]:
        return addresses

    return resolve


def failing(host: str, port: int) -> Sequence[str]:
    raise OSError("Name or service not known")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.1.1",
        "fe80::1",
        "fc00::1",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "::",
        "100.64.0.1",
        "240.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
    ],
)
def test_private_loopback_and_reserved_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeURL, match="TIDINGS_WEBHOOK_ALLOW_PRIVATE"):
        vet_url("https://hooks.example/x", False, resolve=resolver(address))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fe80::1"])
def test_private_addresses_are_allowed_with_the_flag(address: str) -> None:
    found = vet_url("http://hooks.internal/x", True, resolve=resolver(address))
    assert found == [ipaddress.ip_address(address)]


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254"]
)
def test_cloud_metadata_addresses_are_refused_even_with_the_flag(address: str) -> None:
    for allow in (False, True):
        with pytest.raises(UnsafeURL, match="metadata"):
            vet_url("http://x.example/latest/meta-data/", allow, resolve=resolver(address))


def test_public_addresses_are_returned() -> None:
    found = vet_url(
        "https://api.example/x", False, resolve=resolver("93.184.216.34", "2606:2800:220:1::1")
    )
    assert [str(a) for a in found] == ["93.184.216.34", "2606:2800:220:1::1"]


def test_one_private_address_among_public_ones_refuses_the_url() -> None:
    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.5"):
        vet_url("https://api.example/x", False, resolve=resolver("93.184.216.34", "10.0.0.5"))


def test_literal_addresses_are_vetted_without_resolving() -> None:
    with pytest.raises(UnsafeURL, match="loopback"):
        vet_url("http://127.0.0.1:8080/x", False, resolve=failing)
    with pytest.raises(UnsafeURL):
        vet_url("http://[::1]/x", False, resolve=failing)
    assert vet_url("http://8.8.8.8/x", False, resolve=failing) == [ipaddress.ip_address("8.8.8.8")]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://x",
        "http:///nohost",
        "example.com",
        "http://[::1/",
    ],
)
def test_urls_that_are_not_http_with_a_host_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        vet_url(url, True, resolve=resolver("93.184.216.34"))


def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeURL, match="does not resolve"):
        vet_url("https://nowhere.invalid/", False, resolve=failing)
    with pytest.raises(UnsafeURL, match="does not resolve"):
        vet_url("https://nowhere.invalid/", False, resolve=resolver())


def test_localhost_resolved_for_real_is_refused() -> None:
    with pytest.raises(UnsafeURL, match="loopback"):
        vet_url("http://localhost:9/", False)


def test_the_resolver_is_asked_for_the_urls_port() -> None:
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        asked.append((host, port))
        return ["93.184.216.34"]

    vet_url("https://a.example/x", False, resolve=resolve)
    vet_url("http://b.example:8080/x", False, resolve=resolve)
    assert asked == [("a.example", 443), ("b.example", 8080)]


def test_pinning_replaces_the_host_by_the_vetted_address_and_keeps_the_host_header() -> None:
    v4, v6 = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800::1")
    assert pin_url("https://a.example:8443/p?q=1", v4) == (
        "https://93.184.216.34:8443/p?q=1",
        "a.example:8443",
    )
    assert pin_url("http://a.example/p", v6) == ("http://[2606:2800::1]/p", "a.example")


def test_the_allow_private_flag_reads_like_a_boolean_setting() -> None:
    assert allow_private_from_env({"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true"})
    assert allow_private_from_env({"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "1"})
    assert not allow_private_from_env({"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "false"})
    assert not allow_private_from_env({})
