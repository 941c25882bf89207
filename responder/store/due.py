"""Queries of the engine's due work: the columns its decisions read, as Core statements built once.

A due step reads a case's routing facts and chain state, never the alert itself (nor any other
column a decision does not need), and writes what it decided with one statement for the whole batch.
`run_due_step` is the whole transaction: load a batch, let the engine decide (pure), write. On SQLite
it is two hops to the database thread (the reads; the writes and the COMMIT), not one per statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, or_, select, update

from responder.domain import ACKNOWLEDGED
from responder.store import onehop
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, CaseTask, Page
from responder.store.queries import INSERT_EVENT, insert_page_rows

CASE: Table = Case.__table__  # type: ignore[attr-defined]
TASK: Table = CaseTask.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DueCase:
    """What the engine reads of a case with work due: its routing facts and the state of its chain
    (and, once accepted, of its case work)."""

    id: str
    ref: str
    status: str
    risk_level: str
    is_live: bool
    region: str | None
    language: str | None
    playbook: str
    integration_id: int
    chain_started_at: datetime
    next_step: int
    skew_s: float
    next_due_at: datetime | None
    declined: list[str]
    accepted_by: str | None
    accepted_at: datetime | None
    last_activity_at: datetime | None
    quiet_stage: int


@dataclass(frozen=True, slots=True)
class DueTask:
    """What case work reads of a task."""

    task: str
    title: str
    due_at: datetime
    done: bool
    overdue: bool


_SET_NEXT = (
    update(CASE)
    .where(CASE.c.id == bindparam("b_id"))
    .values(
        next_step=bindparam("b_next_step"),
        next_due_at=bindparam("b_next_due_at"),
        skew_s=bindparam("b_skew_s"),
        quiet_stage=bindparam("b_quiet_stage"),
    )
)

_SELECT_TASKS = select(
    TASK.c.task, TASK.c.title, TASK.c.due_at, TASK.c.done_at.is_not(None), TASK.c.overdue_at.is_not(None)
)


@dataclass(frozen=True, slots=True)
class NextState:
    """Where a case's chain and case work stand after a due step."""

    case_id: str
    next_step: int
    next_due_at: datetime | None
    skew_s: float
    quiet_stage: int


@dataclass(frozen=True)
class DueBatch:
    """A batch of cases with work due, with what their decisions read of their tasks: the tasks done
    (tier conditions), and every task of an accepted case (case work)."""

    cases: list[DueCase]
    done: dict[str, frozenset[str]]
    tasks: dict[str, list[DueTask]]


@dataclass
class DueWork:
    """What the engine decided for a batch, to write in the transaction that loaded it."""

    states: list[NextState] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # event_row()
    pages: list[dict[str, Any]] = field(default_factory=list)
    overdue: list[tuple[str, str]] = field(default_factory=list)  # (case id, task) now reported overdue


def _due_where(statuses: Sequence[str]) -> Any:
    # Equalities, not IN: an IN list is expanded at execution, so it could not be compiled once.
    return (
        or_(*(CASE.c.status == s for s in statuses)),
        CASE.c.next_due_at <= bindparam("now", type_=CASE.c.next_due_at.type),
    )


class _DueQueries:
    """The batch's reads for one set of statuses and batch size, built once."""

    def __init__(self, statuses: Sequence[str], limit: int) -> None:
        due = (
            select(*(CASE.c[f.name] for f in fields(DueCase)))
            .where(*_due_where(statuses))
            # The id breaks ties, so that the subqueries below find exactly the batch's cases.
            .order_by(CASE.c.priority, CASE.c.next_due_at, CASE.c.id)
            .limit(limit)
        )
        self.cases = due.with_for_update(skip_locked=True)
        # SQLite (one process, nothing skipped): the tasks of the batch's cases by subqueries that
        # repeat its query, so that all three reads go in one hop. Among the cases due, an accepted one
        # of the batch is surely among the first `limit` accepted ones (the same order); tasks of the
        # others are not looked at.
        ids = due.with_only_columns(CASE.c.id).scalar_subquery()
        accepted = due.with_only_columns(CASE.c.id).where(CASE.c.status == ACKNOWLEDGED).scalar_subquery()
        self.hop = tuple(
            onehop.Query(q)
            for q in (
                self.cases,
                _DONE.where(TASK.c.case_id.in_(ids)),
                _TASKS.where(TASK.c.case_id.in_(accepted)),
            )
        )


