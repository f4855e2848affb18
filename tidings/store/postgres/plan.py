"""Deciding, without I/O, what each caller of a write group stores, repeats or is refused.

The writer looks up every deduplication key of the group once, then plans caller by caller in
queue order: a key already stored is a duplicate (or a conflict), a key an earlier caller of
the group is storing is a duplicate of that row, and a conflict drops the whole caller and
nothing else. Positions are handed out afterwards, in plan order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tidings.envelope import AppendResult, Candidate, Event
from tidings.errors import TidingsError
from tidings.store.idempotency import conflict_error, same_content


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What a stored event holds for the idempotency rules."""

    seq: int
    id: str
    type: str
    source: str
    subject: str | None
    data_json: str


@dataclass(slots=True)
class _Ref:
    """A row of this group (its seq is known once positions are drawn)."""

    owner: CallerPlan
    index: int


@dataclass(slots=True)
class CallerPlan:
    """One caller's part of the group: its new rows and how to answer each candidate."""

    rows: list[Candidate] = field(default_factory=list)  # to insert, in order
    seqs: list[int] = field(default_factory=list)  # their positions, once drawn
    answers: list[tuple[str, bool, int | _Ref]] = field(default_factory=list)
    error: TidingsError | None = None  # refused: nothing of this caller is stored

    def assign(self, first: int) -> None:
        self.seqs = list(range(first, first + len(self.rows)))

    def results(self) -> list[AppendResult]:
        out = []
        for id_, duplicate, where in self.answers:
            seq = where if isinstance(where, int) else where.owner.seqs[where.index]
            out.append(AppendResult(id_, seq, duplicate))
        return out

    def events(self, received_us: int) -> list[Event]:
        return [c.stored(seq, received_us) for c, seq in zip(self.rows, self.seqs, strict=True)]


class GroupPlan:
    """The plan of one write group, built caller by caller."""

    def __init__(self, found: dict[tuple[str, str], StoredKey]) -> None:
        self._found = found  # keys already stored, looked up under the log lock
        self._staged: dict[tuple[str, str], _Ref] = {}  # keys new in this group
        self.callers: list[CallerPlan] = []

    def add(self, candidates: Sequence[Candidate]) -> CallerPlan:
        plan = CallerPlan()
        self.callers.append(plan)
        staged: dict[tuple[str, str], _Ref] = {}
        for index, c in enumerate(candidates):
            key = (c.tenant, c.dedupe_key) if c.dedupe_key is not None else None
            if key is not None:
                ref = staged.get(key) or self._staged.get(key)
                if ref is not None:
                    row = ref.owner.rows[ref.index]
                    if not same_content(row.type, row.source, row.subject, row.data_json, c):
                        return self._refuse(plan, index, c)
                    plan.answers.append((row.id, True, ref))
                    continue
                stored = self._found.get(key)
                if stored is not None:
                    if not same_content(
                        stored.type, stored.source, stored.subject, stored.data_json, c
                    ):
                        return self._refuse(plan, index, c)
                    plan.answers.append((stored.id, True, stored.seq))
                    continue
            ref = _Ref(plan, len(plan.rows))
            plan.rows.append(c)
            plan.answers.append((c.id, False, ref))
            if key is not None:
                staged[key] = ref
        self._staged.update(staged)
        return plan

    def discard(self, plan: CallerPlan, error: TidingsError) -> None:
        """Drop a planned caller whose rows the database refused."""
        for key in [k for k, ref in self._staged.items() if ref.owner is plan]:
            del self._staged[key]
        plan.rows, plan.answers, plan.error = [], [], error

    @staticmethod
    def _refuse(plan: CallerPlan, index: int, c: Candidate) -> CallerPlan:
        plan.rows, plan.answers = [], []
        plan.error = conflict_error(index, c.idempotency_key)
        return plan

    @property
    def rows(self) -> list[Candidate]:
        return [row for plan in self.callers for row in plan.rows]

    def assign(self, first: int) -> None:
        """Give the planned rows consecutive positions from ``first``, in plan order."""
        for plan in self.callers:
            plan.assign(first)
            first += len(plan.rows)
