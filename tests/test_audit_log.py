"""The audit log under a flood (issue 12, item 8): refused logins are counted, one row when a burst begins
and one with its count when the lock's window ends, so they cannot push a manager's case view off the
auditor's page; /audit filters by case, actor, kind and period and pages through everything."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from responder.accounts.login_limit import USER_FAILURES, WINDOW
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import (
    Service,
    ShiftedClock,
    new_alert_id,
    sample,
    service_log,
    start_service,
    stop_service,
)
from tests.test_logins import login_form, try_login
from tests.web import Browser, create_users

REFUSED = 520
# One request of a flood at a time: the count of refusals is the point here (tests/test_logins.py has
# the race), and on the code before item 8 the flood then shows what it did to the log.
AT_ONCE = 1


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def service(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, clock: ShiftedClock
) -> AsyncIterator[Service]:
    # Real time: the case stays on its first step while it is looked at.
    running = await start_service(
        db_url, sim, http, clock=clock, RESPONDER_TIME_SCALE="1", RESPONDER_SWEEP_INTERVAL_S="0.2"
    )
    await create_users(db_url)
    yield running
    await stop_service(running)


@pytest.fixture
async def browsers(service: Service) -> AsyncIterator[dict[str, Browser]]:
    opened = {name: Browser(service.url) for name in ("maya", "audrey", "intruder")}
    yield opened
    for browser in opened.values():
        await browser.close()


async def audit_rows(db_url: str) -> list[dict[str, Any]]:
    """Every audit row, oldest first."""
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, actor, action, case_id, detail, at FROM audit_event"))
            found = [
                {
                    "id": row[0],
                    "actor": row[1],
                    "action": row[2],
                    "case_id": row[3],
                    "detail": row[4] if isinstance(row[4], dict) else json.loads(row[4]),
                    "at": _utc(row[5]),
                }
                for row in rows
            ]
    finally:
        await db.close()
    return sorted(found, key=lambda row: int(row["id"]))


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def entry_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr id="entry-(\d+)">', page)]


def older_link(page: str) -> str | None:
    found = re.search(r'id="older" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


async def every_page(auditor: Browser, first: str) -> list[int]:
    """The entry ids of /audit from `first` on, following the "older" links to the end."""
    ids: list[int] = []
    path: str | None = first
    while path is not None:
        status, page = await auditor.get(path)
        assert status == 200, page
        ids += entry_ids(page)
        path = older_link(page)
    return ids


async def flood(intruder: Browser, username: str, count: int) -> list[int]:
    """`count` wrong passwords for `username`, AT_ONCE at a time; their statuses."""
    csrf = await login_form(intruder)
    gate = asyncio.Semaphore(AT_ONCE)

    async def guess(n: int) -> int:
        async with gate:
            return await try_login(intruder, csrf, username, f"guess number {n}")

    return sorted(await asyncio.gather(*(guess(n) for n in range(count))))


async def paris_case(service: Service) -> str:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    case_id: str = body["case_id"]
    return case_id


async def test_a_flood_of_refused_logins_is_counted_and_a_case_view_stays_in_reach(
    db_url: str, service: Service, browsers: dict[str, Browser], clock: ShiftedClock
) -> None:
    case_id = await paris_case(service)
    await browsers["maya"].login("maya")
    status, _ = await browsers["maya"].get(f"/cases/{case_id}")  # the manager's case view, audited
    assert status == 200
    statuses = await flood(browsers["intruder"], "maya", USER_FAILURES + REFUSED)
    assert statuses == [401] * USER_FAILURES + [429] * REFUSED
    throttled = [r for r in await audit_rows(db_url) if r["action"].startswith("login_throttle")]
    assert [r["action"] for r in throttled] == ["login_throttled"]  # the burst began; no count yet

    flood_over = clock.now()
    clock.fast_forward(WINDOW.total_seconds() + 1)
    # The next guess at maya starts a new window: the old one ends, its burst audited with its count.
    csrf = await login_form(browsers["intruder"])
    assert await try_login(browsers["intruder"], csrf, "maya", "one more guess") == 401
    rows = await audit_rows(db_url)
    throttled = [r for r in rows if r["action"].startswith("login_throttle")]
    assert [(r["actor"], r["action"]) for r in throttled] == [
        ("login:maya", "login_throttled"),
        ("login:maya", "login_throttle_ended"),
    ]
    assert throttled[1]["detail"]["refused"] == REFUSED
    assert throttled[1]["detail"]["locked"] == "username"
    assert len(rows) < 20, [r["action"] for r in rows]  # not 520 rows

    auditor = browsers["audrey"]
    await auditor.login("audrey")
    status, page = await auditor.get(f"/audit?case={case_id}")
    assert status == 200 and "user:maya" in page and "case viewed" in page
    assert all(r["case_id"] == case_id for r in rows if r["id"] in entry_ids(page))
    status, page = await auditor.get("/audit")
    assert f'"refused": {REFUSED}' in page
    status, page = await auditor.get("/audit?action=login_throttle_ended&actor=login:maya")
    assert entry_ids(page) == [throttled[1]["id"]]
    since = (flood_over + timedelta(minutes=1)).replace(microsecond=0)
    status, page = await auditor.get(f"/audit?from={since:%Y-%m-%dT%H:%M:%S}")
    shown = entry_ids(page)
    later = [r["id"] for r in reversed(await audit_rows(db_url)) if r["at"] >= since and r["id"] <= shown[0]]
    assert shown == later and throttled[1]["id"] in shown and "case viewed" not in page


async def test_a_burst_is_counted_when_its_window_ends_even_if_nobody_comes_back(
    db_url: str, service: Service, browsers: dict[str, Browser], clock: ShiftedClock
) -> None:
    statuses = await flood(browsers["intruder"], "ana", USER_FAILURES + 30)
    assert statuses == [401] * USER_FAILURES + [429] * 30
    with service_log() as log:
        clock.fast_forward(WINDOW.total_seconds() + 1)
        # Nobody tries "ana" again: the housekeeping beat (every 0.2 s here) ends the window.
        assert (await log.expect("login_burst_audited"))["refused"] == 30
    ended = [r for r in await audit_rows(db_url) if r["action"] == "login_throttle_ended"]
    assert [(r["actor"], r["detail"]["refused"]) for r in ended] == [("login:ana", 30)]


async def test_the_audit_log_pages_through_everything_to_the_oldest_entry(
    db_url: str, service: Service, browsers: dict[str, Browser]
) -> None:
    case_id = await paris_case(service)
    await browsers["maya"].login("maya")
    await browsers["maya"].get(f"/cases/{case_id}")
    csrf = await login_form(browsers["intruder"])
    for n in range(7):
        assert await try_login(browsers["intruder"], csrf, f"someone-{n}", "not the password") == 401
    auditor = browsers["audrey"]
    await auditor.login("audrey")
    everything = [r["id"] for r in reversed(await audit_rows(db_url))]
    assert len(everything) > 9
    assert await every_page(auditor, "/audit?limit=3") == everything  # newest first, down to the oldest
    failed = [r["id"] for r in reversed(await audit_rows(db_url)) if r["action"] == "login_failed"]
    assert await every_page(auditor, "/audit?action=login_failed&limit=2") == failed  # filters kept


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("case=not%20a%20case", "case"),
        ("action=DROP%20TABLE", "action"),
        ("actor=" + "x" * 81, "actor"),
        ("from=yesterday", "from"),
        ("from=2026-12-02T10:00&to=2026-12-01", "to"),
        ("before=-1", "before"),
        ("before=%C2%B2", "before"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
    ],
)
async def test_a_bad_filter_is_named_and_shows_nothing(
    service: Service, browsers: dict[str, Browser], query: str, field: str
) -> None:
    auditor = browsers["audrey"]
    await auditor.login("audrey")
    status, page = await auditor.get(f"/audit?{query}")
    assert status == 422 and f'id="error-{field}"' in page
    assert entry_ids(page) == []
