"""A bridge rule removed from the configuration stops holding back retention."""

from __future__ import annotations

from tidings.ingest.bridge_rules import forget_removed_rules, parse_rules
from tidings.testing import MemorySinkCursors


async def test_the_cursor_of_a_removed_rule_is_dropped_and_others_are_kept() -> None:
    cursors = MemorySinkCursors()
    kept, removed = parse_rules([{"topic": "a/{type}"}, {"topic": "b/{type}"}])
    await cursors.set_sink_cursor(kept.sink, "default", 50, 1)
    await cursors.set_sink_cursor(removed.sink, "default", 3, 1)
    await cursors.set_sink_cursor("other:sink", "default", 10, 1)  # not the bridge's
    assert await cursors.retention_floor() == 4

    await forget_removed_rules(cursors, [kept])

    assert [c.sink for c in await cursors.list_sink_cursors()] == sorted([kept.sink, "other:sink"])
    assert await cursors.retention_floor() == 11


async def test_without_rules_every_bridge_cursor_is_dropped() -> None:
    cursors = MemorySinkCursors()
    (rule,) = parse_rules([{"topic": "a/{type}"}])
    await cursors.set_sink_cursor(rule.sink, "default", 7, 1)
    await forget_removed_rules(cursors, ())
    assert await cursors.list_sink_cursors() == []
    assert await cursors.retention_floor() is None
