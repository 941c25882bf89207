"""Paging that never gives up (issue 5), through the real service and the simulator's phones: a failure
is news acted on at once: the person's next channel, then the next person; Twilio's error codes flag
dead channels and the manager is told; STOP and START."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import AUTH_TOKEN, Service, new_alert_id, sample, start_service, stop_service

# A playbook minute is 6 s here: any page within a second of a failure came from the failure, not from
# the playbook's clock (the voice step is due 6 s after the SMS).
SCALE = "0.1"
FAST_S = 1.0


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    running = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE=SCALE)
    yield running
    await stop_service(running)


async def alert(service: Service) -> str:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    case_id: str = body["case_id"]
    return case_id


def events(case: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in case["timeline"] if e["type"] == kind]


def gap_s(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


async def metric(service: Service, name: str) -> float:
    async with service.http.get(f"{service.url}/metrics") as answer:
        text = await answer.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_an_undelivered_sms_calls_the_same_person_at_once(
    service: Service, sim: PhoneSimulator
) -> None:
    failovers = await metric(service, 'responder_channel_failovers_total{channel="voice"}')
    ana = service.phone_of("ana")
    ana.behaviour = Behaviour(sms="undelivered", sms_error_code=30003)
    case_id = await alert(service)
    call = await ana.expect_call(timeout_s=FAST_S + 1)
    failed = next(m for m in sim.messages.values() if m.to == ana.number and m.status == "undelivered")
    assert gap_s(call.created_at, failed.updated_at) < FAST_S
    case = await service.case(case_id)
    assert events(case, "channel_failover")[0]["detail"] | {"page": None} == {
        "page": None,
        "person": "ana",
        "from": "sms",
        "to": "voice",
        "reason": "sms undelivered",
    }
    assert events(case, "contact_flagged") == []  # 30003: the handset was off, the number is fine
    assert await metric(service, 'responder_channel_failovers_total{channel="voice"}') == failovers + 1


async def test_a_number_that_is_not_a_mobile_is_flagged_and_called_and_the_manager_told(
    service: Service, sim: PhoneSimulator
) -> None:
    ana, maya = service.phone_of("ana"), service.phone_of("maya")
    ana.behaviour = Behaviour(sms_reject_code=21614)
    case_id = await alert(service)
    await ana.expect_call(timeout_s=FAST_S)  # refused at once by Twilio's API: voice takes over
    notice = await maya.expect_sms(contains="Ana Negotiator", timeout_s=FAST_S)
    assert "not a mobile number" in notice.body
    case = await service.case(case_id)
    assert events(case, "contact_flagged")[0]["detail"]["reason"] == "not a mobile number"
    # The flag holds: the next alert calls Ana at once instead of texting her, and nobody is told again.
    await alert(service)
    await ana.expect_call(timeout_s=FAST_S)
    await maya.expect_no_sms("Ana Negotiator", timeout_s=0.5)
    assert not [m for m in ana.messages if "ACK" in m.body]


async def test_an_invalid_number_moves_on_to_the_next_person_at_once(service: Service) -> None:
    ana, ines = service.phone_of("ana"), service.phone_of("ines")
    ana.behaviour = Behaviour(sms_reject_code=21211)
    case_id = await alert(service)
    await ines.expect_sms(contains="ACK", timeout_s=FAST_S)
    # Ana cannot be reached at all: the chain moves on at once (the voice step, to Ines only).
    await ines.expect_call(timeout_s=FAST_S)
    await ana.expect_no_call(timeout_s=0.3)
    case = await service.case(case_id)
    assert events(case, "contact_flagged")[0]["detail"]["reason"] == "invalid phone number"
    assert events(case, "escalation_advanced")
    await service.phone_of("maya").expect_sms(contains="invalid phone number", timeout_s=FAST_S)


async def test_stop_flags_sms_voice_takes_over_the_manager_is_told_and_start_undoes_it(
    service: Service,
) -> None:
    ana, maya = service.phone_of("ana"), service.phone_of("maya")
    await alert(service)
    await ana.expect_sms(contains="ACK")
    replies = await ana.send_sms("STOP")
    assert "voice" in replies[0].casefold() or "appels" in replies[0].casefold()
    await maya.expect_sms(contains="STOP", timeout_s=FAST_S)
    case_id = await alert(service)
    await ana.expect_call(timeout_s=FAST_S)  # step 0 of the next case: a call, not an SMS
    case = await service.case(case_id)
    assert [p["channel"] for p in case["pages"] if p["person"]["id"] == "ana"] == ["voice"]
    await ana.send_sms("START")
    await alert(service)
    await ana.expect_sms(contains="ACK", timeout_s=FAST_S)


async def test_twilios_own_opt_out_is_recorded_like_a_stop(service: Service) -> None:
    ana = service.phone_of("ana")
    ana.opted_out = True  # Ana texted STOP to our number some other time: Twilio refuses with 21610
    case_id = await alert(service)
    await ana.expect_call(timeout_s=FAST_S)
    case = await service.case(case_id)
    assert events(case, "contact_flagged")[0]["detail"]["reason"] == "opted out of SMS (STOP)"


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed", "machine"])
async def test_a_failed_call_after_the_sms_moves_the_chain_at_once(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, outcome: str
) -> None:
    # 1/50 speed: the voice step at 1.2 s, the backup tier due at 3.6 s unless a failure brings it on.
    service = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE="0.02")
    try:
        await failed_calls_move_on(service, outcome)
    finally:
        await stop_service(service)


async def failed_calls_move_on(service: Service, outcome: str) -> None:
    ana, ines = service.phone_of("ana"), service.phone_of("ines")
    ana.behaviour = ines.behaviour = Behaviour(call=outcome)  # type: ignore[arg-type]
    await alert(service)
    await ana.expect_sms(contains="ACK")
    calls = [await ana.expect_call(timeout_s=3), await ines.expect_call(timeout_s=1)]
    for call in calls:
        await call.expect_status("completed" if outcome == "machine" else outcome)
    # Both had their SMS already: nothing left to try for them, so the backup tier comes at once
    # (from the first failure; the second is late news about the same step).
    bruno = service.phone_of("bruno")
    sms = await bruno.expect_sms(contains="ACK", timeout_s=3)
    first_end = min(c.end_time or c.updated_at for c in calls)
    assert gap_s(sms.created_at, first_end) < FAST_S


async def test_a_failure_whose_callback_was_lost_is_found_by_asking_twilio(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(
        db_url,
        sim,
        http,
        RESPONDER_TIME_SCALE=SCALE,
        RESPONDER_RECONCILE_AFTER_S="1",
        RESPONDER_SWEEP_INTERVAL_S="0.2",
    )
    try:
        ana = service.phone_of("ana")
        ana.behaviour = Behaviour(sms="undelivered", callbacks=False)
        case_id = await alert(service)
        # No callback ever says so; a second later the service fetches the message, sees it undelivered
        # and calls Ana, well before the playbook's voice step (6 s).
        call = await ana.expect_call(timeout_s=4)
        case = await service.case(case_id)
        received = datetime.fromisoformat(case["received_at"])
        assert gap_s(call.created_at, received) < 4
        failover = events(case, "channel_failover")[0]["detail"]
        assert failover["to"] == "voice" and "(reconciled)" in failover["reason"]
        # Ines's SMS had its callbacks: delivered, and nothing to reconcile.
        pages = {p["person"]["id"]: p for p in case["pages"] if p["channel"] == "sms"}
        assert pages["ines"]["status"] == "delivered" and pages["ana"]["status"] == "undelivered"
    finally:
        await stop_service(service)


async def test_a_flood_over_the_phone_limit_pages_the_next_person_instead_and_says_why(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(
        db_url,
        sim,
        http,
        RESPONDER_TIME_SCALE=SCALE,
        RESPONDER_PHONE_LIMIT="2",
        RESPONDER_PHONE_LIMIT_WINDOW_S="600",
    )
    try:
        ana, bruno = service.phone_of("ana"), service.phone_of("bruno")
        for _ in range(2):
            await alert(service)
            await ana.expect_sms(contains="ACK")
        case_id = await alert(service)  # the third page in a row to Ana and Ines: over the limit
        case = await service.case(case_id)
        sms = await bruno.expect_sms(contains=case["ref"], timeout_s=FAST_S + 0.5)  # not held back
        assert gap_s(sms.created_at, datetime.fromisoformat(case["received_at"])) < FAST_S + 0.5
        await ana.expect_no_sms(case["ref"], timeout_s=0.2)
        case = await service.case(case_id)
        reasons = [e["detail"]["reason"] for e in events(case, "page_failed")]
        assert reasons and all(r.startswith("throttled: over 2 pages to this phone") for r in reasons)
        assert events(case, "escalation_advanced")
    finally:
        await stop_service(service)


async def test_repeated_and_late_callbacks_are_news_once(service: Service) -> None:
    case_id = await alert(service)
    ana = service.phone_of("ana")
    await ana.expect_sms(contains="ACK")
    for _ in range(50):  # the simulator's own callbacks: delivered
        page = next(p for p in (await service.case(case_id))["pages"] if p["person"]["id"] == "ana")
        if page["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    path = f"/twilio/status/{page['id']}"

    async def callback(form: dict[str, str]) -> int:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{service.url}{path}", form)
        async with service.http.post(
            f"{service.url}{path}", data=form, headers={"X-Twilio-Signature": signature}
        ) as answer:
            return answer.status

    late = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "sent"}
    assert await callback(late) == 204  # after delivered: changes nothing
    failed = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert await callback(failed) == 204
    assert await callback(failed) == 204  # the same news again
    await ana.expect_call(timeout_s=FAST_S)
    case = await service.case(case_id)
    assert len([e for e in events(case, "page_failed") if e["detail"]["page"] == page["id"]]) == 1
    assert [p["status"] for p in case["pages"] if p["id"] == page["id"]] == ["undelivered"]
    assert len(events(case, "channel_failover")) == 1
