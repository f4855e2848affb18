"""The PostgreSQL writer's plan of a group: what each caller stores, repeats or is refused,
decided before any write (tidings/store/postgres/plan.py)."""

from __future__ import annotations

from typing import Any

from tidings.envelope import AppendResult, Limits, PublishContext, candidates_from_json
from tidings.envelope.model import Candidate
from tidings.errors import TidingsError
from tidings.store.postgres.plan import GroupPlan, StoredKey


def candidate(key: str | None = None, data: Any = 1, type_: str = "a.b") -> Candidate:
    body: dict[str, Any] = {"type": type_, "data": data}
    if key is not None:
        body["idempotency_key"] = key
    return candidates_from_json(body, PublishContext(), Limits())[0][0]


def test_new_rows_get_consecutive_positions_in_queue_order() -> None:
    plan = GroupPlan({})
    first = plan.add([candidate(), candidate()])
    second = plan.add([candidate()])
    plan.assign(10)

    assert [r.seq for r in first.results()] == [10, 11]
    assert [r.seq for r in second.results()] == [12]
    assert [c.id for c in plan.rows] == [*(c.id for c in first.rows), second.rows[0].id]


def test_a_stored_key_answers_its_original_as_a_duplicate_and_takes_no_position() -> None:
    stored = candidate("k")
    assert stored.dedupe_key is not None
    found = {("default", stored.dedupe_key): StoredKey(7, stored.id, "a.b", "api", None, "1")}
    plan = GroupPlan(found)
    caller = plan.add([candidate("k"), candidate()])
    plan.assign(20)

    assert caller.results() == [
        AppendResult(stored.id, 7, True),
        AppendResult(caller.rows[0].id, 20, False),
    ]


def test_a_key_an_earlier_caller_of_the_group_stores_is_a_duplicate_of_its_row() -> None:
    plan = GroupPlan({})
    first = plan.add([candidate("k")])
    second = plan.add([candidate("k")])
    plan.assign(5)

    assert second.rows == []
    assert second.results() == [AppendResult(first.rows[0].id, 5, True)]


def test_a_conflict_refuses_its_caller_alone_and_stages_none_of_its_keys() -> None:
    plan = GroupPlan({})
    first = plan.add([candidate("k", data=1)])
    clash = plan.add([candidate("j"), candidate("k", data=2)])
    after = plan.add([candidate("j")])
    plan.assign(1)

    assert isinstance(clash.error, TidingsError) and clash.error.status == 409
    assert clash.error.details == [{"loc": ["body", 1], "msg": "idempotency key 'k' is taken"}]
    assert clash.rows == []
    assert [r.seq for r in first.results()] == [1]
    assert after.results()[0].duplicate is False  # "j" was never stored by the refused caller
    assert [r.seq for r in after.results()] == [2]


def test_a_discarded_caller_frees_its_keys_for_the_callers_planned_after_it() -> None:
    plan = GroupPlan({})
    refused = plan.add([candidate("k")])
    plan.discard(refused, TidingsError(500, "store_error", "refused"))
    later = plan.add([candidate("k")])
    plan.assign(3)

    assert refused.error is not None and refused.results() == []
    assert later.results()[0].duplicate is False and later.results()[0].seq == 3
