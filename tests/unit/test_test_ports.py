"""The test harness's ports stay out of the kernel's ephemeral range (restarts reuse them)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.ports import candidate_ports, ephemeral_range, is_free
from tests.integration.server import free_port


def test_free_ports_lie_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = {free_port() for _ in range(30)}
    assert not [p for p in ports if low <= p <= high]
    assert all(is_free(p) for p in ports)


def test_the_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    file = tmp_path / "ip_local_port_range"
    file.write_text("40000\t50000\n")
    assert ephemeral_range(file) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_candidates_skip_the_range_and_the_well_known_ports() -> None:
    candidates = candidate_ports(32768, 60999)
    assert min(candidates) == 20_000
    assert 32767 in candidates and 61000 in candidates
    assert not [p for p in candidates if 32768 <= p <= 60999]
