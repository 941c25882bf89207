"""Invariants of the pure escalation decision, for any sequence of wake-ups (hypothesis)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.engine.decide import CaseView, due_at, next_actions, pull_forward
from responder.engine.plan import Plan, compile_plan
from responder.engine.playbook import load_playbooks
from tests.harness import ROOT, shipped_roster

START = datetime(2026, 11, 28, tzinfo=UTC)
# Same examples every run (a test suite must not flake), no timing-based health checks on a busy CI box.
STEADY = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
PLANS = [compile_plan(p) for p in load_playbooks(ROOT / "playbooks")]
ROSTER = shipped_roster()
REGIONS = st.sampled_from(["FR-75", "FR", "IN-UP", "US-CA", "BR-SP", None])
# Gaps between wake-ups: often tiny (a busy engine), sometimes long (a process down for a while).
GAPS = st.lists(st.floats(min_value=0, max_value=1800, allow_nan=False), min_size=1, max_size=40)


def walk(
    plan_index: int, region: str | None, gaps: list[float], failures: frozenset[int] = frozenset()
) -> tuple[Plan, CaseView, datetime, list[tuple[int, str, str]]]:
    """Wake the decision at each gap; on wake-ups listed in `failures`, a page failed: pull forward."""
    plan = PLANS[plan_index]
    case = CaseView("c", "open", region, START, 0, 0.0)
    now, fired = START, []
    for i, gap in enumerate(gaps):
        now += timedelta(seconds=gap)
        if i in failures:
            case = replace(case, skew_s=pull_forward(case, plan, now))
        decision = next_actions(case, plan, ROSTER, now)
        assert decision.next_due_at is not None and decision.next_due_at > now  # always a next step
        assert decision.next_step >= case.next_step
        fired += [(p.step, p.person_id, p.channel) for p in decision.pages]
        case = replace(case, next_step=decision.next_step, skew_s=decision.skew_s)
    return plan, case, now, fired


@settings(STEADY, max_examples=200)
@given(st.integers(0, len(PLANS) - 1), REGIONS, GAPS, st.sets(st.integers(0, 39), max_size=5))
def test_every_due_step_acts_exactly_once(
    plan_index: int, region: str | None, gaps: list[float], failures: set[int]
) -> None:
    plan, case, now, fired = walk(plan_index, region, gaps, frozenset(failures))
    assert all(count == 1 for count in Counter(fired).values()), "a page was decided twice"
    steps_fired = {step for step, _, _ in fired}
    for index in range(min(case.next_step, len(plan.steps))):
        # Every role is staffed somewhere up the region chain in the test roster, so every passed
        # finite step must have paged someone.
        assert index in steps_fired, f"step {index} was passed over without paging"
    assert due_at(case, plan, case.next_step) > now  # and nothing due was left behind


@settings(STEADY, max_examples=100)
@given(st.integers(0, len(PLANS) - 1), REGIONS, GAPS)
def test_nothing_is_paged_once_accepted(plan_index: int, region: str | None, gaps: list[float]) -> None:
    plan = PLANS[plan_index]
    case = CaseView("c", "acknowledged", region, START, 0, 0.0)
    now = START
    for gap in gaps:
        now += timedelta(seconds=gap)
        decision = next_actions(case, plan, ROSTER, now)
        assert decision.pages == [] and decision.next_due_at is None


@settings(STEADY, max_examples=50)
@given(st.integers(0, len(PLANS) - 1), REGIONS)
def test_an_exhausted_chain_reaches_all_hands_and_the_manager(plan_index: int, region: str | None) -> None:
    plan = PLANS[plan_index]
    _, _, _, fired = walk(plan_index, region, [plan.exhausted_at_s + 1])
    exhausted = len(plan.steps)
    people = {person for step, person, _ in fired if step == exhausted}
    assert "maya" in people  # the manager, notified
    assert people - {"maya"}  # and every on-call person of the roles
