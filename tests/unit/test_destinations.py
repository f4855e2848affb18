"""Where a webhook may be sent: URL checks, address vetting and the pinned target.

Name resolution is replaced by a table, so these tests never touch the network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from tidings.delivery import destinations
from tidings.delivery.destinations import DestinationRefused, IPAddress, check_url, vet

NAMES = {
    "hooks.example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:4700:4700::1111"],
    "mixed.example.com": ["93.184.216.34", "10.1.2.3"],
    "rebind.example.com": ["127.0.0.1"],
    "localhost": ["::1", "127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "metadata.google.internal.": ["169.254.169.254"],
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Resolve from ``NAMES``; records the names asked for."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        asked.append(host)
        if host not in NAMES:
            raise DestinationRefused(f"cannot resolve {host!r}")
        return [ipaddress.ip_address(a) for a in NAMES[host]]

    monkeypatch.setattr(destinations, "resolve", resolve)
    yield asked


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "/relative/path",
        "hooks.example.com/hook",
        "http://",
        "https://user:pass@hooks.example.com/hook",
        "https://token@hooks.example.com/hook",
        "http://hooks.example.com:99999/",
    ],
)
async def test_urls_that_are_not_absolute_http_without_credentials_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url)
    with pytest.raises(DestinationRefused):
        await vet(url, allow_private=True)


def test_check_url_gives_scheme_host_and_default_port() -> None:
    assert check_url("https://Hooks.Example.com/x") == ("https", "hooks.example.com", 443)
    assert check_url("http://hooks.example.com/x") == ("http", "hooks.example.com", 80)
    assert check_url("http://hooks.example.com:8080") == ("http", "hooks.example.com", 8080)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://127.1.2.3/",
        "http://10.0.0.8/",
        "http://172.16.4.4/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://169.254.1.1/",  # link-local
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]:8000/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        "http://localhost:8000/",
        "http://rebind.example.com/",
        "http://mixed.example.com/",  # one private address is enough to refuse
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata.google.internal./computeMetadata/v1/",
    ],
)
async def test_private_loopback_link_local_and_metadata_destinations_are_refused(
    url: str,
) -> None:
    with pytest.raises(DestinationRefused):
        await vet(url, allow_private=False)


async def test_the_refusal_names_the_address_and_the_setting_that_allows_it() -> None:
    with pytest.raises(DestinationRefused) as refused:
        await vet("http://rebind.example.com/", allow_private=False)
    message = str(refused.value)
    assert "127.0.0.1" in message and "TIDINGS_WEBHOOK_ALLOW_PRIVATE" in message


async def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(DestinationRefused, match="resolve"):
        await vet("https://nowhere.invalid/hook", allow_private=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://[::1]/", "http://10.0.0.8/"])
async def test_allow_private_lets_local_addresses_through_unchanged(url: str) -> None:
    target = await vet(url, allow_private=True)
    assert target.urls == (url,)
    assert target.host_header is None and target.sni_hostname is None


async def test_a_local_name_is_pinned_to_every_vetted_address_when_private_is_allowed() -> None:
    target = await vet("https://localhost:8443/x?y=1", allow_private=True)
    assert target.urls == ("https://[::1]:8443/x?y=1", "https://127.0.0.1:8443/x?y=1")
    assert (target.host_header, target.sni_hostname) == ("localhost:8443", "localhost")


async def test_a_name_that_rebinds_to_metadata_is_refused_when_private_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(NAMES, "rebind.example.com", ["127.0.0.1", "169.254.169.254"])
    with pytest.raises(DestinationRefused, match="cloud metadata"):
        await vet("http://rebind.example.com/", allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata.google.internal./computeMetadata/v1/",
    ],
)
async def test_cloud_metadata_stays_refused_even_when_private_destinations_are_allowed(
    url: str,
) -> None:
    with pytest.raises(DestinationRefused, match="metadata"):
        await vet(url, allow_private=True)


async def test_a_public_address_is_accepted_as_it_is() -> None:
    target = await vet("http://93.184.216.34/hook?x=1", allow_private=False)
    assert target.url == "http://93.184.216.34/hook?x=1"
    assert target.sni_hostname is None


async def test_a_public_name_is_pinned_to_the_vetted_address_keeping_path_and_query() -> None:
    target = await vet("https://Hooks.Example.com:8443/in/orders?tenant=a&x=%20y", False)
    assert target.url == "https://93.184.216.34:8443/in/orders?tenant=a&x=%20y"
    assert target.host_header == "Hooks.Example.com:8443"
    assert target.sni_hostname == "hooks.example.com"


async def test_plain_http_is_pinned_without_sni() -> None:
    target = await vet("http://hooks.example.com/in", allow_private=False)
    assert target.url == "http://93.184.216.34/in"
    assert target.host_header == "hooks.example.com"
    assert target.sni_hostname is None


async def test_an_ipv6_address_is_pinned_in_brackets() -> None:
    target = await vet("https://v6.example.com/in", allow_private=False)
    assert target.url == "https://[2606:4700:4700::1111]/in"
    assert target.host_header == "v6.example.com"
    assert target.sni_hostname == "v6.example.com"


async def test_every_delivery_resolves_again(fake_dns: list[str]) -> None:
    for _ in range(3):
        await vet("https://hooks.example.com/in", allow_private=False)
    assert fake_dns == ["hooks.example.com"] * 3
