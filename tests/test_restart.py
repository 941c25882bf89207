"""kill -9 in the middle of an escalation, start again: the chain continues on time, nothing twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select
from sqlmodel import col

from responder.clock import ScaledClock
from responder.simulator import Behaviour, PhoneSimulator
from responder.store.db import Database
from responder.store.models import Case, Page
from responder.tools import signed_headers
from tests.harness import API_TOKEN, SOCIAL_SECRET, at, due, events, new_alert_id, patient_phones, sample
from tests.process import ServiceProcess

# 1/25 speed (a scaled clock): the voice step (+1m) comes 2.4 s after the alert, the backup tier (+3m)
# after 7.2 s. No safety sweep within a test (every 5 minutes): only the engine's start-up and its
# wake-ups fire steps.
SCALE = 0.04
ENV = {"RESPONDER_TIME_SCALE": str(SCALE), "RESPONDER_SWEEP_INTERVAL_S": "300"}


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    # Calls hold their menu for its real timeout: no "no key pressed" moves the chain within the test.
    async with patient_phones() as simulator:
        yield simulator


@pytest.fixture
async def process(db_url: str, sim: PhoneSimulator) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(db_url, sim, extra_env=ENV)
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
    steps_before = {p.step for p in await pages_with_status(process.db_url)}  # final: nobody runs
    received = (await case_row(process.db_url, case_id)).received_at
    voice_due = received + timedelta(minutes=1)
    # The service's case time, as its scaled clock reads it (and will again after the restart).
    clock = ScaledClock(SCALE, process.clock_start)
    # While it is dead the voice step falls due; nobody can ring.
    wait_s = max(0.0, (voice_due - clock.now()).total_seconds() * SCALE)
    await ana.expect_no_call(timeout_s=wait_s + 0.1)

    restarted_at = clock.now()
    await process.start()
    await ana.expect_call()  # the overdue voice step fires once the service is back
    await sim.phone("+33639980001").expect_call()  # and to Ines, same step
    # On time after the restart: the backup negotiator at +3m, on a wake-up the new process armed.
    bruno = sim.phone("+33639980003")
    await bruno.expect_sms(contains="ACK")
    await bruno.send_sms("ACK")

    async with http.get(
        f"{process.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as r:
        case = await r.json()
    assert case["status"] == "acknowledged" and case["accepted_by"]["id"] == "bruno"
    fired = {e["detail"]["step"]: at(e["at"]) for e in events(case, "step_fired")}
    assert sorted(fired)[:3] == [0, 1, 2]
    if 1 not in steps_before:  # (a very slow machine may have rung before the kill)
        assert fired[1] >= restarted_at  # the voice step was fired by the new process
    assert fired[2] >= due(case, 3)  # not early, and not pulled forward
    assert events(case, "escalation_advanced") == []
    first_sms = [p for p in case["pages"] if p["step"] == 0]
    assert len(first_sms) == 2, first_sms  # step 0 paged Ines and Ana once each, not again after the crash
    assert len([m for m in ana.messages if "ACK" in m.body]) == 1
    assert len(ana.calls) == 1


async def test_kill_9_while_pages_are_in_flight_every_page_is_sent_once_or_again(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """Twilio has taken the SMS but not yet answered when the process dies. A page whose status callback
    came in meanwhile is confirmed and sent once; one Twilio said nothing about is sent again after the
    restart (at least once, never lost). The test counts every SMS per page."""
    # The service waits 15 s for Twilio's answer; the kill comes before that, right after Ines's
    # callbacks (15 s is what a busy machine needs; with 6 s a retry once went out before the kill).
    # PostgreSQL sends a claimed page again after twice that.
    service = ServiceProcess(
        db_url, sim, extra_env={"RESPONDER_TIME_SCALE": "1", "RESPONDER_TWILIO_TIMEOUT_S": "15"}
    )
    await service.run("db", "upgrade")
    try:
        await service.start()
        ines, ana = sim.phone("+33639980001"), sim.phone("+33639980002")
        ines.behaviour = Behaviour(api_delay_s=120)  # sent, the answers hang; the callbacks come
        ana.behaviour = Behaviour(api_delay_s=120, callbacks=False)  # sent; Twilio says nothing
        for _ in range(4):
            body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id()))
            async with http.post(
                f"{service.url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
            ) as r:
                assert r.status == 202
        for _ in range(4):
            await ana.expect_sms(contains="ACK")
        # Ines's delivery callbacks must have been taken in (they trail the SMS a little).
        for _ in range(4):
            await ines.expect_reported(await ines.expect_sms(contains="ACK"), "delivered")
        await service.kill9()  # within the 15 s the service would wait for Ana's answers
        assert len(ana.messages) == 4  # no retry went out before the kill
        # Unconfirmed: claimed and awaiting Twilio's answer (or, on a slow machine, timed out and
        # waiting for a retry); either way sent again after the restart.
        in_flight = await pages_with_status(db_url, "claimed", "pending")
        assert {p.person_id for p in in_flight} == {"ana"} and len(in_flight) == 4

        ines.behaviour = ana.behaviour = Behaviour()
        await service.start()
        for _ in range(4):  # sent again: SQLite requeues at start, PostgreSQL after the stale-claim time
            await ana.expect_sms(contains="ACK", timeout_s=90)
        pages = await pages_with_status(db_url)
        assert len(pages) == 8 and all(p.status not in ("pending", "claimed") for p in pages)
        received = [m.body for m in [*ines.messages, *ana.messages] if "ACK" in m.body]
        for page in pages:
            count = sum(f"/a/{page.id}." in text for text in received)
            assert count == (2 if page.id in {p.id for p in in_flight} else 1), (page.person_id, count)
    finally:
        await service.stop()


async def case_row(db_url: str, case_id: str) -> Case:
    db = Database(db_url)
    try:
        async with db.sessions() as session:
            case = await session.get(Case, case_id)
            assert case is not None
            return case
    finally:
        await db.close()


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
