"""The chain through the real service when nobody answers, and voice outcomes that move it on at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import Service, new_alert_id, patient_phones, sample

SCALE = 0.01  # tests/harness.py runs the service at 1/100 speed: a playbook minute is 0.6 s
# Late by at most this much (event loop, database, HTTP to the simulator); never early.
LATE_MAX_S = 0.5


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    async with patient_phones() as simulator:
        yield simulator


async def test_with_no_accept_the_chain_escalates_on_time(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    for person, minutes in (("bruno", 3), ("tom", 5), ("maya", 10)):
        await service.phone_of(person).expect_sms(contains="ACK", timeout_s=minutes * 60 * SCALE + 3)
    case = await service.case(body["case_id"])
    received = datetime.fromisoformat(case["received_at"])
    fired = {}
    for event in case["timeline"]:
        if event["type"] == "step_fired" and event["detail"]["channel"] == "sms":
            fired.setdefault(event["detail"]["tier"], datetime.fromisoformat(event["at"]))
    for tier, minutes in (
        ("first-responders", 0),
        ("backup-negotiator", 3),
        ("team-lead", 5),
        ("manager", 10),
    ):
        late_s = (fired[tier] - received).total_seconds() - minutes * 60 * SCALE
        assert 0 <= late_s < LATE_MAX_S, (tier, late_s)


async def test_key_2_passes_and_the_next_step_comes_at_once(service: Service) -> None:
    await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    call = await service.phone_of("ana").expect_call()
    await call.expect_prompt()
    said = await call.press("2")
    assert "Passé" in said or "Passed" in said
    # The next step is the backup negotiator (the voice step to Ines already went out with Ana's).
    await service.phone_of("bruno").expect_sms(contains="ACK", timeout_s=1.0)


async def test_answering_machine_gets_a_voicemail_and_is_never_an_accept(service: Service) -> None:
    service.phone_of("ana").behaviour = Behaviour(call="machine")
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    call = await service.phone_of("ana").expect_call()
    await call.expect_status("completed")
    assert any("responder" in text for text in call.said)
    assert not any("Camille" in text for text in call.said)
    await service.phone_of("bruno").expect_sms(contains="ACK", timeout_s=1.0)  # at once, not at +3m
    case = await service.case(body["case_id"])
    assert case["status"] == "open"
    reasons = [e["detail"].get("reason") for e in case["timeline"] if e["type"] == "page_failed"]
    assert "answered by a machine" in reasons


async def test_busy_moves_the_chain_on_at_once(service: Service) -> None:
    for person in ("ana", "ines"):
        service.phone_of(person).behaviour = Behaviour(call="busy")
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("bruno").expect_sms(contains="ACK", timeout_s=1.5)
    case = await service.case(body["case_id"])
    assert {e["detail"].get("status") for e in case["timeline"] if e["type"] == "page_failed"} == {"busy"}


async def test_twilio_errors_are_retried_without_duplicates(service: Service) -> None:
    service.phone_of("ana").behaviour = Behaviour(api_error=500, api_error_count=2)
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK", timeout_s=5)
    case = await service.case(body["case_id"])
    retries = [e for e in case["timeline"] if e["type"] == "page_retry"]
    assert len(retries) == 2
    sms_to_ana = [p for p in case["pages"] if p["person"]["id"] == "ana" and p["channel"] == "sms"]
    assert len(sms_to_ana) == 1 and len(service.phone_of("ana").messages) == 1


async def test_late_news_from_an_earlier_tier_does_not_cut_the_current_tier_short(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    call = await service.phone_of("ana").expect_call()  # step 1 (+1m), still ringing in its menu
    await call.expect_prompt()
    await service.phone_of("bruno").expect_sms(contains="ACK")  # the backup tier (+3m) is paging now
    await call.press("2")  # Ana passes on her old call: news, but about a step already behind
    await service.phone_of("tom").expect_sms(contains="ACK", timeout_s=5)
    case = await service.case(body["case_id"])
    received = datetime.fromisoformat(case["received_at"])
    team_lead = next(
        datetime.fromisoformat(e["at"])
        for e in case["timeline"]
        if e["type"] == "step_fired" and e["detail"]["tier"] == "team-lead"
    )
    assert (team_lead - received).total_seconds() >= 5 * 60 * SCALE  # on its timer, not pulled forward
    assert "late_failure_noted" in [e["type"] for e in case["timeline"]]
