"""Queries of the case aggregate: a case with its timeline, pages and tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, select
from sqlalchemy.orm import load_only, undefer
from sqlmodel import col

from responder.domain import OPEN
from responder.errors import NotFound
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, CaseTask, Page

# The case, its events, pages and tasks, and the earlier cases of the same subject (by pseudonym).
CaseRecord = tuple[Case, list[CaseEvent], list[Page], list[CaseTask], list[Case]]


@dataclass(slots=True)
class NewCase:
    """A case being taken in, not yet stored: the columns intake and step 0 set, as plain values (an
    alert costs no ORM instance on the hot path). `row()` gives them for an INSERT; the other columns
    (the accept, the outcome) start empty."""

    id: str
    ref: str
    integration_id: int
    alert_id: str
    risk_level: str
    priority: int
    is_live: bool
    region: str | None
    language: str | None
    playbook: str
    alert: dict[str, Any]
    detected_at: datetime
    received_at: datetime
    chain_started_at: datetime
    next_due_at: datetime | None
    status: str = OPEN
    next_step: int = 0
    skew_s: float = 0.0
    declined: list[str] = field(default_factory=list)
    quiet_stage: int = 0
    subject_key: str | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _NEW_CASE_COLUMNS}


_NEW_CASE_COLUMNS = tuple(NewCase.__dataclass_fields__)
# The case's sealed columns, loaded (and opened) only where they are shown or changed: they are
# deferred otherwise (store/models.py).
PERSONAL = (undefer(Case.alert), undefer(Case.outcome_note))  # type: ignore[arg-type]
_EARLIER_COLUMNS = ("id", "ref", "status", "received_at", "outcome")


async def load_case(db: Database, case_id: str) -> CaseRecord:
    """The case, its events (oldest first), pages and tasks, and the subject's earlier cases (newest
    first, at most 20); NotFound when there is no such case."""
    async with db.sessions() as session:
        case = await session.get(Case, case_id, options=PERSONAL)
        if case is None:
            raise NotFound("case not found")
        events = (
            (
                await session.execute(
                    select(CaseEvent).where(col(CaseEvent.case_id) == case_id).order_by(col(CaseEvent.id))
                )
            )
            .scalars()
            .all()
        )
        pages = (
            (
                await session.execute(
                    select(Page)
                    .where(col(Page.case_id) == case_id)
                    .order_by(col(Page.created_at), col(Page.id))
                )
            )
            .scalars()
            .all()
        )
        tasks = (
            (
                await session.execute(
                    select(CaseTask).where(col(CaseTask.case_id) == case_id).order_by(col(CaseTask.due_at))
                )
            )
            .scalars()
            .all()
        )
        earlier: list[Case] = []
        if case.subject_key is not None:
            found = await session.execute(
                select(Case)
                .options(load_only(*(getattr(Case, c) for c in _EARLIER_COLUMNS)))  # never the alert
                .where(
                    col(Case.subject_key) == case.subject_key,
                    col(Case.received_at) < case.received_at,
                    col(Case.id) != case.id,
                )
                .order_by(col(Case.received_at).desc())
                .limit(20)
            )
            earlier = list(found.scalars())
    return case, list(events), list(pages), list(tasks), earlier


async def get_case(db: Database, case_id: str) -> Case:
    """The case alone; NotFound when there is no such case."""
    async with db.sessions() as session:
        case = await session.get(Case, case_id)
    if case is None:
        raise NotFound("case not found")
    return case


def _sent_to(person_id: str) -> Any:
    """The cases a page (not a notice) was sent to this person for: held or refused pages do not count."""
    return select(col(Page.case_id)).where(
        col(Page.person_id) == person_id, col(Page.purpose) == "page", col(Page.sent_at).is_not(None)
    )


async def case_and_paged(db: Database, case_id: str, person_id: str | None) -> tuple[Case, bool]:
    """The case, and whether a page for it was sent to this person; NotFound when there is no case."""
    async with db.sessions() as session:
        case = await session.get(Case, case_id)
        if case is None:
            raise NotFound("case not found")
        if person_id is None:
            return case, False
        found = await session.execute(_sent_to(person_id).where(col(Page.case_id) == case_id).limit(1))
        return case, found.first() is not None


async def latest_cases(
    db: Database,
    status: str | None = None,
    paged_to: str | None = None,
    nobody: bool = False,
    limit: int = 100,
) -> list[Case]:
    """The latest cases received, newest first: of one status, or only those paged to one person, or
    none at all (`nobody`: for someone who has no cases of their own)."""
    query = select(Case).order_by(col(Case.received_at).desc()).limit(limit)
    if status is not None:
        query = query.where(col(Case.status) == status)
    if nobody:
        query = query.where(false())
    elif paged_to is not None:
        query = query.where(col(Case.id).in_(_sent_to(paged_to)))
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars().all())


async def latest_page_to(db: Database, case_id: str, person_id: str) -> Page | None:
    """This person's latest page (not a notice) for the case, if any."""
    async with db.sessions() as session:
        return (
            await session.execute(
                select(Page)
                .where(
                    col(Page.case_id) == case_id,
                    col(Page.person_id) == person_id,
                    col(Page.purpose) == "page",
                )
                .order_by(col(Page.created_at).desc())
                .limit(1)
            )
        ).scalar_one_or_none()


async def events_after(db: Database, case_id: str, after: int) -> list[tuple[CaseEvent, str]]:
    """The case's timeline events after id `after`, oldest first, each with the case's status now."""
    async with db.sessions() as session:
        rows = await session.execute(
            select(CaseEvent, col(Case.status))
            .join(Case, col(Case.id) == col(CaseEvent.case_id))
            .where(col(CaseEvent.case_id) == case_id, col(CaseEvent.id) > after)
            .order_by(col(CaseEvent.id))
        )
        return [(event, status) for event, status in rows.all()]


async def count_open(db: Database) -> int:
    """How many cases are open (paging, nobody has them yet): the /metrics gauge."""
    async with db.sessions() as session:
        count = (
            await session.execute(select(func.count()).select_from(Case).where(col(Case.status) == OPEN))
        ).scalar()
    return count or 0
