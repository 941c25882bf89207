"""`responder playbook explain`: a dry run of a playbook on a virtual clock, in plain words."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from responder.durations import format_duration
from responder.engine.decide import CaseView, PageAction, due_at, next_actions
from responder.engine.plan import Plan
from responder.engine.playbook import AlertFacts
from responder.oncall.roster import Roster

# The dry run shows the exhausted chain and this many all-hands repeats after it.
ALL_HANDS_SHOWN = 2
_START = datetime(2026, 1, 1, tzinfo=UTC)  # any moment: only offsets are printed


@dataclass(frozen=True)
class Scenario:
    region: str | None
    accept_at_s: float | None = None
    facts: AlertFacts | None = None  # what tier conditions see (from --alert)


def clock(seconds: float) -> str:
    """T+m:ss, or T+h:mm:ss past an hour."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"T+{hours}:{minutes:02d}:{secs:02d}" if hours else f"T+{minutes}:{secs:02d}"


def explain(plan: Plan, roster: Roster, scenario: Scenario) -> list[str]:
    """What happens when, if nobody answers (or what an accept at `accept_at_s` stops)."""
    case = CaseView("dry-run", "open", scenario.region, _START, 0, 0.0, facts=scenario.facts)
    lines = [_heading(plan, scenario)]
    last_index = len(plan.steps) + ALL_HANDS_SHOWN
    stopped: list[str] = []
    while case.next_step <= last_index:
        when = due_at(case, plan, case.next_step)
        offset_s = (when - _START).total_seconds()
        decision = next_actions(case, plan, roster, when)
        text = _describe(plan, case.next_step, decision.pages, roster)
        if scenario.accept_at_s is not None and offset_s > scenario.accept_at_s:
            stopped.append(f"  {clock(offset_s):>9}  {text}")
        else:
            lines.append(f"  {clock(offset_s):>9}  {text}")
        case = replace(case, next_step=decision.next_step, skew_s=decision.skew_s)
    if scenario.accept_at_s is not None:
        lines.append(
            f"  {clock(scenario.accept_at_s):>9}  accepted: paging stops, everyone paged is told who has it"
        )
        lines.append("These would have followed and do not happen:" if stopped else "Nothing else was due.")
        lines += stopped
    else:
        every = format_duration(plan.every_s)
        lines.append(f"  ... all hands again every {every} until someone accepts (never a silent stop)")
    return lines


def _heading(plan: Plan, scenario: Scenario) -> str:
    default = " (the default)" if plan.playbook.default else ""
    who = (
        "if nobody answers"
        if scenario.accept_at_s is None
        else f"with an accept at {clock(scenario.accept_at_s)}"
    )
    return f"Playbook {plan.name}{default}, alert in region {scenario.region or '*'}, {who}:"


def _describe(plan: Plan, index: int, pages: list[PageAction], roster: Roster) -> str:
    step = plan.step(index)
    if not pages:
        return f"{step.tier}: nobody to page (unstaffed, or its condition does not match), the chain moves on"
    by_channel: dict[str, list[str]] = {}
    notified = []
    for page in pages:
        person = roster.person(page.person_id)
        name = person.name if person else page.person_id
        if page.purpose == "notice":
            notified.append(name)
        elif name not in by_channel.setdefault(page.channel, []):
            by_channel[page.channel].append(name)
    parts = [
        f"{'SMS' if ch == 'sms' else 'voice call'} to {', '.join(names)}" for ch, names in by_channel.items()
    ]
    if step.kind == "all_hands":
        text = f"ALL HANDS ({', '.join(step.roles)}): " + "; ".join(parts)
        return text + (f"; {', '.join(notified)} notified" if notified else "")
    targets = ", ".join(t.describe() for t in step.targets)
    pass_note = f", pass {step.pass_no + 1}" if step.pass_no else ""
    return f"{'; '.join(parts)}  [{step.tier}: {targets}{pass_note}]"
