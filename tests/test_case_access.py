"""Least privilege on the person's data (issue 12, items 1 to 3): who sees a case whole, who a stub,
who may work it, a reason to open an old case, an audit row for every answer that carries the case,
and a live timeline that ends with the login or the access."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from responder.accounts.service import create_user
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import API_TOKEN, WAIT_S, Service, new_alert_id, sample
from tests.web import PASSWORD, Browser, Users, staffed_service

# What the sample alert says about the person: none of it may reach a stub.
PERSONAL = (
    "Camille",
    "ce soir c&#39;est la fin",
    "100093377120",
    "203.0.113.57",
    "pont près de Bercy",
    "emergency-escalations@",
    "CO-ESC-55120",
)
STAFF: Users = {"ines": (["investigator"], "ines"), "tom": (["team_lead"], "tom")}


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    # Real time: the chain stays on its first step (Ines and Ana paged) while the pages are used.
    async with staffed_service(db_url, sim, http, STAFF) as running:
        yield running


@pytest.fixture
async def closing_service(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> AsyncIterator[Service]:
    """The holder's window after a resolve is 0 h: a resolved case is at once an old one."""
    async with staffed_service(
        db_url, sim, http, STAFF, RESPONDER_HOLDER_ACCESS_AFTER_RESOLVE_H="0"
    ) as running:
        yield running


async def logged_in(service: Service, username: str) -> Browser:
    browser = Browser(service.url)
    status, _ = await browser.login(username)
    assert status == 200, username
    return browser


async def paris_case(service: Service) -> str:
    """A case paged to Ines (duty investigator) and Ana (Paris primary), both waiting to answer."""
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    await service.phone_of("ines").expect_sms(contains="ACK")
    case_id: str = body["case_id"]
    return case_id


async def accepted_by_ana(service: Service) -> str:
    case_id = await paris_case(service)
    await service.phone_of("ana").send_sms("ACK")
    assert (await service.case(case_id))["accepted_by"]["id"] == "ana"
    return case_id


async def audit_rows(db_url: str, case_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT actor, action, detail FROM audit_event WHERE case_id = :c ORDER BY id"),
                {"c": case_id},
            )
            found = []
            for actor, action, detail in rows:
                found.append((actor, action, detail if isinstance(detail, dict) else _json(detail)))
            return found
    finally:
        await db.close()


def _json(raw: str) -> dict[str, Any]:
    import json

    value: dict[str, Any] = json.loads(raw)
    return value


def personal_in(page: str) -> list[str]:
    return [word for word in PERSONAL if word in page]


async def test_before_an_accept_everyone_paged_sees_the_case_whole(service: Service) -> None:
    case_id = await paris_case(service)
    for name in ("ines", "ana"):
        browser = await logged_in(service, name)
        try:
            status, page = await browser.get(f"/cases/{case_id}")
            assert status == 200 and "Camille D. (fictional)" in page and 'id="accept"' in page, name
        finally:
            await browser.close()


async def test_once_accepted_the_others_paged_see_a_stub_with_nothing_personal(
    db_url: str, service: Service
) -> None:
    case_id = await accepted_by_ana(service)
    ines = await logged_in(service, "ines")
    try:
        status, page = await ines.get(f"/cases/{case_id}")
        case = await service.case(case_id)
        assert status == 200 and case["ref"] in page and "accepted by Ana Negotiator" in page
        assert "IMMINENT risk" in page and "region FR-75" in page
        assert personal_in(page) == [], personal_in(page)
        assert 'id="accept"' not in page and "/resolve" not in page and "/notes" not in page
        async with ines.http.get(f"{service.url}/cases/{case_id}/events") as stream:
            # The live timeline is for those who see the case whole: a stub's stream ends at once.
            assert stream.status == 200
            ended = await asyncio.wait_for(stream.content.read(), WAIT_S)
            assert ended.startswith(b"event: end\n") and b"Someone else has this case" in ended
    finally:
        await ines.close()
    ana = await logged_in(service, "ana")
    try:
        status, page = await ana.get(f"/cases/{case_id}")
        assert status == 200 and "Camille D. (fictional)" in page  # the holder sees it whole
    finally:
        await ana.close()
    assert ("user:ines", "case_viewed") not in [(a, b) for a, b, _ in await audit_rows(db_url, case_id)]


