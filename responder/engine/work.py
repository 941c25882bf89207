"""The I/O shell of case work: load an accepted case's tasks, decide (casework.next_work), apply."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.engine.casework import TaskView, WorkView, next_work
from responder.engine.plan import Plan
from responder.engine.playbook import Playbook
from responder.oncall.roster import Roster
from responder.paging.messages import PageFacts, language_of, sms_line
from responder.store.models import Case, CaseTask
from responder.store.queries import add_event, insert_pages, notice_row


def task_rows(case_id: str, playbook: Playbook, received_at: datetime) -> list[dict[str, Any]]:
    """The playbook's tasks for a new case, due at their offsets from receipt."""
    return [
        {
            "case_id": case_id,
            "task": t.id,
            "title": t.title,
            "role": t.role,
            "due_at": received_at + timedelta(seconds=t.due),
        }
        for t in playbook.tasks
    ]


async def apply_work(session: AsyncSession, case: Case, plan: Plan, roster: Roster, now: datetime) -> None:
    """Overdue-task notices and quiet-case nudges for one accepted case, in the caller's transaction."""
    tasks = (await session.execute(select(CaseTask).where(col(CaseTask.case_id) == case.id))).scalars().all()
    view = WorkView(
        case.status,
        case.region,
        case.accepted_by,
        case.last_activity_at or case.accepted_at or now,
        case.quiet_stage,
        tuple(
            TaskView(t.task, t.title, t.due_at, t.done_at is not None, t.overdue_at is not None)
            for t in tasks
        ),
    )
    decision = next_work(view, plan.playbook, roster, now)
    facts = PageFacts(case.ref, case.risk_level, case.region)
    rows = []
    for notice in decision.notices:
        person = roster.person(notice.person_id)
        lang = language_of(person.languages if person else ())
        rows.append(
            notice_row(
                case.id,
                notice.person_id,
                sms_line(notice.kind, facts, lang=lang, task=notice.task_title),
                now,
                notice.channel,
            )
        )
    await insert_pages(session, rows)
    if decision.overdue:
        await session.execute(
            update(CaseTask)
            .where(col(CaseTask.case_id) == case.id, col(CaseTask.task).in_(decision.overdue))
            .values(overdue_at=now)
        )
        for task in decision.overdue:
            add_event(session, case.id, "task_overdue", "engine", now, {"task": task})
    if decision.quiet_stage != case.quiet_stage:
        add_event(
            session,
            case.id,
            "case_quiet",
            "engine",
            now,
            {
                "stage": decision.quiet_stage,
                "notified": [n.person_id for n in decision.notices if n.kind == "quiet"],
            },
        )
    case.quiet_stage, case.next_due_at = decision.quiet_stage, decision.next_due_at