# Tasks done (tier conditions) and every task of an accepted case (case work), with their case's id.
_DONE = select(TASK.c.case_id, TASK.c.task).where(TASK.c.done_at.is_not(None))
_TASKS = select(TASK.c.case_id, *_SELECT_TASKS.selected_columns)
# PostgreSQL: by the ids the locked read returned (another replica's locked cases were skipped).
_DONE_OF = _DONE.where(TASK.c.case_id.in_(bindparam("ids", expanding=True)))
_TASKS_OF = _TASKS.where(TASK.c.case_id.in_(bindparam("ids", expanding=True)))


def _batch(
    cases: Sequence[Sequence[Any]], done: Sequence[Sequence[Any]], tasks: Sequence[Sequence[Any]]
) -> DueBatch:
    found: dict[str, set[str]] = {}
    for case_id, task in done:
        found.setdefault(case_id, set()).add(task)
    of: dict[str, list[DueTask]] = {}
    for case_id, *task in tasks:
        of.setdefault(case_id, []).append(DueTask(*task))
    return DueBatch([DueCase(*row) for row in cases], {k: frozenset(v) for k, v in found.items()}, of)


_queries: dict[tuple[tuple[str, ...], int], _DueQueries] = {}


def _queries_for(statuses: Sequence[str], limit: int) -> _DueQueries:
    key = (tuple(statuses), limit)
    if key not in _queries:
        _queries[key] = _DueQueries(statuses, limit)
    return _queries[key]


_SET_NEXT_HOP = onehop.Statement(_SET_NEXT)
_MARK_OVERDUE = (
    update(TASK)
    .where(TASK.c.case_id == bindparam("b_case_id"), TASK.c.task == bindparam("b_task"))
    .values(overdue_at=bindparam("b_now", type_=TASK.c.overdue_at.type))
)
_MARK_OVERDUE_HOP = onehop.Statement(_MARK_OVERDUE)
_EVENT_ROW = onehop.Prepared(CaseEvent)
_PAGE_ROW = onehop.Prepared(Page, or_ignore=True)  # a step that ran twice after a crash pages once


def _state_params(s: NextState) -> dict[str, Any]:
    return {
        "b_id": s.case_id,
        "b_next_step": s.next_step,
        "b_next_due_at": s.next_due_at,
        "b_skew_s": s.skew_s,
        "b_quiet_stage": s.quiet_stage,
    }


async def run_due_step(
    db: Database,
    statuses: Sequence[str],
    now: datetime,
    limit: int,
    decide: Callable[[DueBatch], DueWork],
) -> int:
    """One batch of cases in `statuses` with work due by `now`, most urgent first, locked for this
    transaction (on PostgreSQL another replica skips them): load, `decide`, write. Returns how many
    cases the batch had."""
    queries = _queries_for(statuses, limit)
    values = {"now": now}
    if db.is_sqlite:
        async with db.engine.connect() as conn, onehop.hops(conn) as transaction:
            batch = await transaction.run(lambda c: _batch(*(q.rows(c, values) for q in queries.hop)))
            work = decide(batch)
            await transaction.run(lambda c: _write_in_thread(c, work, now), last=True)
        return len(batch.cases)
    async with db.engine.begin() as conn:
        cases = (await conn.execute(queries.cases, values)).all()
        ids = [c.id for c in cases]
        accepted = [c.id for c in cases if c.status == ACKNOWLEDGED]
        done = (await conn.execute(_DONE_OF, {"ids": ids})).all() if ids else []
        tasks = (await conn.execute(_TASKS_OF, {"ids": accepted})).all() if accepted else []
        batch = _batch(cases, done, tasks)
        work = decide(batch)
        if work.states:
            await conn.execute(_SET_NEXT, [_state_params(s) for s in work.states])
        if work.events:
            await conn.execute(INSERT_EVENT, work.events)
        await insert_page_rows(conn, work.pages)
        if work.overdue:
            await conn.execute(
                _MARK_OVERDUE, [{"b_case_id": c, "b_task": t, "b_now": now} for c, t in work.overdue]
            )
    return len(batch.cases)


def _write_in_thread(db: sqlite3.Connection, work: DueWork, now: datetime) -> None:
    if work.states:
        db.executemany(_SET_NEXT_HOP.sql, [_SET_NEXT_HOP.params(_state_params(s)) for s in work.states])
    _EVENT_ROW.run(db, work.events)
    _PAGE_ROW.run(db, work.pages)
    if work.overdue:
        db.executemany(
            _MARK_OVERDUE_HOP.sql,
            [_MARK_OVERDUE_HOP.params({"b_case_id": c, "b_task": t, "b_now": now}) for c, t in work.overdue],
        )
