"""Case transitions people cause: accept (first wins, atomically), pass, resolve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.domain import OUTCOMES
from responder.errors import Conflict, NotFound, ValidationFailed
from responder.metrics import ACCEPTS
from responder.oncall.roster import Roster
from responder.paging.messages import PageFacts, language_of, sms_line
from responder.store.db import Database
from responder.store.models import Case, CaseTask, Page
from responder.store.queries import (
    ACKNOWLEDGED,
    OPEN,
    RESOLVED,
    add_event,
    cancel_pending_pages,
    insert_pages,
    notice_row,
    rowcount,
)
from responder.store.sealed import for_case

# Outcomes that need a reason in the note (PRODUCT.md §5).
REASON_REQUIRED = frozenset({"unable_to_locate"})


@dataclass(frozen=True)
class AcceptResult:
    won: bool
    case_id: str
    ref: str
    status: str
    holder_id: str | None
    holder_name: str


async def accept(
    db: Database, roster: Roster, case_id: str, person_id: str, via: str, now: datetime
) -> AcceptResult:
    """Try to accept; exactly one caller wins, later ones learn who holds the case."""
    async with db.transaction() as session:
        won = (
            rowcount(
                await session.execute(
                    update(Case)
                    .where(col(Case.id) == case_id, col(Case.status) == OPEN)
                    .values(
                        status=ACKNOWLEDGED,
                        accepted_by=person_id,
                        accepted_at=now,
                        accepted_via=via,
                        # Due now: the engine works out the first overdue-task or re-escalation time.
                        next_due_at=now,
                        last_activity_at=now,
                        quiet_stage=0,
                    )
                )
            )
            == 1
        )
        case = await session.get(Case, case_id, populate_existing=True)
        if case is None:
            raise NotFound("case not found")
        if won:
            ACCEPTS.labels(via).inc()
            await _after_accept(session, roster, case, person_id, via, now)
        else:
            add_event(
                session,
                case.id,
                "accept_refused",
                f"person:{person_id}",
                now,
                {"via": via, "holder": case.accepted_by, "status": case.status},
            )
    holder = roster.person(case.accepted_by) if case.accepted_by else None
    return AcceptResult(won, case.id, case.ref, case.status, case.accepted_by, holder.name if holder else "")


async def _after_accept(
    session: AsyncSession, roster: Roster, case: Case, person_id: str, via: str, now: datetime
) -> None:
    await cancel_pending_pages(session, case.id, "case accepted before sending", now)
    person = roster.person(person_id)
    name = person.name if person else person_id
    add_event(session, case.id, "case_accepted", f"person:{person_id}", now, {"via": via, "name": name})
    paged = (
        (
            await session.execute(
                select(col(Page.person_id))
                .where(col(Page.case_id) == case.id, col(Page.purpose) == "page")
                .distinct()
            )
        )
        .scalars()
        .all()
    )
    facts = PageFacts(case.ref, case.risk_level, case.region)
    notices = [
        notice_row(case.id, other, _notice(roster, other, facts, name), now)
        for other in paged
        if other != person_id
    ]
    await insert_pages(session, notices)


def _notice(roster: Roster, person_id: str, facts: PageFacts, holder: str) -> str:
    person = roster.person(person_id)
    return sms_line(
        "taken_notice", facts, lang=language_of(person.languages if person else ()), holder=holder
    )


async def record_pass(
    db: Database, case_id: str, page_id: str, person_id: str, via: str, now: datetime
) -> bool:
    """A person declined the page: the chain skips them from now on; True while the case is open."""
    async with db.transaction() as session:
        case = await session.get(Case, case_id, with_for_update=True)
        if case is None or case.status != OPEN:
            return False
        if person_id not in case.declined:
            case.declined = [*case.declined, person_id]
        add_event(session, case_id, "page_passed", f"person:{person_id}", now, {"page": page_id, "via": via})
        return True


OUTCOME_TIMES = ("identified_at", "located_at", "dispatched_at", "contacted_at")
OUTCOME_FLAGS = ("services_dispatched", "person_collaborated")


async def resolve(
    db: Database,
    case_id: str,
    outcome: str,
    note: str | None,
    actor: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> Case:
    """Close a case with an outcome (and its flags and stage times); paging stops for good."""
    details = details or {}
    problems = []
    if outcome not in OUTCOMES:
        problems.append({"field": "outcome", "message": f"must be one of {', '.join(OUTCOMES)}"})
    if outcome in REASON_REQUIRED and not (note or "").strip():
        problems.append({"field": "note", "message": f"a reason is required for {outcome}"})
    for name in OUTCOME_TIMES:
        value = details.get(name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None or value > now):
            problems.append({"field": name, "message": "a UTC time, not in the future"})
    for name in OUTCOME_FLAGS:
        if details.get(name) not in (None, True, False):
            problems.append({"field": name, "message": "true or false"})
    if problems:
        raise ValidationFailed(problems)
    async with db.transaction() as session:
        case = await session.get(Case, case_id, with_for_update=True)
        if case is None:
            raise NotFound("case not found")
        if case.status == RESOLVED:
            raise Conflict(f"case already resolved as {case.outcome}")
        case.status, case.outcome, case.outcome_note = RESOLVED, outcome, for_case(case.id, note)
        case.resolved_at, case.resolved_by, case.next_due_at = now, actor, None
        for name in (*OUTCOME_TIMES, *OUTCOME_FLAGS):
            if details.get(name) is not None:
                setattr(case, name, details[name])
        await cancel_pending_pages(session, case.id, "case resolved before sending", now)
        recorded = {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in details.items() if v is not None
        }
        add_event(
            session, case.id, "case_resolved", actor, now, {"outcome": outcome, "note": note, **recorded}
        )
    return case


async def complete_task(db: Database, case_id: str, task: str, actor: str, now: datetime) -> None:
    """Tick an investigation task; counts as activity (resets the re-escalation clock)."""
    async with db.transaction() as session:
        case = await session.get(Case, case_id, with_for_update=True)
        if case is None:
            raise NotFound("case not found")
        row = (
            await session.execute(
                select(CaseTask).where(col(CaseTask.case_id) == case_id, col(CaseTask.task) == task)
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound([{"field": "task", "message": f"no task {task!r} on this case"}])
        if row.done_at is not None:
            raise Conflict(f"task {task!r} was done at {row.done_at.isoformat()}")
        row.done_at, row.done_by = now, actor
        _touch(case, now)
        add_event(session, case_id, "task_done", actor, now, {"task": task, "title": row.title})


async def add_note(db: Database, case_id: str, text: str, actor: str, now: datetime) -> None:
    """A note on the timeline; counts as activity."""
    async with db.transaction() as session:
        case = await session.get(Case, case_id, with_for_update=True)
        if case is None:
            raise NotFound("case not found")
        _touch(case, now)
        add_event(session, case_id, "note", actor, now, {"text": text})


def _touch(case: Case, now: datetime) -> None:
    case.last_activity_at, case.quiet_stage = now, 0
    if case.status == ACKNOWLEDGED:
        case.next_due_at = now  # the engine works out the next re-escalation time from here
