"""The chain through the real service when nobody answers, and voice outcomes that move it on at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import (
    Service,
    at,
    due,
    edited_playbooks,
    events,
    new_alert_id,
    patient_phones,
    sample,
    start_service,
    stop_service,
)

SCALE = 0.01  # tests/harness.py runs the service at 1/100 speed: a playbook minute is 0.6 s
# The first tier's ack timeout in `long_ack`: its backup tier would come 36 s after the alert, longer
# than any wait here, instead of 1.8 s.
LONG_ACK_MINUTES = 60


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    async with patient_phones() as simulator:
        yield simulator


@pytest.fixture
async def long_ack(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[Service]:
    """The service with the first tier waiting an hour for an accept: the backup negotiator paged
    within a test was brought on by what the phones did, not by the ack timeout."""
    playbooks = edited_playbooks(tmp_path, "ack_timeout: 3m", f"ack_timeout: {LONG_ACK_MINUTES}m")
    running = await start_service(db_url, sim, http, RESPONDER_PLAYBOOKS_DIR=str(playbooks))
    yield running
    await stop_service(running)


def backup_brought_on(case: dict[str, Any]) -> dict[str, Any]:
    """Assert that a failure or a pass of a first-tier call moved the chain on to the backup tier, long
    before its ack timeout; return the `escalation_advanced` event."""
    calls = {p["id"] for p in case["pages"] if p["channel"] == "voice" and p["tier"] == "first-responders"}
    advanced = events(case, "escalation_advanced")[0]
    assert advanced["detail"]["page"] in calls
    backup = next(e for e in events(case, "step_fired") if e["detail"]["tier"] == "backup-negotiator")
    assert at(advanced["at"]) <= at(backup["at"]) < due(case, LONG_ACK_MINUTES, SCALE)
    return advanced


async def test_with_no_accept_the_chain_escalates_on_time(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    # No safety sweep within the test (it would come after 5 minutes): each tier can only be fired by
    # the engine's wake-up at its due time. How late a wake-up is, is measured by bench/engine_load.py.
    service = await start_service(db_url, sim, http, RESPONDER_SWEEP_INTERVAL_S="300")
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        for person in ("bruno", "tom", "maya"):
            await service.phone_of(person).expect_sms(contains="ACK")
        case = await service.case(body["case_id"])
    finally:
        await stop_service(service)
    fired: dict[str, datetime] = {}
    for event in events(case, "step_fired"):
        if event["detail"]["channel"] == "sms":
            fired.setdefault(event["detail"]["tier"], at(event["at"]))
    tiers = {"first-responders": 0, "backup-negotiator": 3, "team-lead": 5, "manager": 10}
    assert list(fired) == list(tiers)  # in order, none skipped
    for tier, minutes in tiers.items():
        assert fired[tier] >= due(case, minutes, SCALE), tier  # never early
    assert events(case, "escalation_advanced") == []  # nothing but the clock moved the chain


async def test_key_2_passes_and_the_next_step_comes_at_once(long_ack: Service) -> None:
    status, body = await long_ack.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    call = await long_ack.phone_of("ana").expect_call()
    await call.expect_prompt()
    said = await call.press("2")
    assert "Passé" in said or "Passed" in said
    # The next step is the backup negotiator (the voice step to Ines already went out with Ana's).
    await long_ack.phone_of("bruno").expect_sms(contains="ACK")
    case = await long_ack.case(body["case_id"])
    advanced = backup_brought_on(case)
    assert advanced["detail"]["page"] in [e["detail"]["page"] for e in events(case, "page_passed")]


async def test_answering_machine_gets_a_voicemail_and_is_never_an_accept(long_ack: Service) -> None:
    long_ack.phone_of("ana").behaviour = Behaviour(call="machine")
    status, body = await long_ack.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    call = await long_ack.phone_of("ana").expect_call()
    await call.expect_status("completed")
    assert any("responder" in text for text in call.said)
    assert not any("Camille" in text for text in call.said)
    await long_ack.phone_of("bruno").expect_sms(contains="ACK")  # at once, not at the ack timeout
    case = await long_ack.case(body["case_id"])
    assert case["status"] == "open"
    assert backup_brought_on(case)["detail"]["reason"] == "answered by a machine"
    reasons = [e["detail"].get("reason") for e in events(case, "page_failed")]
    assert "answered by a machine" in reasons


async def test_busy_moves_the_chain_on_at_once(long_ack: Service) -> None:
    for person in ("ana", "ines"):
        long_ack.phone_of(person).behaviour = Behaviour(call="busy")
    status, body = await long_ack.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await long_ack.phone_of("bruno").expect_sms(contains="ACK")
    case = await long_ack.case(body["case_id"])
    backup_brought_on(case)
    assert {e["detail"].get("status") for e in events(case, "page_failed")} == {"busy"}


async def test_twilio_errors_are_retried_without_duplicates(service: Service) -> None:
    service.phone_of("ana").behaviour = Behaviour(api_error=500, api_error_count=2)
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
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
    await service.phone_of("tom").expect_sms(contains="ACK")
    case = await service.case(body["case_id"])
    team_lead = next(e for e in events(case, "step_fired") if e["detail"]["tier"] == "team-lead")
    assert at(team_lead["at"]) >= due(case, 5, SCALE)  # on its timer, not pulled forward
    assert "late_failure_noted" in [e["type"] for e in case["timeline"]]
    assert events(case, "escalation_advanced") == []
