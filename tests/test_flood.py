"""The per-phone flood limit never silences a case: pages over it wait a few seconds and go out as one
SMS naming every waiting case; the manager is told; the count lives in the database (replicas share it,
a restart keeps it). First the pure plan, by table; then the real service and the simulator's phones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from responder.paging.throttle import MAX_COMBINED, FloodRule, Outgoing, PhoneUsage, plan_sends
from responder.simulator import PhoneSimulator
from tests.harness import Service, manual_clock, new_alert_id, sample, start_service, stop_service

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
RULE = FloodRule(limit=2, window_s=600, hold_s=10)


def due(*items: str) -> list[Outgoing]:
    """'p1:ana:sms' → a due SMS page p1 to Ana; a fourth part 'notice' makes it a notice."""
    out = []
    for item in items:
        page_id, person, channel, *purpose = item.split(":")
        out.append(Outgoing(page_id, person, channel, purpose[0] if purpose else "page"))
    return out


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("label", "items", "usage", "send", "carried", "held", "over"),
    [
        ("under the limit: all go", ["a:ana:sms", "b:ana:voice"], {}, ["a", "b"], {}, {}, set()),
        ("the limit is reached within the batch", ["a:ana:sms", "b:ana:sms", "c:ana:sms"], {},
         ["a", "b"], {}, {"c": NOW + timedelta(seconds=10)}, {"ana"}),
        ("over, slot free: one SMS names them all", ["a:ana:sms", "b:ana:sms", "c:ana:sms"],
         {"ana": PhoneUsage(5, {"sms": ago(30)})}, ["a"], {"a": ["b", "c"]}, {}, {"ana"}),
        ("over, slot taken: held until it frees", ["a:ana:sms"],
         {"ana": PhoneUsage(5, {"sms": ago(4)})}, [], {}, {"a": ago(4) + timedelta(seconds=10)}, {"ana"}),
        ("over: one call per hold, the other waits", ["a:ana:voice", "b:ana:voice"],
         {"ana": PhoneUsage(3, {"sms": ago(1)})}, ["a"], {}, {"b": NOW + timedelta(seconds=10)}, {"ana"}),
        ("over: SMS and call each have their slot", ["a:ana:sms", "b:ana:voice"],
         {"ana": PhoneUsage(3, {"sms": ago(1)})}, ["b"], {}, {"a": ago(1) + timedelta(seconds=10)}, {"ana"}),
        ("a notice is not combined into a page", ["n:ana:sms:notice", "a:ana:sms"],
         {"ana": PhoneUsage(3)}, ["n"], {}, {"a": NOW + timedelta(seconds=10)}, {"ana"}),
        ("people are counted apart", ["a:ana:sms", "b:ines:sms"],
         {"ana": PhoneUsage(9, {"sms": ago(1)})}, ["b"], {}, {"a": ago(1) + timedelta(seconds=10)}, {"ana"}),
    ],
)  # fmt: skip
def test_plan_sends(
    label: str,
    items: list[str],
    usage: dict[str, PhoneUsage],
    send: list[str],
    carried: dict[str, list[str]],
    held: dict[str, datetime],
    over: set[str],
) -> None:
    plan = plan_sends(due(*items), usage, RULE, NOW)
    assert plan.send == send, label
    assert {k: v for k, v in plan.carried.items() if v} == carried, label
    assert plan.held == held, label
    assert plan.over == over, label


def test_a_combined_sms_names_at_most_max_combined_cases_the_rest_wait() -> None:
    items = due(*[f"p{i}:ana:sms" for i in range(MAX_COMBINED + 3)])
    plan = plan_sends(items, {"ana": PhoneUsage(5, {"sms": ago(60)})}, RULE, NOW)
    assert plan.send == ["p0"] and len(plan.carried["p0"]) == MAX_COMBINED - 1
    assert sorted(plan.held) == sorted(i.page_id for i in items[MAX_COMBINED:])
    assert set(plan.held.values()) == {NOW + timedelta(seconds=10)}


def test_no_limit_sends_everything() -> None:
    plan = plan_sends(due("a:ana:sms", "b:ana:sms"), {"ana": PhoneUsage(999)}, FloodRule(0, 600, 10), NOW)
    assert plan.send == ["a", "b"] and not plan.held


# The real service. At full speed (time scale 1) the playbook's next step is a minute away: every
# page seen here comes from the first step, held by the limit and then sent, never from the timer.
LIMITED = {
    "RESPONDER_TIME_SCALE": "1.0",
    "RESPONDER_PHONE_LIMIT": "2",
    "RESPONDER_PHONE_LIMIT_WINDOW_S": "600",
    "RESPONDER_PHONE_LIMIT_HOLD_S": "3",
}
HOLD_S = 3


async def alert(service: Service) -> dict[str, Any]:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    return await service.case(body["case_id"])


def events(case: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in case["timeline"] if e["type"] == kind]


async def refs_in_one_sms(phone: Any, refs: Sequence[str]) -> str:
    message = await phone.expect_sms(contains=refs[0], timeout_s=20)
    assert all(ref in message.body for ref in refs), message.body
    return str(message.body)


async def test_a_burst_over_the_limit_is_combined_and_a_new_case_still_pages_its_people(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    # The clock stands still until the test moves it: the burst is held however long it takes to post.
    service = await start_service(
        db_url, sim, http, clock=manual_clock(), extra_env={**LIMITED, "RESPONDER_SWEEP_INTERVAL_S": "300"}
    )
    try:
        ana, ines, maya = service.phone_of("ana"), service.phone_of("ines"), service.phone_of("maya")
        for _ in range(2):  # Ana's and Ines's phones reach the limit of 2
            case = await alert(service)
            await ana.expect_sms(contains=case["ref"])
        burst = [await alert(service) for _ in range(3)]
        refs = [c["ref"] for c in burst]
        await service.advance(seconds=HOLD_S)  # the hold ends: the held pages go, together
        combined = await refs_in_one_sms(ana, refs)  # one SMS names the three cases...
        await refs_in_one_sms(ines, refs)
        assert combined.count("/a/") == 3  # ...each with its own one-time link
        notice = await maya.expect_sms(contains="flood limit", timeout_s=20)
        assert "Ana Negotiator" in notice.body or "Ines" in notice.body
        for case in burst:
            case = await service.case(case["id"])
            assert events(case, "page_failed") == [] and events(case, "escalation_advanced") == []
            assert {e["detail"]["person"] for e in events(case, "page_held")} == {"ana", "ines"}
        # A new imminent case with all its people over the limit: they are paged all the same.
        new = await alert(service)
        await service.advance(seconds=HOLD_S)
        await ana.expect_sms(contains=new["ref"], timeout_s=20)
        await ines.expect_sms(contains=new["ref"], timeout_s=20)
        # A case named in the combined SMS is accepted by its reference, like any page.
        replies = await ana.send_sms(f"ACK {refs[1]}")
        assert refs[1] in replies[0]
        assert (await service.case(burst[1]["id"]))["accepted_by"]["id"] == "ana"
    finally:
        await stop_service(service)


async def test_the_count_survives_a_restart(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http, extra_env=LIMITED)
    try:
        for _ in range(2):
            case = await alert(service)
            await service.phone_of("ana").expect_sms(contains=case["ref"])
    finally:
        await stop_service(service)
    service = await start_service(db_url, sim, http, migrate=False, extra_env=LIMITED)
    try:
        case = await alert(service)
        await service.phone_of("ana").expect_sms(contains=case["ref"], timeout_s=20)
        case = await service.case(case["id"])
        assert "ana" in {e["detail"]["person"] for e in events(case, "page_held")}  # counted from the rows
    finally:
        await stop_service(service)
