"""kill -9 in the middle of an escalation, start again: the chain continues on time, nothing twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select
from sqlmodel import col

from responder.simulator import Behaviour, PhoneSimulator
from responder.store.db import Database
from responder.store.models import Page
from responder.tools import signed_headers
from tests.harness import API_TOKEN, SOCIAL_SECRET, new_alert_id, sample
from tests.process import ServiceProcess

# 1/50 speed: the voice step (+1m) comes 1.2 s after the alert, the backup tier (+3m) after 3.6 s.
TIME_SCALE = "0.02"


@pytest.fixture
async def process(db_url: str, sim: PhoneSimulator) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(db_url, sim, extra_env={"RESPONDER_TIME_SCALE": TIME_SCALE})
    await service.run("db", "upgrade")
    yield service
    await service.stop()


async def test_kill_9_mid_escalation_then_restart_continues_on_time(
    process: ServiceProcess, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    await process.start()
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    async with http.post(
        f"{process.url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
    ) as r:
        assert r.status == 202
        case_id = (await r.json())["case_id"]
    ana = sim.phone("+33639980002")
    await ana.expect_sms(contains="ACK")

    await process.kill9()
    # While it is dead the voice step (+1.2 s) falls due; nobody can ring.
    await ana.expect_no_call(timeout_s=1.5)

    loop_time = asyncio.get_running_loop().time
    restarted_at = loop_time()
    await process.start()
    await ana.expect_call(timeout_s=5)  # the overdue voice step fires at once
    assert loop_time() - restarted_at < 5
    await sim.phone("+33639980001").expect_call(timeout_s=2)  # and to Ines, same step
    # On time after the restart: the backup negotiator at +3m (3.6 s after the alert).
    bruno = sim.phone("+33639980003")
    await bruno.expect_sms(contains="ACK", timeout_s=5)
    await bruno.send_sms("ACK")

    async with http.get(
        f"{process.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as r:
        case = await r.json()
    assert case["status"] == "acknowledged" and case["accepted_by"]["id"] == "bruno"
    first_sms = [p for p in case["pages"] if p["step"] == 0]
    assert len(first_sms) == 2, first_sms  # step 0 paged Ines and Ana once each, not again after the crash
    assert len([m for m in ana.messages if "ACK" in m.body]) == 1


async def test_kill_9_while_pages_are_in_flight_every_page_is_sent_once_or_again(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """Twilio has taken the SMS but not yet answered when the process dies. A page whose status callback
    came in meanwhile is confirmed and sent once; one Twilio said nothing about is sent again after the
    restart (at least once, never lost). The test counts every SMS per page."""
    service = ServiceProcess(
        db_url, sim, extra_env={"RESPONDER_TIME_SCALE": "1", "RESPONDER_TWILIO_TIMEOUT_S": "3"}
    )
    await service.run("db", "upgrade")
    try:
        await service.start()
        ines, ana = sim.phone("+33639980001"), sim.phone("+33639980002")
        ines.behaviour = Behaviour(api_delay_s=30)  # sent, the answers hang; the callbacks come
        ana.behaviour = Behaviour(api_delay_s=30, callbacks=False)  # sent; Twilio says nothing
        for _ in range(4):
            body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id()))
            async with http.post(
                f"{service.url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
            ) as r:
                assert r.status == 202
        for _ in range(4):
            await ines.expect_sms(contains="ACK")
            await ana.expect_sms(contains="ACK")
        # Ines's delivery callbacks must have landed (on a busy machine they trail the SMS a little).
        for _ in range(40):
            unconfirmed = await pages_with_status(db_url, "claimed", "pending")
            if {p.person_id for p in unconfirmed} == {"ana"}:
                break
            await asyncio.sleep(0.05)
        await service.kill9()  # within the 3 s the service would wait for Ana's answers
        # Unconfirmed: claimed and awaiting Twilio's answer (or, on a slow machine, timed out and
        # waiting for a retry); either way sent again after the restart.
        in_flight = await pages_with_status(db_url, "claimed", "pending")
        assert {p.person_id for p in in_flight} == {"ana"} and len(in_flight) == 4

        ines.behaviour = ana.behaviour = Behaviour()
        await service.start()
        for _ in range(4):  # sent again: SQLite requeues at start, PostgreSQL after the stale-claim time
            await ana.expect_sms(contains="ACK", timeout_s=10)
        pages = await pages_with_status(db_url)
        assert len(pages) == 8 and all(p.status not in ("pending", "claimed") for p in pages)
        received = [m.body for m in [*ines.messages, *ana.messages] if "ACK" in m.body]
        for page in pages:
            count = sum(f"/a/{page.id}." in text for text in received)
            assert count == (2 if page.id in {p.id for p in in_flight} else 1), (page.person_id, count)
    finally:
        await service.stop()


async def pages_with_status(db_url: str, *statuses: str) -> list[Page]:
    db = Database(db_url)
    try:
        async with db.sessions() as session:
            query = select(Page).where(col(Page.purpose) == "page")
            if statuses:
                query = query.where(col(Page.status).in_(statuses))
            return list((await session.execute(query)).scalars().all())
    finally:
        await db.close()
