"""After the accept (pure): overdue investigation tasks and re-escalation of a quiet case.

`next_work(view, playbook, roster, now)` decides; engine/runner.py loads the case and its tasks and
applies the result in the same transaction that moves `next_due_at` on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from responder.engine.playbook import Playbook, Reacting
from responder.oncall.roster import Roster


@dataclass(frozen=True)
class TaskView:
    task: str
    title: str
    due_at: datetime
    done: bool
    overdue_sent: bool


@dataclass(frozen=True)
class WorkView:
    status: str
    region: str | None
    holder: str | None
    last_activity_at: datetime
    quiet_stage: int
    tasks: tuple[TaskView, ...] = ()


@dataclass(frozen=True)
class Notice:
    person_id: str
    kind: str  # task_overdue, quiet
    task_title: str = ""
    channel: str = "sms"


@dataclass(frozen=True)
class WorkDecision:
    notices: list[Notice] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # task ids now reported overdue
    quiet_stage: int = 0
    next_due_at: datetime | None = None


def people_for(
    who: tuple[Reacting, ...], holder: str | None, region: str | None, roster: Roster, now: datetime
) -> list[str]:
    """Person ids for notice targets: the holder, or everyone on call for a role."""
    found: list[str] = []
    for target in who:
        ids = (
            ([holder] if holder else [])
            if target == "holder"
            else [p.id for p in roster.everyone_on_call(target, region, now)]
        )
        found += [person for person in ids if person not in found]
    return found


def quiet_deadline(view: WorkView, playbook: Playbook) -> datetime:
    quiet_s = playbook.reescalate.quiet_for
    return view.last_activity_at + timedelta(seconds=quiet_s * (view.quiet_stage + 1))


def next_work(view: WorkView, playbook: Playbook, roster: Roster, now: datetime) -> WorkDecision:
    """Notices due now for an accepted case, and when to look again."""
    if view.status != "acknowledged":
        return WorkDecision(quiet_stage=view.quiet_stage)
    decision = WorkDecision(quiet_stage=view.quiet_stage)
    tasks = {t.id: t for t in playbook.tasks}
    done = {t.task for t in view.tasks if t.done}
    for task in view.tasks:
        if task.done or task.overdue_sent or task.due_at > now or task.task not in tasks:
            continue
        if tasks[task.task].unless_done in done:
            continue  # no longer needed: the task it depends on is done
        decision.overdue.append(task.task)
        rule = tasks[task.task]
        channels = ("sms", "voice") if rule.overdue_page else ("sms",)
        for person in people_for(rule.overdue_notify, view.holder, view.region, roster, now):
            decision.notices.extend(
                Notice(person, "task_overdue", task.title, channel) for channel in channels
            )
    stage = view.quiet_stage
    if quiet_deadline(view, playbook) <= now:
        nudge = playbook.reescalate.nudge
        who = nudge[min(stage, len(nudge) - 1)]
        decision.notices.extend(
            Notice(p, "quiet") for p in people_for((who,), view.holder, view.region, roster, now)
        )
        stage += 1
    upcoming = [t.due_at for t in view.tasks if not (t.done or t.overdue_sent) and t.due_at > now]
    upcoming.append(quiet_deadline(replace(view, quiet_stage=stage), playbook))
    return WorkDecision(decision.notices, decision.overdue, stage, min(upcoming))
