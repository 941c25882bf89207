"""Per-phone flood limits that never silence a case (pure: the outbox loads, plans here, applies).

Under the limit (`limit` messages and calls to one person within `window_s`), every page goes out on
its own. Over it, a phone gets at most one SMS and one call per `hold_s`: the SMS names every waiting
case (up to MAX_COMBINED; the rest wait for the next one), calls wait their turn. A page is held a few
seconds, never failed and never skipped, so a case whose people are all over the limit still pages them.
The counts come from the page rows (sent_at), so replicas share them and a restart does not reset them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# One combined SMS names at most this many cases: each line with its link is ~120 characters, and an
# SMS is at most 1,600 (10 segments).
MAX_COMBINED = 8


@dataclass(frozen=True)
class FloodRule:
    limit: int  # 0 turns the limit off
    window_s: float
    hold_s: float

    @property
    def on(self) -> bool:
        return self.limit > 0


@dataclass(frozen=True)
class Outgoing:
    """A page row that is due, in the order the outbox would send it (most urgent first)."""

    page_id: str
    person_id: str
    channel: str
    purpose: str


@dataclass(frozen=True)
class PhoneUsage:
    """What one person's phone got within the window: messages and calls, and the latest per channel."""

    sent: int = 0
    last_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class SendPlan:
    send: list[str] = field(default_factory=list)  # page ids sent now (a lead may carry others)
    carried: dict[str, list[str]] = field(default_factory=dict)  # lead page id → pages its SMS names
    held: dict[str, datetime] = field(default_factory=dict)  # page id → when it may go
    over: set[str] = field(default_factory=set)  # people over the limit (the manager is told)


def plan_sends(
    due: Iterable[Outgoing], usage: Mapping[str, PhoneUsage], rule: FloodRule, now: datetime
) -> SendPlan:
    """Which due pages go now, which ride along in one combined SMS, which wait and until when."""
    plan = SendPlan()
    if not rule.on:
        plan.send.extend(item.page_id for item in due)
        return plan
    hold = timedelta(seconds=rule.hold_s)
    sent: dict[str, int] = {}
    last: dict[tuple[str, str], datetime] = {}
    leads: dict[str, str] = {}  # person → the combined SMS opened in this plan
    for item in due:
        person = usage.get(item.person_id, PhoneUsage())
        count = sent.setdefault(item.person_id, person.sent)
        if count < rule.limit:
            _send(plan, sent, last, item, now)
            continue
        plan.over.add(item.person_id)
        slot = last.get((item.person_id, item.channel), person.last_at.get(item.channel))
        lead = leads.get(item.person_id)
        if _combines(item) and lead is not None and len(plan.carried[lead]) < MAX_COMBINED - 1:
            plan.carried[lead].append(item.page_id)
        elif slot is not None and slot > now - hold:
            plan.held[item.page_id] = slot + hold
        else:
            _send(plan, sent, last, item, now)
            if _combines(item):
                leads[item.person_id] = item.page_id
                plan.carried[item.page_id] = []
    return plan


def _combines(item: Outgoing) -> bool:
    return item.channel == "sms" and item.purpose == "page"


def _send(
    plan: SendPlan, sent: dict[str, int], last: dict[tuple[str, str], datetime], item: Outgoing, now: datetime
) -> None:
    plan.send.append(item.page_id)
    sent[item.person_id] += 1
    last[(item.person_id, item.channel)] = now
