"""Case work of an accepted case at its due time: its tasks as loaded, decided (casework.next_work),
turned into the rows the due step writes (notices, events, its new state, tasks newly overdue)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from responder.engine.casework import TaskView, WorkView, next_work
from responder.engine.plan import Plan
from responder.engine.playbook import Playbook
from responder.oncall.roster import Roster
from responder.paging.messages import PageFacts, language_of, sms_line
from responder.store.due import DueCase, DueTask, NextState
from responder.store.queries import event_row, notice_row


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


@dataclass(frozen=True)
class WorkDone:
    """What a due look at a case brings: page rows, timeline events (event_row()) and its new state."""

    pages: list[dict[str, Any]]
    events: list[dict[str, Any]]
    state: NextState
    overdue: tuple[str, ...] = ()  # tasks now reported overdue, to mark so


def case_work(case: DueCase, tasks: Sequence[DueTask], plan: Plan, roster: Roster, now: datetime) -> WorkDone:
    """Overdue-task notices and quiet-case nudges for one accepted case (pure): the caller writes them
    with the rest of its batch, and marks the tasks newly overdue."""
    view = WorkView(
        case.status,
        case.region,
        case.accepted_by,
        case.last_activity_at or case.accepted_at or now,
        case.quiet_stage,
        tuple(TaskView(t.task, t.title, t.due_at, t.done, t.overdue) for t in tasks),
    )
    decision = next_work(view, plan.playbook, roster, now)
    facts = PageFacts(case.ref, case.risk_level, case.region)
    pages = []
    for notice in decision.notices:
        person = roster.person(notice.person_id)
        lang = language_of(person.languages if person else ())
        pages.append(
            notice_row(
                case.id,
                notice.person_id,
                sms_line(notice.kind, facts, lang=lang, task=notice.task_title),
                now,
                notice.channel,
            )
        )
    events = [event_row(case.id, "task_overdue", "engine", now, {"task": task}) for task in decision.overdue]
    if decision.quiet_stage != case.quiet_stage:
        notified = [n.person_id for n in decision.notices if n.kind == "quiet"]
        events.append(
            event_row(
                case.id, "case_quiet", "engine", now, {"stage": decision.quiet_stage, "notified": notified}
            )
        )
    state = NextState(case.id, case.next_step, decision.next_due_at, case.skew_s, decision.quiet_stage)
    return WorkDone(pages, events, state, tuple(decision.overdue))
