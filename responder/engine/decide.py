"""The escalation decision: pure functions of (case state, plan, roster, now) → actions.

No database, network or clock here; engine/runner.py loads state, calls these and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from responder.engine.plan import Plan, Step
from responder.engine.playbook import AlertFacts
from responder.oncall.roster import Roster
from responder.settings import PersonConfig

# A bound on steps handled in one decision, far above any real chain, so a bad plan cannot spin.
MAX_STEPS_PER_DECISION = 1000


@dataclass(frozen=True)
class CaseView:
    """What a decision needs to know about a case."""

    id: str
    status: str
    region: str | None
    chain_started_at: datetime
    next_step: int
    skew_s: float
    declined: frozenset[str] = frozenset()
    facts: AlertFacts | None = None  # for tiers with a `when` condition
    done: frozenset[str] = frozenset()  # tasks done, for tiers with `if_done` / `unless_done`


@dataclass(frozen=True)
class PageAction:
    person_id: str
    channel: str
    step: int
    tier: str
    purpose: str = "page"
    notice: str = ""  # for purpose "notice": which message (paging/messages.py); "" is all-hands


@dataclass(frozen=True)
class EventAction:
    type: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    pages: list[PageAction]
    events: list[EventAction]
    next_step: int
    next_due_at: datetime | None
    skew_s: float


def due_at(case: CaseView, plan: Plan, index: int) -> datetime:
    """When step `index` of this case is due."""
    return case.chain_started_at + timedelta(seconds=plan.step(index).offset_s - case.skew_s)


def next_actions(case: CaseView, plan: Plan, roster: Roster, now: datetime) -> Decision:
    """Everything due at `now`, in step order, and the next step with its due time.

    A step that finds nobody to page (unstaffed, or everyone declined) moves the chain on at once
    instead of letting its ack timeout run with nobody paged.
    """
    if case.status != "open":
        return Decision([], [], case.next_step, None, case.skew_s)
    pages: list[PageAction] = []
    events: list[EventAction] = []
    index = case.next_step
    for _ in range(MAX_STEPS_PER_DECISION):
        if due_at(case, plan, index) > now:
            break
        if plan.step(index).kind == "all_hands":
            # Collapse all-hands repeats missed while down: act once, for the latest one due.
            while due_at(case, plan, index + 1) <= now:
                index += 1
        step_pages, step_events = _act(plan.step(index), case, roster, now)
        pages += step_pages
        events += step_events
        index += 1
        if not step_pages and plan.step(index - 1).kind == "page":
            case = replace(case, skew_s=pull_forward(replace(case, next_step=index), plan, now))
    return Decision(pages, events, index, due_at(case, plan, index), case.skew_s)


def _act(
    step: Step, case: CaseView, roster: Roster, now: datetime
) -> tuple[list[PageAction], list[EventAction]]:
    if step.kind == "all_hands":
        return _all_hands(step, case, roster, now)
    language = case.facts.language if case.facts is not None else None
    people: list[PersonConfig] = []
    for target in step.targets:
        if target.person is not None:
            person = roster.person(target.person)
            found = [person] if person is not None and person.active else []
        elif target.schedule is not None:
            found = roster.in_schedule(target.schedule, target.layer, now)
        else:
            assert target.role is not None
            found = roster.on_call(target.role, case.region, target.layer, now, language)
        people += [p for p in found if p not in people]
    detail = {"step": step.index, "tier": step.tier, "pass": step.pass_no, "channel": step.channels[0]}
    if step.when is not None and (case.facts is None or not step.when.holds(case.facts)):
        return [], [
            EventAction("tier_skipped", {**detail, "reason": "its condition does not match the alert"})
        ]
    if step.if_done is not None and step.if_done not in case.done:
        return [], [EventAction("tier_skipped", {**detail, "reason": f"task {step.if_done!r} is not done"})]
    if step.unless_done is not None and step.unless_done in case.done:
        return [], [EventAction("tier_skipped", {**detail, "reason": f"task {step.unless_done!r} is done"})]
    if not people:
        return _fallback(step, case, roster, now, detail)
    paged = [p for p in people if p.id not in case.declined]
    if not paged:
        return [], [EventAction("tier_declined", {**detail, "people": [p.id for p in people]})]
    pages = _pages(roster, paged, step.channels[0], step)
    if not pages:
        return [], [EventAction("tier_unreachable", {**detail, "people": [p.id for p in paged]})]
    return pages, [EventAction("step_fired", {**detail, "people": [p.person_id for p in pages]})]


def _pages(roster: Roster, people: list[PersonConfig], channel: str, step: Step) -> list[PageAction]:
    """A page per person on the step's channel, or on their first usable one; none if they have none."""
    pages = []
    for person in people:
        usable = roster.channel_for(person, channel)
        if usable is not None:
            pages.append(PageAction(person.id, usable, step.index, step.tier))
    return pages


def _fallback(
    step: Step, case: CaseView, roster: Roster, now: datetime, detail: dict[str, Any]
) -> tuple[list[PageAction], list[EventAction]]:
    """Nobody on call anywhere up the region chain: page the programme's default team and tell the
    on-call manager, rather than wait for a schedule to start. With no default team, move on."""
    team = [p for p in roster.fallback_team() if p.id not in case.declined]
    if not team:
        return [], [EventAction("tier_unstaffed", detail)]
    pages = _pages(roster, team, step.channels[0], step)
    told = [m for m in roster.everyone_on_call("manager", case.region, now) if m not in team]
    pages += _notices(roster, told, step, "unstaffed")
    event = {**detail, "people": [p.id for p in team], "notified": [m.id for m in told]}
    return pages, [
        EventAction("tier_unstaffed", {**detail, "fallback": "default_team"}),
        EventAction("step_fired", event),
    ]


def _all_hands(
    step: Step, case: CaseView, roster: Roster, now: datetime
) -> tuple[list[PageAction], list[EventAction]]:
    """Everyone on call for the roles, even those who passed earlier, and a notice to the manager."""
    people: list[PersonConfig] = []
    for role in step.roles:
        people += [p for p in roster.everyone_on_call(role, case.region, now) if p not in people]
    if not people:
        people = roster.fallback_team()
    pages: list[PageAction] = []
    for channel in step.channels:
        pages += [p for p in _pages(roster, people, channel, step) if p not in pages]
    told: list[PersonConfig] = []
    for role in step.notify:
        for person in roster.everyone_on_call(role, case.region, now):
            if person not in people and person not in told:
                told.append(person)
    pages += _notices(roster, told, step, "")
    notified = [p.id for p in told]
    detail = {
        "step": step.index,
        "repeat": step.pass_no,
        "people": [p.id for p in people],
        "notified": notified,
    }
    return pages, [EventAction("all_hands_paged", detail)]


def _notices(roster: Roster, people: list[PersonConfig], step: Step, notice: str) -> list[PageAction]:
    """SMS notices (read out by a call to someone whose SMS is flagged)."""
    found = []
    for person in people:
        channel = roster.channel_for(person, "sms")
        if channel is not None:
            found.append(PageAction(person.id, channel, step.index, step.tier, "notice", notice))
    return found


def pull_forward(case: CaseView, plan: Plan, now: datetime) -> float:
    """The skew that makes the next step due now (a failed page or a pass acts at once)."""
    if case.status != "open":
        return case.skew_s
    late_by_s = (due_at(case, plan, case.next_step) - now).total_seconds()
    return case.skew_s + max(0.0, late_by_s)
