"""Queries of the review: which cases a filter takes, the dashboard's lists, the CSV's and the API's rows.

The figures themselves (durations, rates, the pages counted) are the review's own: review/metrics.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import defer
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from responder.domain import RESOLVED
from responder.store.db import Database
from responder.store.models import Case, CaseTask, Integration

# The review reads routing facts, times and outcomes: the person's sealed data is never loaded, so no
# figure, list or export of the review opens it (nor needs the keys).
_NOT_PERSONAL = (defer(Case.alert), defer(Case.outcome_note))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Filters:
    start: datetime | None = None  # received at or after
    end: datetime | None = None  # received before
    region: str | None = None
    platform: str | None = None
    outcome: str | None = None
    person: str | None = None  # who accepted

    def where(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.start is not None:
            found.append(col(Case.received_at) >= self.start)
        if self.end is not None:
            found.append(col(Case.received_at) < self.end)
        if self.region:
            found.append(col(Case.region) == self.region)
        if self.platform:
            found.append(
                col(Case.integration_id)
                == select(col(Integration.id)).where(col(Integration.name) == self.platform).scalar_subquery()
            )
        if self.outcome:
            found.append(col(Case.outcome) == self.outcome)
        if self.person:
            found.append(col(Case.accepted_by) == self.person)
        return found


async def unresolved_cases(db: Database) -> list[tuple[Case, datetime | None]]:
    """Every case not resolved yet, by priority then age, each with the earliest due time of its
    tasks not done (None when it has none)."""
    async with db.sessions() as session:
        cases = (
            (
                await session.execute(
                    select(Case)
                    .options(*_NOT_PERSONAL)
                    .where(col(Case.status) != RESOLVED)
                    .order_by(col(Case.priority), col(Case.received_at))
                )
            )
            .scalars()
            .all()
        )
        tasks = await session.execute(
            select(col(CaseTask.case_id), func.min(col(CaseTask.due_at)))
            .where(col(CaseTask.case_id).in_([c.id for c in cases]), col(CaseTask.done_at).is_(None))
            .group_by(col(CaseTask.case_id))
        )
        earliest: dict[str, datetime] = {case_id: due for case_id, due in tasks.all()}
    return [(case, earliest.get(case.id)) for case in cases]


async def latest_resolved(db: Database, filters: Filters, limit: int = 100) -> list[Case]:
    """The cases of the filter resolved last, newest first."""
    async with db.sessions() as session:
        rows = await session.execute(
            select(Case)
            .options(*_NOT_PERSONAL)
            .where(*filters.where(), col(Case.status) == RESOLVED)
            .order_by(col(Case.resolved_at).desc())
            .limit(limit)
        )
        return list(rows.scalars().all())


async def cases_with_platform(db: Database, filters: Filters) -> list[tuple[Case, str]]:
    """Every case of the filter, oldest first, with the name of the platform that raised it."""
    async with db.sessions() as session:
        rows = await session.execute(
            select(Case, col(Integration.name))
            .options(*_NOT_PERSONAL)
            .join(Integration, col(Integration.id) == col(Case.integration_id))
            .where(*filters.where())
            .order_by(col(Case.received_at), col(Case.id))  # the same order every time, ties included
        )
        return [(case, platform) for case, platform in rows.all()]


async def page_of_cases(db: Database, filters: Filters, limit: int, offset: int) -> tuple[int, list[Case]]:
    """How many cases the filter takes, and `limit` of them from `offset`, newest first (by id on a tie,
    so that pages never overlap)."""
    where = filters.where()
    async with db.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(Case).where(*where))).scalar() or 0
        rows = await session.execute(
            select(Case)
            .options(*_NOT_PERSONAL)
            .where(*where)
            .order_by(col(Case.received_at).desc(), col(Case.id))
            .limit(limit)
            .offset(offset)
        )
        return int(total), list(rows.scalars().all())
