"""The outbox's safety net for a claim that no send carries (paging/outbox.py `_requeue_strays`).

A page is claimed in the transaction that writes it, and its send starts once that commits; a caller
cut short between the two would leave a claim that the live process's lease keeps from everyone else.
No request of the public surface can be cut at exactly that point on purpose, so the test leaves such a
claim in the database itself, and runs the lease's periodic job (`keep_alive`) by hand: the scheduler's
own run of it is 40 s apart here, beyond the test.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import select, update
from sqlmodel import col

from responder.api.keys import DB, ENGINE
from responder.simulator import Behaviour, PhoneSimulator
from responder.store.models import Page
from tests.harness import Service, manual_clock, new_alert_id, sample, start_service, stop_service

# A Twilio deadline of 60 s makes the lease 120 s and its periodic job 40 s apart.
ENV = {"RESPONDER_TWILIO_TIMEOUT_S": "60"}
# Twilio sends Ines's SMS at once but answers the request only this much later: her send is in flight
# for that long (the checks below take milliseconds).
SLOW_ANSWER_S = 8.0


async def page_of(service: Service, case_id: str, person: str) -> Page:
    async with service.app[DB].transaction() as session:
        rows = await session.execute(
            select(Page).where(col(Page.case_id) == case_id, col(Page.person_id) == person)
        )
        pages = list(rows.scalars())
    assert len(pages) == 1, pages
    return pages[0]


async def open_case(service: Service) -> dict[str, Any]:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    return await service.case(body["case_id"])


async def test_a_claim_no_send_carries_is_sent_after_two_looks_and_one_in_flight_is_kept(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http, clock=manual_clock(), extra_env=ENV)
    try:
        outbox = service.app[ENGINE].outbox
        assert outbox is not None and service.clock is not None
        ana, ines = service.phone_of("ana"), service.phone_of("ines")
        # Ana's SMS of case A is refused once (500): it waits, pending, for a retry the clock never reaches.
        ana.behaviour = Behaviour(api_error=500, api_error_count=1)
        a = await open_case(service)
        await ines.expect_sms(contains=a["ref"])
        await service.app[ENGINE].settled()
        stray = await page_of(service, a["id"], "ana")
        assert stray.status == "pending"
        # Claimed by this process as a cut-short caller leaves it: no send of ours carries it.
        async with service.app[DB].transaction() as session:
            await session.execute(
                update(Page)
                .where(col(Page.id) == stray.id)
                .values(status="claimed", claimed_by=outbox.owner, not_before=service.clock.now())
            )
        # Case B: Twilio sends Ines's SMS at once but answers our request late, and its status
        # callbacks are lost (they would move the page on): her send is in flight, holding its claim.
        ines.behaviour = Behaviour(api_delay_s=SLOW_ANSWER_S, callbacks=False)
        b = await open_case(service)
        await ines.expect_sms(contains=b["ref"])

        await outbox.keep_alive()  # the first look: seen idle once, not yet a stray
        assert (await page_of(service, a["id"], "ana")).status == "claimed"
        carried = await page_of(service, b["id"], "ines")
        assert carried.status == "claimed"  # Twilio has not answered Ines's send yet

        await outbox.keep_alive()  # the second look: idle twice, so back to pending, and sent
        await ana.expect_sms(contains=a["ref"])
        # Ines's claim was carried by her send through both looks: kept, not sent again.
        still = await page_of(service, b["id"], "ines")
        assert (still.status, still.attempts) == ("claimed", carried.attempts)
        await service.app[ENGINE].settled()  # her send ends once Twilio answers
        sent = await page_of(service, b["id"], "ines")
        assert sent.status == "sent" and sent.twilio_sid is not None
        assert len([m for m in ines.messages if b["ref"] in m.body]) == 1
        assert len([m for m in ana.messages if a["ref"] in m.body]) == 1
        assert (await page_of(service, a["id"], "ana")).attempts == stray.attempts + 1
    finally:
        await stop_service(service)
