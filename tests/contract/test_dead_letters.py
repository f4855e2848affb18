"""The dead letters contract: parked input reads back byte for byte, filtered and paged."""

from __future__ import annotations

from dataclasses import replace

from tidings.store.dead_letters import DeadLetter, DeadLetterQuery, DeadLetterStore

ASC = DeadLetterQuery(order="asc")


async def park(
    dead_letters: DeadLetterStore,
    source: str = "github",
    *,
    reason_code: str = "invalid_json",
    raw: bytes = b"{",
    topic: str | None = None,
    tenant: str = "default",
) -> DeadLetter:
    return await dead_letters.add(
        source=source,
        reason_code=reason_code,
        reason=f"{reason_code}: the body is not JSON",
        raw=raw,
        topic=topic,
        headers={"x-github-event": "push"} if source == "github" else None,
        tenant=tenant,
    )


async def test_a_dead_letter_reads_back_with_every_field(dead_letters: DeadLetterStore) -> None:
    raw = b"\xff\x00not utf-8"
    letter = await park(dead_letters, "devices", raw=raw, topic="tracker/events/x")
    assert letter.seq > 0 and letter.received_at_us > 0
    assert (letter.source, letter.raw, letter.topic, letter.headers) == (
        "devices",
        raw,
        "tracker/events/x",
        {},
    )
    assert await dead_letters.get(letter.id) == letter
    github = await park(dead_letters)
    assert (await dead_letters.get(github.id)) == github
    assert github.headers == {"x-github-event": "push"}
    assert github.to_dict()["raw"] == "{"
    assert letter.to_dict()["raw_encoding"] == "base64"


async def test_positions_increase_and_last_seq_is_the_newest(
    dead_letters: DeadLetterStore,
) -> None:
    assert await dead_letters.last_seq() == 0
    letters = [await park(dead_letters) for _ in range(3)]
    assert [d.seq for d in letters] == sorted({d.seq for d in letters})
    assert await dead_letters.last_seq() == letters[-1].seq


async def test_dead_letters_are_scoped_to_their_tenant(dead_letters: DeadLetterStore) -> None:
    theirs = await park(dead_letters, tenant="acme")
    mine = await park(dead_letters)
    assert await dead_letters.get(theirs.id) is None
    assert await dead_letters.get(theirs.id, "acme") == theirs
    assert [d.id for d in await dead_letters.find(ASC)] == [mine.id]
    assert await dead_letters.last_seq("acme") == theirs.seq
    assert not await dead_letters.delete(theirs.id)
    assert await dead_letters.get(theirs.id, "acme") is not None


async def test_find_filters_by_source_topic_and_reason(dead_letters: DeadLetterStore) -> None:
    a = await park(dead_letters, "github")
    b = await park(dead_letters, "mqtt", reason_code="invalid_envelope", topic="t/1")
    c = await park(dead_letters, "mqtt", reason_code="invalid_json", topic="t/2")

    async def ids(**filters: tuple[str, ...]) -> list[str]:
        return [d.id for d in await dead_letters.find(replace(ASC, **filters))]

    assert await ids(sources=("mqtt",)) == [b.id, c.id]
    assert await ids(sources=("github", "mqtt")) == [a.id, b.id, c.id]
    assert await ids(topics=("t/2",)) == [c.id]
    assert await ids(reasons=("invalid_json",)) == [a.id, c.id]
    assert await ids(sources=("mqtt",), reasons=("invalid_json",)) == [c.id]
    assert await ids(sources=("nobody",)) == []


async def test_find_bounds_received_at_inclusively(dead_letters: DeadLetterStore) -> None:
    letters = [await park(dead_letters) for _ in range(3)]
    first, last = letters[0].received_at_us, letters[-1].received_at_us
    window = replace(ASC, since_us=first, until_us=last)
    assert [d.id for d in await dead_letters.find(window)] == [d.id for d in letters]
    assert await dead_letters.find(replace(ASC, since_us=last + 1)) == []
    assert await dead_letters.find(replace(ASC, until_us=first - 1)) == []


async def test_find_orders_limits_and_pages_by_position(dead_letters: DeadLetterStore) -> None:
    letters = [await park(dead_letters) for _ in range(5)]
    seqs = [d.seq for d in letters]
    newest = await dead_letters.find(DeadLetterQuery(limit=2))
    assert [d.seq for d in newest] == seqs[:-3:-1]
    older = await dead_letters.find(DeadLetterQuery(limit=2, before=newest[-1].seq))
    assert [d.seq for d in older] == seqs[2:0:-1]
    after = await dead_letters.find(replace(ASC, after=seqs[2]))
    assert [d.seq for d in after] == seqs[3:]
    assert await dead_letters.find(replace(ASC, limit=0)) == []


async def test_a_deleted_dead_letter_is_gone(dead_letters: DeadLetterStore) -> None:
    letter = await park(dead_letters)
    kept = await park(dead_letters)
    assert await dead_letters.delete(letter.id)
    assert not await dead_letters.delete(letter.id)
    assert await dead_letters.get(letter.id) is None
    assert [d.id for d in await dead_letters.find(ASC)] == [kept.id]


async def test_positions_are_never_reused_after_a_delete(dead_letters: DeadLetterStore) -> None:
    first = await park(dead_letters)
    newest = await park(dead_letters)
    await dead_letters.delete(newest.id)
    again = await park(dead_letters)
    assert again.seq > newest.seq > first.seq
