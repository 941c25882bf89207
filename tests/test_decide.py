"""The pure escalation decision at given times: no database, no network, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from responder.engine.decide import CaseView, next_actions
from responder.engine.plan import Plan, compile_plan
from responder.engine.playbook import Playbook, load_playbooks
from responder.oncall.roster import Roster
from responder.yamlfile import validate_doc
from tests.harness import ROOT, shipped_roster

START = datetime(2026, 11, 28, 2, 14, tzinfo=UTC)


@pytest.fixture(scope="module")
def plan() -> Plan:
    playbook = next(p for p in load_playbooks(ROOT / "playbooks") if p.name == "imminent-risk")
    return compile_plan(playbook)


@pytest.fixture(scope="module")
def roster() -> Roster:
    return shipped_roster()


def new_case(region: str = "FR-75") -> CaseView:
    return CaseView(id="c1", status="open", region=region, chain_started_at=START, next_step=0, skew_s=0.0)


def run(
    case: CaseView, plan: Plan, roster: Roster, at_s: float
) -> tuple[CaseView, list[tuple[str, str, str]]]:
    """Decide at START + at_s; return the case moved on and the (person, channel, purpose) paged."""
    decision = next_actions(case, plan, roster, START + timedelta(seconds=at_s))
    moved = replace(case, next_step=decision.next_step, skew_s=decision.skew_s)
    return moved, [(p.person_id, p.channel, p.purpose) for p in decision.pages]


# PRODUCT.md §3: T+0 investigator + primary negotiator by SMS, voice at +1 if no ack; +3 backup
# negotiator; +5 team lead; +10 manager; the chain repeats twice, then all-hands.
DEFAULT_TIMELINE = [
    (0, {("ines", "sms", "page"), ("ana", "sms", "page")}),
    (60, {("ines", "voice", "page"), ("ana", "voice", "page")}),
    (180, {("bruno", "sms", "page")}),
    (210, {("bruno", "voice", "page")}),
    (300, {("tom", "sms", "page")}),
    (330, {("tom", "voice", "page")}),
    (600, {("maya", "sms", "page")}),
    (630, {("maya", "voice", "page")}),
    (900, {("ines", "sms", "page"), ("ana", "sms", "page")}),
]


def test_default_playbook_follows_the_product_timeline(plan: Plan, roster: Roster) -> None:
    case = new_case()
    for at_s, expected in DEFAULT_TIMELINE:
        _, paged = run(case, plan, roster, at_s - 0.001)
        assert paged == [], f"nothing is due just before T+{at_s}s"
        case, paged = run(case, plan, roster, at_s)
        assert set(paged) == expected, f"T+{at_s}s"


def test_after_the_last_pass_all_hands_and_the_manager_then_every_ten_minutes(
    plan: Plan, roster: Roster
) -> None:
    exhausted_s = 3 * 900  # three passes of 15 minutes
    case = replace(new_case(), next_step=len(plan.steps))
    case, paged = run(case, plan, roster, exhausted_s)
    people = {person for person, _, purpose in paged if purpose == "page"}
    assert people == {"ana", "bruno", "ines", "omar", "tom"}
    assert ("maya", "sms", "notice") in paged
    _, again = run(case, plan, roster, exhausted_s + 599)
    assert again == []
    _, again = run(case, plan, roster, exhausted_s + 600)
    assert again


def test_accepted_case_pages_nobody(plan: Plan, roster: Roster) -> None:
    _, paged = run(replace(new_case(), status="acknowledged"), plan, roster, 10_000)
    assert paged == []


def test_after_an_outage_every_missed_step_acts_once(plan: Plan, roster: Roster) -> None:
    case, _ = run(new_case(), plan, roster, 0)
    case, paged = run(case, plan, roster, 400)  # down from T+0 to T+6m40
    assert sorted(paged) == sorted(
        [
            ("ines", "voice", "page"),
            ("ana", "voice", "page"),  # T+1m
            ("bruno", "sms", "page"),
            ("bruno", "voice", "page"),  # T+3m, T+3m30
            ("tom", "sms", "page"),
            ("tom", "voice", "page"),  # T+5m, T+5m30
        ]
    )
    _, again = run(case, plan, roster, 400)
    assert again == []


def test_all_hands_repeats_missed_while_down_collapse_into_one(plan: Plan, roster: Roster) -> None:
    case = replace(new_case(), next_step=len(plan.steps))
    case, paged = run(case, plan, roster, 2700 + 3 * 600 + 1)
    assert len([p for p in paged if p[2] == "notice"]) == 1


def test_someone_who_passed_is_skipped_and_an_empty_step_moves_on_at_once(plan: Plan, roster: Roster) -> None:
    case, _ = run(new_case(), plan, roster, 0)
    case = replace(case, declined=frozenset({"ines", "ana"}))
    case, paged = run(case, plan, roster, 60)
    # Both first responders passed: the voice step is empty, so the backup tier acts at once.
    assert paged == [("bruno", "sms", "page")]
    _, paged = run(case, plan, roster, 61)
    assert paged == []  # and its own voice step keeps its 30 s spacing


def test_unknown_region_falls_back_to_the_programme_default(plan: Plan, roster: Roster) -> None:
    _, paged = run(new_case(region="BR-SP"), plan, roster, 0)
    assert set(paged) == {("ines", "sms", "page"), ("lee", "sms", "page")}


def test_a_tier_with_a_condition_is_skipped_when_the_alert_does_not_match(roster: Roster) -> None:
    from responder.engine.playbook import AlertFacts
    from responder.yamlfile import parse_yaml

    text = (
        (ROOT / "playbooks" / "imminent-risk.yaml")
        .read_text()
        .replace("    - id: backup-negotiator", "    - id: backup-negotiator\n      when: {is_live: true}")
    )
    playbook = validate_doc(parse_yaml(text, "live-only-backup.yaml"), Playbook)
    plan = compile_plan(playbook)
    not_live = AlertFacts("imminent", False, "FR-75", "fr", "social-example")
    case, _ = run(replace(new_case(), facts=not_live), plan, roster, 60)
    case, paged = run(case, plan, roster, 180)
    # The backup tier is only for live content: skipped, and the team lead is paged at once.
    assert set(paged) == {("tom", "sms", "page")}
    live = replace(new_case(), facts=replace(not_live, is_live=True))
    live, _ = run(live, plan, roster, 60)
    _, paged = run(live, plan, roster, 180)
    assert set(paged) == {("bruno", "sms", "page")}
