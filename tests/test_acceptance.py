"""Accepting and passing from a phone: SMS replies, key presses, one-time links; forged webhooks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import (
    AUTH_TOKEN,
    Service,
    at,
    due,
    edited_playbooks,
    events,
    manual_clock,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)


@pytest.fixture
async def still(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    """The service on a clock only the test moves (`Service.advance`): no step of the playbook comes
    by itself, so a page in the test came from what the test did, and its time says when exactly."""
    running = await start_service(db_url, sim, http, clock=manual_clock())
    yield running
    await stop_service(running)


async def open_case(service: Service) -> tuple[str, str]:
    """Post the Paris alert; returns (case_id, ref) once Ana has her first SMS."""
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    case = await service.case(body["case_id"])
    await service.phone_of("ana").expect_sms(contains=case["ref"])
    return body["case_id"], case["ref"]


async def test_sms_ack_accepts_and_everyone_else_is_told(service: Service) -> None:
    case_id, ref = await open_case(service)
    replies = await service.phone_of("ana").send_sms("ack")
    # Ana and Ines read French (config/responder.yaml): replies and notices come in their language.
    assert any(f"Le dossier {ref} est à vous" in reply for reply in replies)
    await service.phone_of("ines").expect_sms(contains="pris par Ana Negotiator")
    case = await service.case(case_id)
    assert (case["status"], case["accepted_by"]["name"], case["accepted_via"]) == (
        "acknowledged",
        "Ana Negotiator",
        "sms",
    )
    # A later accept is told who has the case, and changes nothing.
    late = await service.phone_of("ines").send_sms(f"ACK {ref}")
    assert any("déjà été accepté par Ana Negotiator" in reply for reply in late)
    assert (await service.case(case_id))["accepted_by"]["id"] == "ana"


async def test_ack_with_a_code_picks_that_case(service: Service) -> None:
    first_id, first_ref = await open_case(service)
    second_id, _ = await open_case(service)
    replies = await service.phone_of("ana").send_sms(f"ACK {first_ref.lower()}")
    assert any(first_ref in reply for reply in replies)
    assert (await service.case(first_id))["status"] == "acknowledged"
    assert (await service.case(second_id))["status"] == "open"
    # Plain ACK takes the latest open page: the second case.
    await service.phone_of("ana").send_sms("ACK")
    assert (await service.case(second_id))["accepted_by"]["id"] == "ana"


async def test_no_page_goes_out_after_the_accept(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # A task due at +4m, after the voice step (+1m) and the backup tier (+3m): its overdue notice is
    # the engine acting on the case after both steps were due.
    playbooks = edited_playbooks(
        tmp_path, "tasks:\n", "tasks:\n  - {id: checkpoint, title: Checkpoint, due: 4m}\n"
    )
    service = await start_service(
        db_url, sim, http, clock=manual_clock(), RESPONDER_PLAYBOOKS_DIR=str(playbooks)
    )
    try:
        case_id, _ = await open_case(service)
        await service.phone_of("ana").send_sms("ACK")
        case = await service.case(case_id)
        assert case["status"] == "acknowledged"
        before = [p["id"] for p in case["pages"] if p["purpose"] == "page"]
        await service.advance(minutes=4)
        await service.phone_of("ana").expect_sms(contains="tâche en retard : Checkpoint")
        case = await service.case(case_id)
        checkpoint = next(e for e in events(case, "task_overdue") if e["detail"]["task"] == "checkpoint")
        assert at(checkpoint["at"]) == due(case, 4)
        # Every step was due before that notice, and none paged anyone after the accept.
        # (By id: a page's status still moves on as Twilio's callbacks come.)
        assert [p["id"] for p in case["pages"] if p["purpose"] == "page"] == before
        assert service.phone_of("bruno").messages == [] and service.phone_of("bruno").calls == []
    finally:
        await stop_service(service)


async def test_no_by_sms_pages_the_next_step_at_once_and_skips_the_passer(still: Service) -> None:
    case_id, _ = await open_case(still)
    replies = await still.phone_of("ana").send_sms("NO")
    assert any("passé" in reply for reply in replies)
    await still.phone_of("ines").expect_call()  # the voice step, now: the clock has not moved
    case = await still.case(case_id)
    passed = events(case, "page_passed")
    assert [(e["actor"], e["detail"]["via"]) for e in passed] == [("person:ana", "sms")]
    advanced = events(case, "escalation_advanced")[0]
    assert advanced["detail"]["page"] == passed[0]["detail"]["page"]
    voice = next(e for e in events(case, "step_fired") if e["detail"]["step"] == 1)
    assert at(passed[0]["at"]) == at(advanced["at"]) == at(voice["at"]) == due(case, 0)  # not at +1m
    # The step fired without Ana, in one transaction with its pages: she is never called for it.
    assert voice["detail"]["people"] == ["ines"]
    assert [p for p in case["pages"] if p["person"]["id"] == "ana" and p["channel"] == "voice"] == []


async def test_unknown_number_gets_nothing_and_changes_nothing(service: Service) -> None:
    case_id, _ = await open_case(service)
    replies = await service.sim.phone("+447700900999").send_sms("ACK")
    assert replies == []
    assert (await service.case(case_id))["status"] == "open"


async def test_one_time_link_accepts_once(service: Service) -> None:
    case_id, ref = await open_case(service)
    ana_sms = service.phone_of("ana").messages[0].body
    link = re.search(r"https?://\S+/a/\S+", ana_sms)
    assert link is not None
    async with service.http.get(link.group(0)) as shown:
        assert shown.status == 200 and "<form" in await shown.text()
    assert (await service.case(case_id))["status"] == "open"  # a link preview (GET) accepts nothing
    async with service.http.post(link.group(0)) as used:
        page = await used.text()
        assert used.status == 200 and f"Le dossier {ref} est à vous" in page  # Ana reads French
        assert f'href="/cases/{case_id}"' in page  # on to the case page
    async with service.http.post(link.group(0)) as again:  # used up: it says so, and changes nothing
        assert again.status == 200 and "vous l&#x27;avez accepté" in await again.text()
    tampered = link.group(0)[:-3] + ("xyz" if not link.group(0).endswith("xyz") else "abc")
    async with service.http.post(tampered) as forged:
        assert forged.status in (403, 410)
    case = await service.case(case_id)
    assert (case["accepted_by"]["id"], case["accepted_via"]) == ("ana", "link")


async def test_forged_twilio_callbacks_get_403_and_change_nothing(still: Service) -> None:
    # The clock stands still: no step of the playbook comes within the test, any change would be a forgery's.
    case_id, _ = await open_case(still)
    phone = still.settings.person("ana")
    assert phone is not None
    sms_url = f"{still.url}/twilio/sms"
    form = {"From": phone.phone, "To": "+15005550006", "Body": "ACK", "MessageSid": "SM" + "f" * 32}
    wrong = RequestValidator("not-the-token").compute_signature(sms_url, form)
    for headers in ({}, {"X-Twilio-Signature": wrong}):
        async with still.http.post(sms_url, data=form, headers=headers) as response:
            assert response.status == 403
    page = next(p for p in (await still.case(case_id))["pages"] if p["person"]["id"] == "ana")
    status_url = f"{still.url}/twilio/status/{page['id']}"
    failed = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    async with still.http.post(status_url, data=failed, headers={"X-Twilio-Signature": wrong}) as response:
        assert response.status == 403
    # Signed with the real token but for another URL (replayed elsewhere): refused too.
    elsewhere = RequestValidator(AUTH_TOKEN).compute_signature(sms_url, failed)
    async with still.http.post(
        status_url, data=failed, headers={"X-Twilio-Signature": elsewhere}
    ) as response:
        assert response.status == 403
    case = await still.case(case_id)
    assert case["status"] == "open"
    assert "page_failed" not in [e["type"] for e in case["timeline"]]


async def test_undelivered_sms_moves_the_chain_on_at_once(still: Service) -> None:
    still.phone_of("ana").behaviour = Behaviour(sms="undelivered", sms_error_code=30003)
    status, body = await still.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    # The failure is news: Ana is called at once, not at the voice step (+1m).
    await still.phone_of("ana").expect_call()
    case = await still.case(body["case_id"])
    failed = events(case, "page_failed")
    assert failed and failed[0]["detail"]["error_code"] == 30003
    call = next(p for p in case["pages"] if p["person"]["id"] == "ana" and p["channel"] == "voice")
    assert [e["detail"]["page"] for e in events(case, "channel_failover")] == [failed[0]["detail"]["page"]]
    assert call["step"] == 0 and at(call["created_at"]) == due(case, 0)  # the clock has not moved


async def test_two_accepts_at_the_same_moment_exactly_one_wins(service: Service) -> None:
    case_id, ref = await open_case(service)
    await service.phone_of("ines").expect_sms(contains=ref)
    ana_replies, ines_replies = await asyncio.gather(
        service.phone_of("ana").send_sms(f"ACK {ref}"), service.phone_of("ines").send_sms(f"ACK {ref}")
    )
    case = await service.case(case_id)
    winner = case["accepted_by"]["name"]
    won = [replies for replies in (ana_replies, ines_replies) if any("est à vous" in r for r in replies)]
    told = [
        replies
        for replies in (ana_replies, ines_replies)
        if any(f"accepté par {winner}" in r for r in replies)
    ]
    assert len(won) == 1 and len(told) == 1, (ana_replies, ines_replies, winner)
    assert [e["type"] for e in case["timeline"]].count("case_accepted") == 1
