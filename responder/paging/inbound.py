"""What Twilio tells us: delivery statuses, answered calls, and which page a reply is about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import col

from responder.paging.status import FAILED, is_machine, moves_forward
from responder.store.db import Database
from responder.store.models import Case, Page
from responder.store.queries import OPEN, add_event


@dataclass(frozen=True)
class StatusNews:
    """The outcome of a status callback: should the escalation move on now?"""

    case_id: str
    page_id: str
    failed: bool
    reason: str


async def record_status(
    db: Database,
    page_id: str,
    status: str,
    error_code: str | None,
    answered_by: str | None,
    sequence: int | None,
    now: datetime,
) -> StatusNews | None:
    """Apply one Twilio status callback; repeated or out-of-order ones change nothing."""
    async with db.transaction() as session:
        page = await session.get(Page, page_id, with_for_update=True)
        if page is None:
            return None
        if sequence is not None:
            if sequence <= page.last_sequence:
                return None
            page.last_sequence = sequence
        machine = is_machine(answered_by) and page.answered_by is None
        if answered_by:
            page.answered_by = answered_by
        if not moves_forward(page.status, status) and not machine:
            return None
        if moves_forward(page.status, status):
            page.status = status
        page.updated_at = now
        if error_code and error_code.isdigit():
            page.error_code = int(error_code)
        failed = status in FAILED or machine
        detail = {"page": page.id, "person": page.person_id, "channel": page.channel, "status": status}
        if failed:
            reason = "answered by a machine" if machine else f"{page.channel} {status}"
            add_event(
                session,
                page.case_id,
                "page_failed",
                "twilio",
                now,
                {**detail, "error_code": page.error_code, "answered_by": answered_by, "reason": reason},
            )
        elif status in ("delivered", "in-progress"):
            add_event(
                session,
                page.case_id,
                "page_delivered" if status == "delivered" else "call_answered",
                "twilio",
                now,
                detail,
            )
        escalate = failed and page.purpose == "page"
        return StatusNews(page.case_id, page.id, escalate, reason if failed else status)


async def find_page(db: Database, person_id: str, code: str | None) -> tuple[Page, Case] | None:
    """The page a reply is about: the latest to this person for case `code`, else the latest open one."""
    async with db.sessions() as session:
        query = (
            select(Page, Case)
            .join(Case, col(Page.case_id) == col(Case.id))
            .where(col(Page.person_id) == person_id, col(Page.purpose) == "page")
            .order_by(col(Page.created_at).desc())
            .limit(1)
        )
        if code:
            query = query.where(func.upper(col(Case.ref)) == code.upper())
        else:
            open_row = (await session.execute(query.where(col(Case.status) == OPEN))).first()
            if open_row is not None:
                return open_row[0], open_row[1]
        row = (await session.execute(query)).first()
        return (row[0], row[1]) if row is not None else None


async def load_page(db: Database, page_id: str) -> tuple[Page, Case] | None:
    async with db.sessions() as session:
        page = await session.get(Page, page_id)
        if page is None:
            return None
        case = await session.get(Case, page.case_id)
        assert case is not None
        return page, case


async def mark_answered_by_machine(db: Database, page_id: str, answered_by: str, now: datetime) -> bool:
    """Record a machine answer once; True the first time (the escalation then moves on)."""
    async with db.transaction() as session:
        page = await session.get(Page, page_id, with_for_update=True)
        if page is None or page.answered_by is not None:
            return False
        page.answered_by, page.updated_at = answered_by, now
        add_event(
            session,
            page.case_id,
            "page_failed",
            "twilio",
            now,
            {
                "page": page.id,
                "person": page.person_id,
                "channel": "voice",
                "reason": "answered by a machine",
                "answered_by": answered_by,
            },
        )
        return page.purpose == "page"


async def note_no_input(db: Database, page_id: str, now: datetime) -> bool:
    """The call was answered but no key came after every prompt: treat it as not answered."""
    async with db.transaction() as session:
        page = await session.get(Page, page_id)
        if page is None:
            return False
        add_event(
            session,
            page.case_id,
            "page_failed",
            "twilio",
            now,
            {"page": page.id, "person": page.person_id, "channel": "voice", "reason": "no key pressed"},
        )
        return page.purpose == "page"