async def test_only_the_holder_team_leads_and_managers_work_a_case(db_url: str, service: Service) -> None:
    # Before an accept, being paged lets one answer the page, not close the case.
    case_id = await paris_case(service)
    ana = await logged_in(service, "ana")
    try:
        _, page = await ana.get(f"/cases/{case_id}")
        status, answer = await ana.post(f"/cases/{case_id}/resolve", {"outcome": "false_positive"}, page)
        assert status == 403 and "holder" in answer
        assert (await service.case(case_id))["status"] == "open"
    finally:
        await ana.close()
    await service.phone_of("ana").send_sms("ACK")
    ines = await logged_in(service, "ines")
    try:
        _, stub = await ines.get(f"/cases/{case_id}")
        for path, form in (
            (f"/cases/{case_id}/resolve", {"outcome": "false_positive", "note": "not mine"}),
            (f"/cases/{case_id}/notes", {"text": "a note from someone else"}),
            (f"/cases/{case_id}/tasks/triage/done", {}),
        ):
            status, answer = await ines.post(path, form, stub)
            assert status == 403 and "holder" in answer, path
    finally:
        await ines.close()
    case = await service.case(case_id)
    assert case["status"] == "acknowledged" and not [e for e in case["timeline"] if e["type"] == "note"]
    assert not [t for t in case["tasks"] if t["done_at"]]
    refused = [r for r in await audit_rows(db_url, case_id) if r[1] == "case_action_refused"]
    assert [(actor, detail["path"].rsplit("/", 1)[-1]) for actor, _, detail in refused] == [
        ("user:ana", "resolve"),
        ("user:ines", "resolve"),
        ("user:ines", "notes"),
        ("user:ines", "done"),
    ]
    tom = await logged_in(service, "tom")  # a team lead works any case
    try:
        _, page = await tom.get(f"/cases/{case_id}")
        status, _ = await tom.post(f"/cases/{case_id}/notes", {"text": "Team lead looking"}, page)
        assert status == 200
    finally:
        await tom.close()
    ana = await logged_in(service, "ana")
    try:
        _, page = await ana.get(f"/cases/{case_id}")
        status, page = await ana.post(
            f"/cases/{case_id}/resolve", {"outcome": "located_safe", "note": "found"}, page
        )
        assert status == 200 and "located safe" in page
        _, page = await ana.get(f"/cases/{case_id}")
        assert "Camille D. (fictional)" in page  # the holder keeps the case for the window (72 h)
    finally:
        await ana.close()
    notes = [e["actor"] for e in (await service.case(case_id))["timeline"] if e["type"] == "note"]
    assert notes == ["user:tom"]


