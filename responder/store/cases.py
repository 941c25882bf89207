"""Queries of the case aggregate: a case with its timeline, pages and tasks."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from responder.errors import NotFound
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, CaseTask, Page

CaseRecord = tuple[Case, list[CaseEvent], list[Page], list[CaseTask]]


async def load_case(db: Database, case_id: str) -> CaseRecord:
    """The case, its events (oldest first), pages and tasks; NotFound when there is no such case."""
    async with db.sessions() as session:
        case = await session.get(Case, case_id)
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
                    select(Page).where(col(Page.case_id) == case_id).order_by(col(Page.created_at))
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
    return case, list(events), list(pages), list(tasks)
