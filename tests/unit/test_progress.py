"""The stall deadline follows the kernel's queue of unsent bytes."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tidings.streams.progress import ProgressWatch, unsent_bytes


async def _wait_with_watch(stall_s: float, hold_s: float, unsent: list[int] | None) -> bool:
    """True when a send that takes ``hold_s`` finishes before its deadline."""
    values = iter(unsent or [])
    last = [0]

    def look() -> int | None:
        last[0] = next(values, last[0])
        return last[0]

    try:
        async with asyncio.timeout(stall_s) as deadline:
            watch = ProgressWatch(deadline, stall_s, look if unsent is not None else None)
            try:
                await asyncio.sleep(hold_s)
            finally:
                watch.cancel()
    except TimeoutError:
        return False
    return True


async def test_a_queue_that_keeps_shrinking_keeps_the_send_alive_past_the_stall_time() -> None:
    shrinking = list(range(10_000, 0, -100))
    assert await _wait_with_watch(0.2, 0.6, shrinking)


async def test_a_queue_that_does_not_move_lets_the_deadline_fire() -> None:
    assert not await _wait_with_watch(0.2, 0.6, [5_000] * 50)


async def test_without_a_way_to_look_the_plain_deadline_applies() -> None:
    assert not await _wait_with_watch(0.2, 0.6, None)


async def test_a_queue_that_stops_shrinking_fires_one_stall_time_after_the_last_progress() -> None:
    started = asyncio.get_running_loop().time()
    values = [900, 800, 700] + [700] * 50
    assert not await _wait_with_watch(0.2, 2.0, values)
    elapsed = asyncio.get_running_loop().time() - started
    # Not before one stall time (0.2 s) after the last progress; before the send ended (2.0 s).
    assert 0.3 < elapsed < 2.0


def test_unsent_bytes_reads_a_real_socket_and_is_none_without_one() -> None:
    assert unsent_bytes(None) is None
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            value = unsent_bytes(client)
            assert value is not None and value >= 0
    closed = socket.socket()
    closed.close()
    assert unsent_bytes(closed) is None


@pytest.mark.parametrize("stall_s", [0.1, 0.3])
async def test_a_send_that_finishes_in_time_cancels_its_looks(stall_s: float) -> None:
    assert await _wait_with_watch(stall_s, stall_s / 10, [1, 1, 1])
