"""Accepting and passing from a phone: SMS replies, key presses, one-time links; forged webhooks."""

from __future__ import annotations

import asyncio
import re

from twilio.request_validator import RequestValidator

from tests.harness import AUTH_TOKEN, Service, new_alert_id, sample


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


async def test_no_page_goes_out_after_the_accept(service: Service) -> None:
    case_id, _ = await open_case(service)
    await service.phone_of("ana").send_sms("ACK")
    before = len((await service.case(case_id))["pages"])
    # Wait past the voice step (+1m, 0.6 s here) and the backup tier (+3m, 1.8 s): nothing is paged.
    await service.phone_of("bruno").expect_nothing(timeout_s=2.5)
    pages = (await service.case(case_id))["pages"]
    assert [p for p in pages if p["purpose"] == "page"] == [
        p for p in pages[:before] if p["purpose"] == "page"
    ]


async def test_no_by_sms_pages_the_next_step_at_once_and_skips_the_passer(service: Service) -> None:
    case_id, _ = await open_case(service)
    replies = await service.phone_of("ana").send_sms("NO")
    assert any("passé" in reply for reply in replies)
    call = await service.phone_of("ines").expect_call(timeout_s=0.5)  # the voice step, now: not at +1m
    assert call is not None
    await service.phone_of("ana").expect_no_call(timeout_s=0.5)
    case = await service.case(case_id)
    assert "page_passed" in [e["type"] for e in case["timeline"]]


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


async def test_forged_twilio_callbacks_get_403_and_change_nothing(service: Service) -> None:
    case_id, _ = await open_case(service)
    phone = service.settings.person("ana")
    assert phone is not None
    sms_url = f"{service.url}/twilio/sms"
    form = {"From": phone.phone, "To": "+15005550006", "Body": "ACK", "MessageSid": "SM" + "f" * 32}
    wrong = RequestValidator("not-the-token").compute_signature(sms_url, form)
    for headers in ({}, {"X-Twilio-Signature": wrong}):
        async with service.http.post(sms_url, data=form, headers=headers) as response:
            assert response.status == 403
    page = next(p for p in (await service.case(case_id))["pages"] if p["person"]["id"] == "ana")
    status_url = f"{service.url}/twilio/status/{page['id']}"
    failed = {"MessageSid": "SM" + "e" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    async with service.http.post(status_url, data=failed, headers={"X-Twilio-Signature": wrong}) as response:
        assert response.status == 403
    # Signed with the real token but for another URL (replayed elsewhere): refused too.
    elsewhere = RequestValidator(AUTH_TOKEN).compute_signature(sms_url, failed)
    async with service.http.post(
        status_url, data=failed, headers={"X-Twilio-Signature": elsewhere}
    ) as response:
        assert response.status == 403
    case = await service.case(case_id)
    assert case["status"] == "open"
    assert "page_failed" not in [e["type"] for e in case["timeline"]]


async def test_undelivered_sms_moves_the_chain_on_at_once(service: Service) -> None:
    from responder.simulator import Behaviour

    service.phone_of("ana").behaviour = Behaviour(sms="undelivered", sms_error_code=30003)
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    # The failure is news: the voice step comes at once, not at +1m.
    await service.phone_of("ana").expect_call(timeout_s=0.5)
    case = await service.case(body["case_id"])
    failed = [e for e in case["timeline"] if e["type"] == "page_failed"]
    assert failed and failed[0]["detail"]["error_code"] == 30003


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
