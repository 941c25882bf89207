"""Paging that never gives up (issue 5), through the real service and the simulator's phones: a failure
is news acted on at once: the person's next channel, then the next person; Twilio's error codes flag
dead channels and the manager is told; STOP and START."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from responder.simulator import Behaviour, PhoneSimulator
from responder.simulator.behaviour import CallOutcome
from tests.harness import (
    AUTH_TOKEN,
    Service,
    at,
    due,
    manual_clock,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)

# The service runs on a clock only the test moves (`Service.advance`): the playbook's own voice step
# (+1 min) and backup tier (+3 min) never come by themselves, so whatever comes came from a failure, at
# the clock time of that failure; each test also checks on the timeline which failure made the page.
# (How fast a failure is acted on is measured by bench/failover_latency.py, not here.)


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    running = await start_service(db_url, sim, http, clock=manual_clock())
    yield running
    await stop_service(running)


async def alert(service: Service) -> str:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    case_id: str = body["case_id"]
    return case_id


def events(case: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in case["timeline"] if e["type"] == kind]


def page(case: dict[str, Any], person: str, channel: str, step: int = 0) -> dict[str, Any]:
    """The case's page of one step to one person on one channel."""
    found: list[dict[str, Any]] = [
        p
        for p in case["pages"]
        if (p["person"]["id"], p["channel"], p["step"], p["purpose"]) == (person, channel, step, "page")
    ]
    assert len(found) == 1, (person, channel, step, case["pages"])
    return found[0]


def failed_over(case: dict[str, Any], person: str, after_s: float = 0) -> None:
    """Assert that the person's call is the fail-over of their step-0 SMS: the same step, made by a
    `channel_failover` from that SMS, `after_s` seconds of clock time after the alert (at its own time
    unless the test moved the clock; the voice step is due at +1 min)."""
    sms, voice = page(case, person, "sms"), page(case, person, "voice")
    assert [e["detail"]["page"] for e in events(case, "channel_failover")] == [sms["id"]]
    assert at(voice["created_at"]) == due(case, after_s / 60)


async def metric(service: Service, name: str) -> float:
    async with service.http.get(f"{service.url}/metrics") as answer:
        text = await answer.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_an_undelivered_sms_calls_the_same_person_at_once(service: Service) -> None:
    failovers = await metric(service, 'responder_channel_failovers_total{channel="voice"}')
    ana = service.phone_of("ana")
    ana.behaviour = Behaviour(sms="undelivered", sms_error_code=30003)
    case_id = await alert(service)
    await ana.expect_call()
    case = await service.case(case_id)
    failed_over(case, "ana")
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
    service: Service,
) -> None:
    ana, maya = service.phone_of("ana"), service.phone_of("maya")
    ana.behaviour = Behaviour(sms_reject_code=21614)
    case_id = await alert(service)
    await ana.expect_call()  # refused at once by Twilio's API: voice takes over
    notice = await maya.expect_sms(contains="Ana Negotiator")
    assert "not a mobile number" in notice.body
    case = await service.case(case_id)
    failed_over(case, "ana")
    assert events(case, "contact_flagged")[0]["detail"]["reason"] == "not a mobile number"
    # The flag holds: the next alert calls Ana at once instead of texting her, and nobody is told again.
    second_id = await alert(service)
    await ana.expect_call()
    second = await service.case(second_id)
    assert [p["channel"] for p in second["pages"] if p["person"]["id"] == "ana" and p["step"] == 0] == [
        "voice"
    ]
    assert events(second, "contact_flagged") == [] and events(second, "channel_failover") == []
    # The only notice is the first case's: no page row to Maya on the second, no second SMS.
    assert [p["purpose"] for p in case["pages"] if p["person"]["id"] == "maya"] == ["notice"]
    assert [p for p in second["pages"] if p["person"]["id"] == "maya"] == []
    assert len([m for m in maya.messages if "Ana Negotiator" in m.body]) == 1
    assert not [m for m in ana.messages if "ACK" in m.body]


async def test_an_invalid_number_moves_on_to_the_next_person_at_once(service: Service) -> None:
    ana, ines = service.phone_of("ana"), service.phone_of("ines")
    ana.behaviour = Behaviour(sms_reject_code=21211)
    case_id = await alert(service)
    await ines.expect_sms(contains="ACK")
    # Ana cannot be reached at all: the chain moves on at once (the voice step, to Ines only).
    await ines.expect_call()
    case = await service.case(case_id)
    assert events(case, "contact_flagged")[0]["detail"]["reason"] == "invalid phone number"
    advanced = events(case, "escalation_advanced")
    assert advanced and advanced[0]["detail"]["page"] == page(case, "ana", "sms")["id"]
    voice_step = next(e for e in events(case, "step_fired") if e["detail"]["step"] == 1)
    assert at(advanced[0]["at"]) == at(voice_step["at"]) == due(case, 0)  # not at +1 min
    # The step fired without Ana (one transaction wrote it and its pages): she is never called for it.
    assert voice_step["detail"]["people"] == ["ines"]
    assert [p for p in case["pages"] if p["person"]["id"] == "ana" and p["channel"] == "voice"] == []
    await service.phone_of("maya").expect_sms(contains="invalid phone number")


