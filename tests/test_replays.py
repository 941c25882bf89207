"""A captured Twilio webhook sent again, signature and all: answered 200, and nothing changes.

Twilio's signatures carry no timestamp, so whoever captured one request could send it forever. Each
test lets a phone act for real, takes the exact request the simulator sent (sim.carrier.webhooks.sent),
sends it again, and checks the case did not move."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from responder.simulator import PhoneSimulator
from responder.simulator.carrier import SentWebhook
from tests.harness import (
    AUTH_TOKEN,
    Service,
    new_alert_id,
    patient_phones,
    sample,
    start_service,
    stop_service,
)


@pytest.fixture
async def patient(db_url: str, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    """Phones that hold a call menu for its real 6 s, so a test presses keys without racing it."""
    async with patient_phones() as phones:
        running = await start_service(db_url, phones, http)
        yield running
        await stop_service(running)


async def open_case(service: Service) -> dict[str, Any]:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    return await service.case(body["case_id"])


def last_sent(sim: PhoneSimulator, path_part: str) -> SentWebhook:
    return [w for w in sim.carrier.webhooks.sent if path_part in w.url][-1]


async def replay(sim: PhoneSimulator, sent: SentWebhook) -> None:
    status, _ = await sim.carrier.webhooks.replay(sent)
    assert status == 200


def count(case: dict[str, Any], kind: str) -> int:
    return len([e for e in case["timeline"] if e["type"] == kind])


async def test_a_replayed_ack_does_not_accept_a_later_case(service: Service, sim: PhoneSimulator) -> None:
    ana, ines = service.phone_of("ana"), service.phone_of("ines")
    first = await open_case(service)
    await ana.expect_sms(contains=first["ref"])
    await ana.send_sms("ACK")
    assert (await service.case(first["id"]))["accepted_by"]["id"] == "ana"
    captured = last_sent(sim, "/twilio/sms")
    later = await open_case(service)
    await ana.expect_sms(contains=later["ref"])
    await replay(sim, captured)
    case = await service.case(later["id"])
    assert case["status"] == "open" and case["accepted_by"] is None
    assert count(case, "case_accepted") == 0
    await ines.expect_sms(contains=later["ref"])
    assert not [m for m in ines.messages if later["ref"] in m.body and "Ana" in m.body]  # nobody told


async def test_a_replayed_no_passes_once(service: Service, sim: PhoneSimulator) -> None:
    ana = service.phone_of("ana")
    case = await open_case(service)
    await ana.expect_sms(contains=case["ref"])
    await ana.send_sms("NO")
    before = await service.case(case["id"])
    assert count(before, "page_passed") == 1
    await replay(sim, last_sent(sim, "/twilio/sms"))
    after = await service.case(case["id"])
    assert count(after, "page_passed") == 1
    assert count(after, "escalation_advanced") == count(before, "escalation_advanced")


async def test_replayed_stop_and_start_change_nothing(service: Service, sim: PhoneSimulator) -> None:
    ana = service.phone_of("ana")
    case = await open_case(service)
    await ana.expect_sms(contains=case["ref"])
    await ana.send_sms("STOP")
    stop = last_sent(sim, "/twilio/sms")
    await ana.send_sms("START")
    start = last_sent(sim, "/twilio/sms")
    await replay(sim, stop)  # Ana opted in again: an old STOP must not opt her out
    texted = await open_case(service)
    await ana.expect_sms(contains=texted["ref"])
    await ana.send_sms("STOP")
    await replay(sim, start)  # Ana opted out again: an old START must not opt her in
    called = await open_case(service)
    await ana.expect_call()
    case = await service.case(called["id"])
    assert [p["channel"] for p in case["pages"] if p["person"]["id"] == "ana"][:1] == ["voice"]


async def test_a_replayed_key_1_changes_nothing(patient: Service) -> None:
    sim, ana = patient.sim, patient.phone_of("ana")
    case = await open_case(patient)
    call = await ana.expect_call(timeout_s=30)
    await call.expect_prompt()
    await call.press("1")
    captured = last_sent(sim, "/key")
    before = await patient.case(case["id"])
    assert before["accepted_by"]["id"] == "ana"
    await replay(sim, captured)
    after = await patient.case(case["id"])
    assert count(after, "accept_refused") == 0 and count(after, "case_accepted") == 1


async def test_a_replayed_key_2_passes_once(patient: Service) -> None:
    sim, ana = patient.sim, patient.phone_of("ana")
    case = await open_case(patient)
    call = await ana.expect_call(timeout_s=30)
    await call.expect_prompt()
    await call.press("2")
    captured = last_sent(sim, "/key")
    before = await patient.case(case["id"])
    assert count(before, "page_passed") == 1
    await replay(sim, captured)
    after = await patient.case(case["id"])
    assert count(after, "page_passed") == 1
    assert count(after, "escalation_advanced") == count(before, "escalation_advanced")


async def test_a_replayed_no_key_fails_the_page_once(service: Service, sim: PhoneSimulator) -> None:
    ana = service.phone_of("ana")
    case = await open_case(service)
    call = await ana.expect_call()  # nobody presses: after the last prompt the menu says "no key"
    await call.expect_status("completed")
    captured = last_sent(sim, "play=done")
    page_id = captured.url.split("/twilio/voice/")[1].split("?")[0]

    def no_key_failures(case: dict[str, Any]) -> int:
        return len(
            [
                e
                for e in case["timeline"]
                if e["type"] == "page_failed"
                and e["detail"].get("page") == page_id
                and e["detail"].get("reason") == "no key pressed"
            ]
        )

    assert no_key_failures(await service.case(case["id"])) == 1
    await replay(sim, captured)
    assert no_key_failures(await service.case(case["id"])) == 1


async def test_a_signed_sms_without_a_message_sid_is_refused(service: Service) -> None:
    url = f"{service.url}/twilio/sms"
    form = {"From": service.phone_of("ana").number, "To": "+15005550006", "Body": "ACK"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    async with service.http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as answer:
        assert answer.status == 400
        assert (await answer.json())["detail"][0]["field"] == "MessageSid"


def folded(sent: SentWebhook, into: str, away: str) -> SentWebhook:
    """The same request with field `away` folded into `into`: Twilio's signature joins names and
    values without separators, so `MessageSid=SMx`, `NumMedia=0` signs as `MessageSid=SMxNumMedia0`."""
    params = dict(sent.params)
    params[into] += away + params.pop(away)
    return SentWebhook(sent.method, sent.url, list(params.items()), sent.signature, sent.answer)


async def test_a_refolded_ack_keeps_its_signature_but_is_refused(
    service: Service, sim: PhoneSimulator
) -> None:
    ana = service.phone_of("ana")
    first = await open_case(service)
    await ana.expect_sms(contains=first["ref"])
    await ana.send_sms("ACK")
    captured = last_sent(sim, "/twilio/sms")
    later = await open_case(service)
    await ana.expect_sms(contains=later["ref"])
    status, _ = await sim.carrier.webhooks.replay(folded(captured, "MessageSid", "NumMedia"))
    assert status == 400  # the signature held; the sid has not Twilio's shape
    case = await service.case(later["id"])
    assert case["status"] == "open" and count(case, "case_accepted") == 0


async def test_a_refolded_key_press_is_refused(patient: Service) -> None:
    sim, ana = patient.sim, patient.phone_of("ana")
    case = await open_case(patient)
    call = await ana.expect_call(timeout_s=30)
    await call.expect_prompt()
    await call.press("1")
    status, _ = await sim.carrier.webhooks.replay(folded(last_sent(sim, "/key"), "CallSid", "CallStatus"))
    assert status == 400
    after = await patient.case(case["id"])
    assert count(after, "accept_refused") == 0


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("status", {"MessageSid": "SM" + "c" * 32, "MessageStatus": "failed", "ErrorCode": "²"}),
        ("status", {"MessageSid": "SM" + "c" * 32, "MessageStatus": "sent", "SequenceNumber": "9" * 30}),
        ("status", {"MessageSid": "SM" + "c" * 32, "MessageStatus": "x" * 5000}),
        ("status", {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered\x00"}),
        ("voice?play=²", {"CallSid": "CA" + "c" * 32, "CallStatus": "in-progress"}),
        ("voice/key?play=²", {"CallSid": "CA" + "c" * 32, "Digits": "1\x00"}),
        ("sms", {"MessageSid": "SM\x00" + "c" * 31, "From": "+33639980002", "Body": "ACK"}),
        ("sms", {"MessageSid": "SM" + "d" * 32, "From": "+33639980002", "Body": "ACK K7\x00Q"}),
    ],
)
async def test_odd_values_in_a_signed_webhook_never_get_a_5xx(
    service: Service, path: str, form: dict[str, str]
) -> None:
    case = await open_case(service)
    await service.phone_of("ana").expect_sms(contains=case["ref"])
    case = await service.case(case["id"])
    page = next(p for p in case["pages"] if p["person"]["id"] == "ana")
    route = path.replace("status", f"status/{page['id']}").replace("voice", f"voice/{page['id']}")
    url = f"{service.url}/twilio/{route}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    async with service.http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as answer:
        assert answer.status < 500, await answer.text()
    after = await service.case(case["id"])
    assert after["status"] == "open"
