"""Reactions to alert updates through the real service (PRODUCT.md §3): live content re-pages at
once; a new location tells whoever has the case; a retract asks for review and never stops paging."""

from __future__ import annotations

import aiohttp

from responder.simulator import PhoneSimulator
from tests.harness import (
    FORUM_SECRET,
    Service,
    at,
    due,
    events,
    manual_clock,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)


async def test_content_going_live_fires_the_next_step_at_once(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    # On a clock only the test moves the voice step (+5m) never comes by itself: a call is the re-page.
    service = await start_service(db_url, sim, http, clock=manual_clock())
    try:
        await going_live_repages(service)
    finally:
        await stop_service(service)


async def going_live_repages(service: Service) -> None:
    alert_id = new_alert_id()
    status, body = await service.post_alert(
        sample("medium-comment-us.json", alert_id=alert_id), secret=FORUM_SECRET
    )
    assert status == 202
    ines = service.phone_of("ines")  # standard-risk: the investigator by SMS, voice only at +5m
    await ines.expect_sms(contains="US-CA")
    update = sample("medium-comment-us.json", alert_id=alert_id, event="update")
    update["content"] = {"type": "live", "is_live": True}
    status, _ = await service.post_alert(update, secret=FORUM_SECRET)
    assert status == 202
    await ines.expect_call()  # the voice step, now: not at +5m
    case = await service.case(body["case_id"])
    reaction = events(case, "reaction")[0]
    assert reaction["detail"]["news"] == ["went_live", "new_location"] and reaction["detail"]["repage"]
    assert case["is_live"] is True
    voice = next(e for e in events(case, "step_fired") if e["detail"]["channel"] == "voice")
    assert voice["detail"]["people"] == ["ines"]
    assert at(reaction["at"]) == at(voice["at"]) == due(case, 0)  # at once, not at +5m


async def test_new_location_tells_the_holder(service: Service) -> None:
    alert_id = new_alert_id()
    await service.post_alert(sample("imminent-live-fr.json", alert_id=alert_id))
    ana = service.phone_of("ana")
    await ana.expect_sms(contains="ACK")
    await ana.send_sms("ACK")
    status, _ = await service.post_alert(sample("update-location-fr.json", alert_id=alert_id))
    assert status == 202
    notice = await ana.expect_sms(contains="localisation")  # Ana reads French
    assert "48.8352" not in notice.body  # the news, never the location itself


async def test_retract_asks_for_review_and_paging_goes_on(service: Service) -> None:
    alert_id = new_alert_id()
    _, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=alert_id))
    await service.phone_of("ana").expect_sms(contains="ACK")
    status, answer = await service.post_alert(sample("retract-us.json", alert_id=alert_id))
    assert status == 202 and answer["status"] == "open"
    await service.phone_of("tom").expect_sms(contains="review")  # the team lead is asked to review
    await service.phone_of("ana").expect_call()  # and the chain goes on
    assert (await service.case(body["case_id"]))["status"] == "open"
