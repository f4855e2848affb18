"""The sink cursors contract: durable positions that only move forward."""

from __future__ import annotations

from tidings.store.sink_cursors import SinkCursor, SinkCursors


async def test_a_new_sink_has_no_cursor(sink_cursors: SinkCursors) -> None:
    assert await sink_cursors.sink_cursor("mqtt:new") is None
    assert await sink_cursors.list_sink_cursors() == []
    assert await sink_cursors.retention_floor() is None


async def test_a_cursor_is_created_then_moves_forward_and_never_back(
    sink_cursors: SinkCursors,
) -> None:
    await sink_cursors.set_sink_cursor("mqtt:a", "default", 5, 100)
    assert await sink_cursors.sink_cursor("mqtt:a") == 5
    await sink_cursors.set_sink_cursor("mqtt:a", "default", 9, 200)
    assert await sink_cursors.sink_cursor("mqtt:a") == 9
    await sink_cursors.set_sink_cursor("mqtt:a", "default", 3, 300)
    assert await sink_cursors.sink_cursor("mqtt:a") == 9
    assert await sink_cursors.list_sink_cursors() == [SinkCursor("mqtt:a", "default", 9, 300)]


async def test_cursors_list_by_sink_name(sink_cursors: SinkCursors) -> None:
    await sink_cursors.set_sink_cursor("mqtt:b", "acme", 2, 10)
    await sink_cursors.set_sink_cursor("mqtt:a", "default", 4, 20)
    assert await sink_cursors.list_sink_cursors() == [
        SinkCursor("mqtt:a", "default", 4, 20),
        SinkCursor("mqtt:b", "acme", 2, 10),
    ]


async def test_the_floor_is_the_lowest_cursor_plus_one(sink_cursors: SinkCursors) -> None:
    await sink_cursors.set_sink_cursor("mqtt:ahead", "default", 40, 1)
    await sink_cursors.set_sink_cursor("mqtt:behind", "default", 12, 1)
    assert await sink_cursors.retention_floor() == 13
    await sink_cursors.set_sink_cursor("mqtt:behind", "default", 50, 2)
    assert await sink_cursors.retention_floor() == 41


async def test_a_deleted_cursor_no_longer_holds_retention(sink_cursors: SinkCursors) -> None:
    await sink_cursors.set_sink_cursor("mqtt:gone", "default", 1, 1)
    await sink_cursors.set_sink_cursor("mqtt:kept", "default", 30, 1)
    assert await sink_cursors.delete_sink_cursor("mqtt:gone")
    assert not await sink_cursors.delete_sink_cursor("mqtt:gone")
    assert await sink_cursors.sink_cursor("mqtt:gone") is None
    assert await sink_cursors.retention_floor() == 31
