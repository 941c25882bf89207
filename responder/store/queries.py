"""Small shared queries: timeline events, idempotent page inserts, the earliest due time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from responder.domain import ACKNOWLEDGED, CLAIMED, OPEN, PENDING, RESOLVED, PageState, moves_into
from responder.store.models import Case, CaseEvent, Page
from responder.store.sealed import PERSONAL_DETAIL_KEYS, for_case

__all__ = ["ACKNOWLEDGED", "CLAIMED", "OPEN", "PENDING", "RESOLVED"]  # and the queries below


def rowcount(result: Any) -> int:
    """Rows an UPDATE touched (SQLAlchemy types execute() as a plain Result)."""
    return int(getattr(result, "rowcount", 0) or 0)


def new_id() -> str:
    return uuid.uuid4().hex


def add_event(
    session: AsyncSession,
    case_id: str,
    type_: str,
    actor: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event to a case's timeline (never updated, never deleted)."""
    session.add(CaseEvent(case_id=case_id, at=at, type=type_, actor=actor, detail=_detail(case_id, detail)))


INSERT_EVENT = insert(CaseEvent)
"""Executed with a list of event_row() dicts (built once: cheaper than .values() per call)."""


def event_row(
    case_id: str, type_: str, actor: str, at: datetime, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A timeline event as column values, for Core inserts on hot paths."""
    return {"case_id": case_id, "at": at, "type": type_, "actor": actor, "detail": _detail(case_id, detail)}


def _detail(case_id: str, detail: dict[str, Any] | None) -> dict[str, Any]:
    """The detail, bound to its case when it carries what staff wrote (sealed for that case)."""
    if not detail:
        return {}
    return for_case(case_id, detail) if any(k in detail for k in PERSONAL_DETAIL_KEYS) else detail


def notice_row(
    case_id: str | None, person_id: str, body: str, now: datetime, channel: str = "sms"
) -> dict[str, Any]:
    """A notice (no step: it is news, not part of the chain) ready for insert_pages(); a voice notice
    reads `body` aloud. `case_id` None: a notice about no case (a shift's hand-off, say)."""
    return {
        "id": new_id(),
        "case_id": case_id,
        "person_id": person_id,
        "channel": channel,
        "purpose": "notice",
        "step": None,
        "tier": None,
        "body": body,
        "status": PENDING,
        "created_at": now,
        "not_before": now,
        "updated_at": now,
    }


# Built once per dialect and run as an executemany on the Core connection: a multi-VALUES insert through
# the ORM session was compiled anew for every batch size (a profile showed it as the largest SQL cost).
_INSERT_PAGES = {
    "postgresql": postgresql.insert(Page).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(Page).on_conflict_do_nothing(),
}


async def insert_pages(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert page rows in the session's transaction, skipping any whose (case, step, person, channel)
    exists already (a step that ran twice after a crash pages once)."""
    if rows:
        await insert_page_rows(await session.connection(), rows)


async def insert_page_rows(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """insert_pages() on a Core connection."""
    if not rows:
        return
    statement = _INSERT_PAGES["postgresql" if connection.dialect.name == "postgresql" else "sqlite"]
    await connection.execute(statement, [_complete(row) for row in rows])


_PAGE_DEFAULTS = {"tier": None, "step": None, "body": "", "twilio_sid": None}


def moved(to: PageState) -> ColumnElement[str]:
    """A page's state after an UPDATE that moves it to `to`: there when domain.PAGE_MOVES allows the
    move from where it is, else where it was (SET status = this, in one statement, no read first)."""
    # Equalities, not IN: an IN list is expanded at execution, so it could not be compiled once.
    allowed = or_(*(col(Page.status) == state.value for state in moves_into(to)))
    return sql_case((allowed, to.value), else_=col(Page.status))


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """Every row of one executemany must name the same columns."""
    return {**_PAGE_DEFAULTS, **row}


async def due_times(session: AsyncSession) -> tuple[datetime | None, datetime | None, datetime | None]:
    """When work is next due: a case step, a page to send (or retry), and the oldest claimed page.

    One round trip: this runs after every engine tick.
    """
    case_due = select(func.min(col(Case.next_due_at))).where(col(Case.status).in_((OPEN, ACKNOWLEDGED)))
    page_due = select(func.min(col(Page.not_before))).where(col(Page.status) == PENDING)
    oldest_claim = select(func.min(col(Page.claimed_at))).where(col(Page.status) == CLAIMED)
    row = (
        await session.execute(
            select(case_due.scalar_subquery(), page_due.scalar_subquery(), oldest_claim.scalar_subquery())
        )
    ).one()
    return row[0], row[1], row[2]


async def cancel_pending_pages(session: AsyncSession, case_id: str, why: str, now: datetime) -> None:
    """The case's pages not yet sent will not be: cancelled (an outcome, not a failure)."""
    await session.execute(
        update(Page)
        .where(col(Page.case_id) == case_id, col(Page.purpose) == "page", col(Page.status) == PENDING)
        .values(
            status=moved(PageState.CANCELLED),
            outcome=PageState.CANCELLED.value,
            updated_at=now,
            error_message=why,
        )
    )
