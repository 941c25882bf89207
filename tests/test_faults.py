"""Faults that hold, through the real service and the simulator's phones: a slow Twilio sends each page
once, a stop while sends are slow sends nothing twice, an outage holds the pages until Twilio answers,
and a database that does not answer gets 503 (never a 2xx for an alert not stored)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from responder.simulator import Behaviour, PhoneSimulator
from responder.store.db import Database
from responder.store.migrate import upgrade
from responder.tools import signed_headers
from tests.freeze import FreezableRelay
from tests.harness import (
    API_TOKEN,
    SOCIAL_SECRET,
    Service,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)
from tests.process import ServiceProcess

# A bound on waiting for what must happen; only a broken run reaches it.
MUST_COME_S = 60.0
# At full speed the playbook's next step is a minute away: every page here is step 0's.
FULL_SPEED = {"RESPONDER_TIME_SCALE": "1.0"}


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Look again until `check` holds (state the service keeps, with no event to wait on from here)."""
    async with asyncio.timeout(MUST_COME_S):
        while not await check():  # noqa: ASYNC110 (the service's state; it sends no event to wait on)
            await asyncio.sleep(0.1)
    assert await check(), what


async def cases(url: str, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with http.get(f"{url}/v1/cases?limit=500", headers=headers) as answer:
        listed = (await answer.json())["cases"]
    found = []
    for case in listed:
        async with http.get(f"{url}/v1/cases/{case['id']}", headers=headers) as answer:
            found.append(await answer.json())
    return found


async def post(url: str, http: aiohttp.ClientSession, alert_id: str | None = None) -> tuple[int, Any]:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=alert_id or new_alert_id()))
    async with http.post(f"{url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)) as r:
        return r.status, (await r.json(), r.headers.get("Retry-After"))


async def retried_post(url: str, http: aiohttp.ClientSession, alert_id: str) -> int:
    """The platform's retries: the alert again while the answer is 503 (a busy machine may need a
    second try after the database is free again), then its last answer."""
    statuses: list[int] = []

    async def answered() -> bool:
        status, _ = await post(url, http, alert_id)
        statuses.append(status)
        return status != 503

    await until(answered, "an answer other than 503 once the database is free")
    return statuses[-1]


def page_sms_counts(sim: PhoneSimulator, numbers: list[str]) -> Counter[str]:
    """How many SMS each page id reached the phones in (its one-time link names it)."""
    counts: Counter[str] = Counter()
    for number in numbers:
        for message in sim.phone(number).messages:
            if "/a/" in message.body:
                counts[message.body.split("/a/")[1].split(".")[0]] += 1
    return counts


async def all_recorded(url: str, http: aiohttp.ClientSession, expected_pages: int) -> bool:
    pages = [p for c in await cases(url, http) for p in c["pages"] if p["purpose"] == "page"]
    return len(pages) == expected_pages and all(p["status"] not in ("pending", "claimed") for p in pages)


async def test_a_slow_twilio_sends_each_page_once(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """Twilio answers after 2.5 s and sends no callbacks: 60 pages, 60 SMS. (The deadline is well past
    2.5 s: an answer later than the deadline is rightly sent again, and a busy machine can add seconds.)"""
    service = await start_service(db_url, sim, http, extra_env=FULL_SPEED, RESPONDER_TWILIO_TIMEOUT_S="10")
    try:
        ines, ana = service.phone_of("ines"), service.phone_of("ana")
        ines.behaviour = ana.behaviour = Behaviour(api_delay_s=2.5, callbacks=False)
        for _ in range(30):
            status, _ = await post(service.url, http)
            assert status == 202
        await until(lambda: all_recorded(service.url, http, 60), "every page recorded as sent")
        counts = page_sms_counts(sim, [ines.number, ana.number])
        assert len(counts) == 60 and set(counts.values()) == {1}, counts.most_common(3)
        timelines = [e["type"] for c in await cases(service.url, http) for e in c["timeline"]]
        assert "page_failed" not in timelines
    finally:
        await stop_service(service)


async def test_a_stop_while_sends_are_slow_sends_nothing_twice(db_url: str, sim: PhoneSimulator) -> None:
    """SIGTERM while 20 sends wait on a slow Twilio: they finish and are recorded before the service
    goes; the rest go after the restart. Every page reaches its phone exactly once."""
    # The grace outlasts any busy machine's sends: what is proved is that they finish before it ends.
    service = ServiceProcess(db_url, sim, extra_env={**FULL_SPEED, "RESPONDER_STOP_GRACE_S": "120"})
    await service.run("db", "upgrade")
    ines, ana = sim.phone("+33639980001"), sim.phone("+33639980002")
    async with aiohttp.ClientSession() as http:
        try:
            await service.start()
            ines.behaviour = ana.behaviour = Behaviour(api_delay_s=2)
            statuses = await asyncio.gather(*(post(service.url, http) for _ in range(30)))
            assert {status for status, _ in statuses} == {202}
            for _ in range(5):  # a full round of sends is in flight, waiting on Twilio's answers
                await ana.expect_sms(contains="ACK", timeout_s=MUST_COME_S)
            await service.stop()  # SIGTERM
            await service.start()
            await until(lambda: all_recorded(service.url, http, 60), "every page recorded as sent")
            counts = page_sms_counts(sim, [ines.number, ana.number])
            assert len(counts) == 60 and set(counts.values()) == {1}, counts.most_common(3)
        finally:
            await service.stop()


async def test_a_twilio_outage_holds_the_pages_until_twilio_answers(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """Twilio answers 500 to everything for a while: the first responders' pages are retried until it
    answers (not failed, no chain pushed along), and the manager is told once it is over."""
    service = await start_service(
        db_url, sim, http, extra_env=FULL_SPEED, RESPONDER_TWILIO_OUTAGE_NOTICE_S="2"
    )
    try:
        phones = [service.phone_of(p.id) for p in service.settings.config.people]
        for phone in phones:
            phone.behaviour = Behaviour(api_error=500, api_error_count=10**6)
        status, (body, _) = await post(service.url, http)
        assert status == 202
        ana, ines, maya = service.phone_of("ana"), service.phone_of("ines"), service.phone_of("maya")
        await ana.expect_api_errors(6)  # more than the 5 attempts a page used to get
        for phone in phones:
            phone.behaviour = Behaviour()  # Twilio is back
        await ana.expect_sms(contains="ACK", timeout_s=MUST_COME_S)
        await ines.expect_sms(contains="ACK", timeout_s=MUST_COME_S)
        notice = await maya.expect_sms(contains="Twilio", timeout_s=MUST_COME_S)
        assert "none was dropped" in notice.body
        case = await service.case(body["case_id"])
        kinds = [e["type"] for e in case["timeline"]]
        assert kinds.count("page_retry") >= 6 and "provider_outage" in kinds
        assert "page_failed" not in kinds and "escalation_advanced" not in kinds
        async with http.get(f"{service.url}/metrics") as answer:
            assert "responder_twilio_outage 0.0" in await answer.text()
    finally:
        await stop_service(service)


async def test_a_frozen_postgresql_gets_503_at_once_and_nothing_is_lost(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    if db_url.startswith("sqlite"):
        return await a_locked_sqlite_gets_503(db_url, sim, http)
    target = urlsplit(db_url.replace("+asyncpg", ""))
    relay = FreezableRelay(target.hostname or "127.0.0.1", target.port or 5432)
    await relay.start()
    db = Database(db_url)
    await upgrade(db)
    await db.close()
    through_relay = db_url.replace(f":{target.port}/", f":{relay.port}/")
    service = await start_service(through_relay, sim, http, migrate=False, RESPONDER_DB_DEADLINE_S="1")
    try:
        alert_id = new_alert_id()
        relay.freeze()
        status, (answer, retry_after) = await post(service.url, http, alert_id)
        assert (status, answer["error"], retry_after) == (503, "unavailable", "5"), answer
        async with http.get(f"{service.url}/readyz") as ready:
            assert ready.status == 503
        relay.thaw()
        await until(lambda: ready_again(service), "ready once the database answers")
        status = await retried_post(service.url, http, alert_id)  # the platform's retry
        assert status in (200, 202)  # 200 if the first one was stored after all: a repeat, not a loss
        assert len([c for c in await cases(service.url, http) if c["alert_id"] == alert_id]) == 1
    finally:
        relay.thaw()
        await stop_service(service)
        await relay.stop()


async def a_locked_sqlite_gets_503(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> None:
    """SQLite's counterpart: another writer holds the lock (a backup, a stuck tool)."""
    service = await start_service(db_url, sim, http, RESPONDER_DB_DEADLINE_S="1")
    path = db_url.split(":///", 1)[1]
    # The other writer waits for the lock off the event loop: the service may be mid-transaction, and
    # it needs its loop to finish it (a wait on the loop would hold both up until SQLite's timeout).
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        alert_id = new_alert_id()
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        status, (answer, retry_after) = await post(service.url, http, alert_id)
        assert (status, answer["error"], retry_after) == (503, "unavailable", "5"), answer
        await asyncio.to_thread(other.execute, "ROLLBACK")
        status = await retried_post(service.url, http, alert_id)
        assert status in (200, 202)
        assert len([c for c in await cases(service.url, http) if c["alert_id"] == alert_id]) == 1
    finally:
        other.close()
        await stop_service(service)


async def ready_again(service: Service) -> bool:
    async with service.http.get(f"{service.url}/readyz") as ready:
        return ready.status == 200
