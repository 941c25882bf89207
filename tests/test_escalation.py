"""The chain through the real service when nobody answers, and voice outcomes that move it on at once.

The service runs on a ManualClock: time moves only when the test fast-forwards it, one wake-up at a
time, so every step is asserted at its exact playbook time, and a step that comes while the clock
stands still was brought on by what a phone did, never by a timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import (
    Service,
    at,
    due,
    events,
    manual_clock,
    new_alert_id,
    patient_phones,
    sample,
    start_service,
    stop_service,
)


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    async with patient_phones() as simulator:
        yield simulator


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    # No safety sweep within a test (it would come after 5 minutes): a step can only be fired by the
    # engine's wake-up at its due time, or by what the phones did.
    running = await start_service(db_url, sim, http, clock=manual_clock(), RESPONDER_SWEEP_INTERVAL_S="300")
    yield running
    await stop_service(running)


async def new_case(service: Service) -> str:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    case_id: str = body["case_id"]
    return case_id


def fired_at(case: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """When each (tier, channel) step of the first pass fired."""
    return {
        (e["detail"]["tier"], e["detail"]["channel"]): at(e["at"])
        for e in events(case, "step_fired")
        if e["detail"]["pass"] == 0
    }


def backup_brought_on(case: dict[str, Any]) -> dict[str, Any]:
    """Assert that a failure or a pass of a first-tier call moved the chain on to the backup tier at
    once: the clock still read the voice step's time (+1m), two minutes before the ack timeout. Return
    the `escalation_advanced` event."""
    calls = {p["id"] for p in case["pages"] if p["channel"] == "voice" and p["tier"] == "first-responders"}
    advanced = events(case, "escalation_advanced")[0]
    assert advanced["detail"]["page"] in calls
    assert fired_at(case)[("backup-negotiator", "sms")] == at(advanced["at"]) == due(case, 1)
    return advanced


async def test_with_no_accept_the_chain_escalates_on_time(service: Service) -> None:
    case_id = await new_case(service)
    await service.phone_of("ana").expect_sms(contains="ACK")
    await service.advance(minutes=10)
    for person in ("bruno", "tom", "maya"):
        await service.phone_of(person).expect_sms(contains="ACK")
    case = await service.case(case_id)
    assert fired_at(case) == {  # in order, none skipped, each at its playbook time exactly
        ("first-responders", "sms"): due(case, 0),
        ("first-responders", "voice"): due(case, 1),
        ("backup-negotiator", "sms"): due(case, 3),
        ("backup-negotiator", "voice"): due(case, 3.5),
        ("team-lead", "sms"): due(case, 5),
        ("team-lead", "voice"): due(case, 5.5),
        ("manager", "sms"): due(case, 10),
    }
    backup = [p for p in case["pages"] if p["tier"] == "backup-negotiator" and p["channel"] == "sms"]
    assert [p["person"]["id"] for p in backup] == ["bruno"]
    assert {at(p["created_at"]) for p in backup} == {due(case, 3)}  # the second tier's page, at +3m
    assert events(case, "escalation_advanced") == []  # nothing but the clock moved the chain


async def test_nothing_moves_while_the_clock_stands_still(service: Service) -> None:
    case_id = await new_case(service)
    await service.phone_of("ana").expect_sms(contains="ACK")
    await service.advance(seconds=59)
    case = await service.case(case_id)
    assert list(fired_at(case)) == [("first-responders", "sms")]  # the voice step waits for +1m
    await service.advance(seconds=1)
    await service.phone_of("ana").expect_call()
    assert fired_at(await service.case(case_id))[("first-responders", "voice")] == due(case, 1)


async def test_key_2_passes_and_the_next_step_comes_at_once(service: Service) -> None:
    case_id = await new_case(service)
    await service.advance(minutes=1)
    call = await service.phone_of("ana").expect_call()
    await call.expect_prompt()
    said = await call.press("2")
    assert "Passé" in said or "Passed" in said
    # The next step is the backup negotiator (the voice step to Ines already went out with Ana's).
    await service.phone_of("bruno").expect_sms(contains="ACK")
    case = await service.case(case_id)
    advanced = backup_brought_on(case)
    assert advanced["detail"]["page"] in [e["detail"]["page"] for e in events(case, "page_passed")]


async def test_answering_machine_gets_a_voicemail_and_is_never_an_accept(service: Service) -> None:
    service.phone_of("ana").behaviour = Behaviour(call="machine")
    case_id = await new_case(service)
    await service.advance(minutes=1)
    call = await service.phone_of("ana").expect_call()
    await call.expect_status("completed")
    assert any("responder" in text for text in call.said)
    assert not any("Camille" in text for text in call.said)
    await service.phone_of("bruno").expect_sms(contains="ACK")  # at once, not at the ack timeout
    case = await service.case(case_id)
    assert case["status"] == "open"
    assert backup_brought_on(case)["detail"]["reason"] == "answered by a machine"
    reasons = [e["detail"].get("reason") for e in events(case, "page_failed")]
    assert "answered by a machine" in reasons


async def test_busy_moves_the_chain_on_at_once(service: Service) -> None:
    for person in ("ana", "ines"):
        service.phone_of(person).behaviour = Behaviour(call="busy")
    case_id = await new_case(service)
    await service.advance(minutes=1)
    await service.phone_of("bruno").expect_sms(contains="ACK")
    case = await service.case(case_id)
    backup_brought_on(case)
    assert {e["detail"].get("status") for e in events(case, "page_failed")} == {"busy"}


async def test_twilio_errors_are_retried_without_duplicates(service: Service) -> None:
    service.phone_of("ana").behaviour = Behaviour(api_error=500, api_error_count=2)
    case_id = await new_case(service)
    # The backoff (at most 1 s, then 2 s: paging/outbox.py) runs on the case clock.
    await service.advance(seconds=5)
    await service.phone_of("ana").expect_sms(contains="ACK")
    case = await service.case(case_id)
    retries = [e for e in case["timeline"] if e["type"] == "page_retry"]
    assert len(retries) == 2
    sms_to_ana = [p for p in case["pages"] if p["person"]["id"] == "ana" and p["channel"] == "sms"]
    assert len(sms_to_ana) == 1 and len(service.phone_of("ana").messages) == 1


async def test_late_news_from_an_earlier_tier_does_not_cut_the_current_tier_short(service: Service) -> None:
    case_id = await new_case(service)
    await service.advance(minutes=1)
    call = await service.phone_of("ana").expect_call()  # step 1 (+1m), still ringing in its menu
    await call.expect_prompt()
    await service.advance(minutes=2)
    await service.phone_of("bruno").expect_sms(contains="ACK")  # the backup tier (+3m) is paging now
    await call.press("2")  # Ana passes on her old call: news, but about a step already behind
    case = await service.case(case_id)
    assert "late_failure_noted" in [e["type"] for e in case["timeline"]]
    assert ("team-lead", "sms") not in fired_at(case)  # not pulled forward
    await service.advance(minutes=2)
    await service.phone_of("tom").expect_sms(contains="ACK")
    case = await service.case(case_id)
    assert fired_at(case)[("team-lead", "sms")] == due(case, 5)  # on its timer
    assert events(case, "escalation_advanced") == []