async def test_stop_flags_sms_voice_takes_over_the_manager_is_told_and_start_undoes_it(
    service: Service,
) -> None:
    ana, maya = service.phone_of("ana"), service.phone_of("maya")
    await alert(service)
    await ana.expect_sms(contains="ACK")
    replies = await ana.send_sms("STOP")
    assert "voice" in replies[0].casefold() or "appels" in replies[0].casefold()
    await maya.expect_sms(contains="STOP")
    case_id = await alert(service)
    await ana.expect_call()  # step 0 of the next case: a call, not an SMS (no voice step is due yet)
    case = await service.case(case_id)
    assert [p["channel"] for p in case["pages"] if p["person"]["id"] == "ana" and p["step"] == 0] == ["voice"]
    await ana.send_sms("START")
    await alert(service)
    await ana.expect_sms(contains="ACK")


async def test_a_stop_from_someone_never_paged_reaches_the_manager_through_twilios_outage(
    service: Service,
) -> None:
    """No case to hang the notice on: it is still an outbox row, so a Twilio that cannot take it at
    first (500) does not lose it; it goes out once Twilio answers."""
    ana, maya = service.phone_of("ana"), service.phone_of("maya")
    maya.behaviour = Behaviour(api_error=500, api_error_count=2)
    await ana.send_sms("STOP")
    # Each refusal is retried on the clock, after a backoff of at most 10 s.
    for refused in (1, 2):
        await maya.expect_api_errors(refused)
        await service.advance(seconds=10)
    notice = await maya.expect_sms(contains="STOP")
    assert "Ana" in notice.body
    assert len([m for m in maya.messages if "STOP" in m.body]) == 1


async def test_twilios_own_opt_out_is_recorded_like_a_stop(service: Service) -> None:
    ana = service.phone_of("ana")
    ana.opted_out = True  # Ana texted STOP to our number some other time: Twilio refuses with 21610
    case_id = await alert(service)
    await ana.expect_call()
    case = await service.case(case_id)
    failed_over(case, "ana")
    assert events(case, "contact_flagged")[0]["detail"]["reason"] == "opted out of SMS (STOP)"


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed", "machine"])
async def test_a_failed_call_after_the_sms_moves_the_chain_at_once(
    service: Service, outcome: CallOutcome
) -> None:
    ana, ines = service.phone_of("ana"), service.phone_of("ines")
    ana.behaviour = ines.behaviour = Behaviour(call=outcome)
    case_id = await alert(service)
    await ana.expect_sms(contains="ACK")
    await service.advance(minutes=1)
    calls = [await ana.expect_call(), await ines.expect_call()]  # the voice step, on its timer (+1 min)
    for call in calls:
        await call.expect_status("completed" if outcome == "machine" else outcome)
    # Both had their SMS already: nothing left to try for them, so the backup tier comes at once
    # (from the first failure; the second is late news about the same step), not at +3 min.
    await service.phone_of("bruno").expect_sms(contains="ACK")
    case = await service.case(case_id)
    calls_of = {page(case, person, "voice", step=1)["id"] for person in ("ana", "ines")}
    advanced = events(case, "escalation_advanced")[0]
    assert advanced["detail"]["page"] in calls_of
    assert advanced["detail"]["reason"] in {
        e["detail"]["reason"] for e in events(case, "page_failed") if e["detail"]["page"] in calls_of
    }
    assert events(case, "channel_failover") == []
    backup = next(e for e in events(case, "step_fired") if e["detail"]["tier"] == "backup-negotiator")
    assert at(advanced["at"]) == at(backup["at"]) == due(case, 1)
    assert backup["detail"]["people"] == ["bruno"]


async def test_a_failure_whose_callback_was_lost_is_found_by_asking_twilio(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(
        db_url,
        sim,
        http,
        clock=manual_clock(),
        RESPONDER_RECONCILE_AFTER_S="1",
        RESPONDER_SWEEP_INTERVAL_S="0.2",
    )
    try:
        ana, ines = service.phone_of("ana"), service.phone_of("ines")
        ana.behaviour = Behaviour(sms="undelivered", callbacks=False)
        case_id = await alert(service)
        await ines.expect_reported(await ines.expect_sms(contains="ACK"), "delivered")
        # No callback ever says so. Once Twilio has been quiet about it for a second of clock time, the
        # service fetches the message, sees it undelivered and calls Ana, long before the playbook's
        # voice step (a minute).
        await service.advance(seconds=2)
        await ana.expect_call()
        case = await service.case(case_id)
        failed_over(case, "ana", after_s=2)
        failover = events(case, "channel_failover")[0]["detail"]
        assert failover["to"] == "voice" and "(reconciled)" in failover["reason"]
        # Ines's SMS had its callbacks: delivered, and nothing to reconcile.
        pages = {p["person"]["id"]: p for p in case["pages"] if p["channel"] == "sms"}
        assert pages["ines"]["status"] == "delivered" and pages["ana"]["status"] == "failed"
        assert pages["ana"]["twilio_status"] == "undelivered" and pages["ana"]["outcome"] == "failed"
    finally:
        await stop_service(service)


async def test_repeated_and_late_callbacks_are_news_once(service: Service) -> None:
    case_id = await alert(service)
    ana = service.phone_of("ana")
    await ana.expect_reported(await ana.expect_sms(contains="ACK"), "delivered")  # the service has it
    page = next(p for p in (await service.case(case_id))["pages"] if p["person"]["id"] == "ana")
    assert page["status"] == "delivered"
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
    await ana.expect_call()
    case = await service.case(case_id)
    assert len([e for e in events(case, "page_failed") if e["detail"]["page"] == page["id"]]) == 1
    assert [(p["status"], p["twilio_status"]) for p in case["pages"] if p["id"] == page["id"]] == [
        ("failed", "undelivered")
    ]
    assert len(events(case, "channel_failover")) == 1