async def test_after_the_window_the_holder_sees_a_stub_and_leads_need_a_reason(
    db_url: str, closing_service: Service
) -> None:
    service = closing_service
    case_id = await accepted_by_ana(service)
    ana = await logged_in(service, "ana")
    try:
        _, page = await ana.get(f"/cases/{case_id}")
        status, page = await ana.post(
            f"/cases/{case_id}/resolve", {"outcome": "located_safe", "note": "found"}, page
        )
        assert status == 200 and personal_in(page) == [] and "closed to you" in page
    finally:
        await ana.close()
    for name in ("maya", "audrey"):  # a manager, an auditor: break-glass, not browsing
        reader = await logged_in(service, name)
        try:
            status, page = await reader.get(f"/cases/{case_id}")
            assert status == 403 and personal_in(page) == [] and 'name="reason"' in page, name
            status, answer = await reader.post(f"/cases/{case_id}/open", {"reason": "  "}, page)
            assert status == 422 and 'id="error-reason"' in answer and personal_in(answer) == []
            status, answer = await reader.post(
                f"/cases/{case_id}/open", {"reason": f"{name}: monthly review of outcomes"}, page
            )
            assert status == 200 and "Camille D. (fictional)" in answer, name
        finally:
            await reader.close()
    async with service.http.get(
        f"{service.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as response:
        refused = await response.json()
        assert response.status == 403 and refused["error"] == "reason_required"
        assert refused["detail"][0]["field"] == "X-Access-Reason"
    async with service.http.get(
        f"{service.url}/v1/cases/{case_id}",
        headers={"Authorization": f"Bearer {API_TOKEN}", "X-Access-Reason": "complaint no. 12"},
    ) as response:
        assert response.status == 200
    reasons = [(actor, d.get("reason")) for actor, action, d in await audit_rows(db_url, case_id)]
    for expected in (
        ("user:maya", "maya: monthly review of outcomes"),
        ("user:audrey", "audrey: monthly review of outcomes"),
        ("setup-token", "complaint no. 12"),
    ):
        assert expected in reasons


async def test_every_api_answer_that_carries_the_case_is_audited_with_its_caller(
    db_url: str, service: Service
) -> None:
    case_id = await accepted_by_ana(service)
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    base = f"{service.url}/v1/cases/{case_id}"
    async with service.http.post(f"{base}/notes", json={"text": "Called the platform"}, headers=bearer) as r:
        assert r.status == 201
    async with service.http.post(f"{base}/tasks/triage/done", headers=bearer) as r:
        assert r.status == 200
    async with service.http.post(f"{base}/resolve", json={"outcome": "deescalated"}, headers=bearer) as r:
        assert r.status == 200 and (await r.json())["timeline"]
    views = [(a, d["via"]) for a, action, d in await audit_rows(db_url, case_id) if action == "case_viewed"]
    # The three answers above, and the case read once by accepted_by_ana; the set-up token by its name.
    assert views == [("setup-token", "api")] * 4


async def read_events(stream: aiohttp.ClientResponse, until: bytes) -> bytes:
    seen = b""
    while until not in seen:
        line = await asyncio.wait_for(stream.content.readline(), WAIT_S)
        assert line, f"the stream ended before {until!r}: {seen!r}"
        seen += line
    return seen


async def test_the_live_timeline_ends_at_logout(service: Service) -> None:
    case_id = await accepted_by_ana(service)
    ana = await logged_in(service, "ana")
    try:
        _, page = await ana.get(f"/cases/{case_id}")
        async with ana.http.get(f"{service.url}/cases/{case_id}/events?after=0") as stream:
            await read_events(stream, b"case_accepted")
            status, _ = await ana.post("/logout", {}, page)
            assert status == 200
            ended = await read_events(stream, b'"reason"')
            assert b"event: end" in ended and b"log in again" in ended
            assert (await asyncio.wait_for(stream.content.read(), WAIT_S)).strip() == b""  # and closed
    finally:
        await ana.close()


async def test_the_live_timeline_ends_when_someone_else_takes_the_case(service: Service) -> None:
    case_id = await paris_case(service)
    ines = await logged_in(service, "ines")
    try:
        async with ines.http.get(f"{service.url}/cases/{case_id}/events?after=0") as stream:
            await read_events(stream, b"alert_received")
            await service.phone_of("ana").send_sms("ACK")
            seen = await read_events(stream, b'"reason"')
            assert (
                b"case_accepted" in seen and b"event: end" in seen and b"Someone else has this case" in seen
            )
            assert (await asyncio.wait_for(stream.content.read(), WAIT_S)).strip() == b""
    finally:
        await ines.close()


async def test_a_person_link_gives_nothing_to_roles_that_are_not_paged(db_url: str, service: Service) -> None:
    """An auditor or an admin account linked to a roster person is not that person on call."""
    db = Database(db_url)
    try:
        now = datetime.now(UTC)
        await create_user(db, "aud-ines", PASSWORD, ["auditor"], "ines", now)
        await create_user(db, "adm-ana", PASSWORD, ["admin"], "ana", now)
    finally:
        await db.close()
    case_id = await paris_case(service)
    for name in ("aud-ines", "adm-ana"):
        browser = await logged_in(service, name)
        try:
            status, page = await browser.get(f"/cases/{case_id}")
            assert status == 403 and personal_in(page) == [], name
            status, page = await browser.get("/cases")
            assert case_id not in page, name
        finally:
            await browser.close()
    assert (await service.case(case_id))["status"] == "open"


async def test_an_old_case_is_read_only_even_for_a_team_lead(db_url: str, closing_service: Service) -> None:
    service = closing_service
    case_id = await accepted_by_ana(service)
    status, _ = await service.resolve(case_id, {"outcome": "deescalated"})
    assert status == 200
    tom = await logged_in(service, "tom")
    try:
        status, form = await tom.get(f"/cases/{case_id}")
        assert status == 403 and 'name="reason"' in form
        for path, fields in (
            (f"/cases/{case_id}/notes", {"text": "a note without a reason"}),
            (f"/cases/{case_id}/tasks/triage/done", {}),
        ):
            status, answer = await tom.post(path, fields, form)
            assert status == 403 and "reason" in answer and personal_in(answer) == [], path
        status, page = await tom.post(f"/cases/{case_id}/open", {"reason": "supervision"}, form)
        assert status == 200 and "Camille D. (fictional)" in page
        assert "/notes" not in page and "/done" not in page  # the break-glass view is read-only
    finally:
        await tom.close()
    async with service.http.get(
        f"{service.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as response:
        assert response.status == 403
    rows = await audit_rows(db_url, case_id)
    refused = [(a, d.get("reason_required")) for a, action, d in rows if action == "case_view_refused"]
    assert ("user:tom", True) in refused and ("setup-token", True) in refused
    actions = [(a, action) for a, action, _ in rows]
    assert actions.count(("user:tom", "case_action_refused")) == 2
    async with service.http.get(
        f"{service.url}/v1/cases/{case_id}",
        headers={"Authorization": f"Bearer {API_TOKEN}", "X-Access-Reason": "checking the refusals"},
    ) as response:
        timeline = [e["type"] for e in (await response.json())["timeline"]]
    assert "note" not in timeline and "task_done" not in timeline


async def test_a_reconnecting_live_timeline_without_a_login_gets_its_end(service: Service) -> None:
    case_id = await accepted_by_ana(service)
    async with service.http.get(
        f"{service.url}/cases/{case_id}/events", headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        ended = await asyncio.wait_for(stream.content.read(), WAIT_S)
        assert ended.startswith(b"event: end\n") and b"log in again" in ended


async def test_a_reconnect_resumes_after_the_last_event_seen(service: Service) -> None:
    case_id = await accepted_by_ana(service)
    ana = await logged_in(service, "ana")
    try:
        async with ana.http.get(f"{service.url}/cases/{case_id}/events?after=0") as stream:
            seen = await read_events(stream, b"case_accepted")
        last = max(int(line[4:]) for line in seen.splitlines() if line.startswith(b"id: "))
        async with ana.http.get(
            f"{service.url}/cases/{case_id}/events?after=0", headers={"Last-Event-ID": str(last)}
        ) as stream:
            _, page = await ana.get(f"/cases/{case_id}")
            await ana.post(f"/cases/{case_id}/notes", {"text": "after the reconnect"}, page)
            again = await read_events(stream, b'"type": "note"')
        assert b"case_accepted" not in again  # nothing seen before is sent twice
    finally:
        await ana.close()
