"""Queries of the engine's due work: the columns its decisions read, as Core statements built once.

A due step reads a case's routing facts and chain state, never the alert itself (nor any other
column a decision does not need), and writes what it decided with one statement for the whole batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from responder.store.models import Case, CaseTask
from responder.store.queries import INSERT_EVENT

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


_SELECT_DUE = select(*(CASE.c[f.name] for f in fields(DueCase)))

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


async def due_cases(
    conn: AsyncConnection, statuses: Sequence[str], now: datetime, limit: int
) -> list[DueCase]:
    """Cases in `statuses` with work due by `now`, most urgent first, locked for this transaction
    (on PostgreSQL another replica skips them)."""
    rows = await conn.execute(
        _SELECT_DUE.where(CASE.c.status.in_(statuses), CASE.c.next_due_at <= now)
        .order_by(CASE.c.priority, CASE.c.next_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [DueCase(*row) for row in rows]


async def tasks_done(conn: AsyncConnection, case_ids: Sequence[str]) -> dict[str, frozenset[str]]:
    """The tasks done, per case of `case_ids` that has any."""
    if not case_ids:
        return {}
    found: dict[str, set[str]] = {}
    rows = await conn.execute(
        select(TASK.c.case_id, TASK.c.task).where(TASK.c.case_id.in_(case_ids), TASK.c.done_at.is_not(None))
    )
    for case_id, task in rows:
        found.setdefault(case_id, set()).add(task)
    return {case_id: frozenset(tasks) for case_id, tasks in found.items()}


async def tasks_of(conn: AsyncConnection, case_id: str) -> list[DueTask]:
    """A case's tasks, as case work reads them."""
    return [DueTask(*row) for row in await conn.execute(_SELECT_TASKS.where(TASK.c.case_id == case_id))]


async def mark_overdue(conn: AsyncConnection, case_id: str, tasks: Sequence[str], now: datetime) -> None:
    if tasks:
        await conn.execute(
            update(TASK).where(TASK.c.case_id == case_id, TASK.c.task.in_(tasks)).values(overdue_at=now)
        )


@dataclass(frozen=True, slots=True)
class NextState:
    """Where a case's chain and case work stand after a due step."""

    case_id: str
    next_step: int
    next_due_at: datetime | None
    skew_s: float
    quiet_stage: int


async def write_due_work(
    conn: AsyncConnection, states: Sequence[NextState], events: Sequence[dict[str, Any]]
) -> None:
    """The batch's new case states (one statement for all) and its timeline events (event_row())."""
    if states:
        await conn.execute(
            _SET_NEXT,
            [
                {
                    "b_id": s.case_id,
                    "b_next_step": s.next_step,
                    "b_next_due_at": s.next_due_at,
                    "b_skew_s": s.skew_s,
                    "b_quiet_stage": s.quiet_stage,
                }
                for s in states
            ],
        )
    if events:
        await conn.execute(INSERT_EVENT, list(events))
