"""The web pages over HTTP: log in, least privilege with audit, CSRF, forms with errors next to the
field, accept and work a case, API tokens scoped by role, and an audit log nobody can edit."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from responder.accounts.service import create_user
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import (
    API_TOKEN,
    WAIT_S,
    Service,
    environment,
    new_alert_id,
    sample,
)
from tests.test_privacy_logs import refuse_inserts
from tests.web import PASSWORD, Browser, staffed_service


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    async with staffed_service(db_url, sim, http) as running:
        yield running


@pytest.fixture
async def browser(service: Service) -> AsyncIterator[Browser]:
    opened = Browser(service.url)
    yield opened
    await opened.close()


async def paris_case(service: Service) -> str:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    case_id: str = body["case_id"]
    return case_id


async def audit_actions(db_url: str, case_id: str) -> list[tuple[str, str]]:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT actor, action FROM audit_event WHERE case_id = :c ORDER BY id"), {"c": case_id}
            )
            return [(r[0], r[1]) for r in rows]
    finally:
        await db.close()


async def test_login_sets_a_safe_session_cookie_and_wrong_passwords_are_throttled(
    service: Service, browser: Browser
) -> None:
    status, page = await browser.login("ana", "wrong password!")
    assert status == 401 and "Wrong username or password." in page
    status, page = await browser.login("ana")
    assert status == 200 and "Cases paged to you" in page
    cookie = next(c for c in browser.http.cookie_jar if c.key == "responder_session")
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    intruder = Browser(service.url)
    try:
        for _ in range(5):
            status, _ = await intruder.login("maya", "guess guess guess")
            assert status == 401
        status, page = await intruder.login("maya")  # even the right password, for now
        assert status == 429 and "Too many failed attempts" in page
    finally:
        await intruder.close()


async def test_pages_need_a_login(service: Service, browser: Browser) -> None:
    case_id = await paris_case(service)
    status, page = await browser.get(f"/cases/{case_id}")
    assert status == 200 and 'action="/login"' in page  # redirected to the login form
    assert "Camille" not in page


async def test_a_negotiator_sees_and_accepts_their_case_and_nothing_else(
    db_url: str, service: Service, browser: Browser
) -> None:
    case_id = await paris_case(service)
    status, body = await service.post_alert(sample("medium-comment-us.json", alert_id=new_alert_id()))
    assert status == 202
    other = body["case_id"]
    await browser.login("ana")
    status, page = await browser.get(f"/cases/{case_id}")
    assert status == 200 and "Camille D. (fictional)" in page and "pont près de Bercy" in page
    status, refused = await browser.get(f"/cases/{other}")
    assert status == 403 and "not paged to you" in refused
    assert ("user:ana", "case_view_refused") in await audit_actions(db_url, other)
    assert ("user:ana", "case_viewed") in await audit_actions(db_url, case_id)

    status, page = await browser.post(f"/cases/{case_id}/accept", {}, page)
    assert status == 200 and "The case is yours." in page
    case = await service.case(case_id)
    assert (
        case["status"] == "acknowledged"
        and case["accepted_by"]["id"] == "ana"
        and case["accepted_via"] == "web"
    )
    await service.phone_of("ines").expect_sms(contains="Ana")  # everyone else paged is told


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
    service: Service, browser: Browser
) -> None:
    case_id = await paris_case(service)
    await browser.login("ana")
    for form in ({}, {"csrf": "forged"}):
        status, page = await browser.post_raw(f"/cases/{case_id}/accept", form)
        assert status == 403 and "CSRF" in page
    status, _ = await browser.post_raw("/login", {"username": "ana", "password": PASSWORD})
    assert status == 403  # the login form has its own token
    assert (await service.case(case_id))["status"] == "open"


async def test_bad_input_gets_a_message_next_to_the_field(service: Service, browser: Browser) -> None:
    case_id = await paris_case(service)
    await browser.login("ana")
    _, page = await browser.get(f"/cases/{case_id}")
    _, page = await browser.post(f"/cases/{case_id}/accept", {}, page)  # the holder works the case
    status, answer = await browser.post(f"/cases/{case_id}/notes", {"text": "   "}, page)
    assert status == 422 and re.search(
        r'<textarea id="text"[^>]*>[^<]*</textarea>\s*<p class="error" id="error-text">', answer
    )
    status, answer = await browser.post(
        f"/cases/{case_id}/resolve",
        {"outcome": "unable_to_locate", "note": "", "located_at": "not a time"},
        page,
    )
    assert status == 422
    assert 'id="error-note">A reason is required for unable_to_locate.' in answer
    assert 'id="error-located_at">Use the date and time picker' in answer
    status, answer = await browser.post(f"/cases/{case_id}/resolve", {"outcome": "", "note": ""}, page)
    assert status == 422 and 'id="error-outcome">Choose an outcome.' in answer
    assert (await service.case(case_id))["status"] == "acknowledged"


async def test_tasks_notes_and_outcome_from_the_case_page(service: Service, browser: Browser) -> None:
    case_id = await paris_case(service)
    await browser.login("ana")
    _, page = await browser.get(f"/cases/{case_id}")
    _, page = await browser.post(f"/cases/{case_id}/accept", {}, page)  # the holder works the case
    status, page = await browser.post(f"/cases/{case_id}/tasks/triage/done", {}, page)
    assert status == 200 and "done" in page
    status, page = await browser.post(f"/cases/{case_id}/notes", {"text": "Called the platform."}, page)
    assert status == 200
    status, page = await browser.post(
        f"/cases/{case_id}/resolve",
        {
            "outcome": "located_safe",
            "note": "Found at home.",
            "services_dispatched": "1",
            "located_at": "2026-11-28T02:40",
        },
        page,
    )
    assert status == 200 and "located safe" in page
    case = await service.case(case_id)
    assert case["status"] == "resolved" and case["outcome"] == "located_safe"
    types = [e["type"] for e in case["timeline"]]
    assert "task_done" in types and "note" in types
    resolved = next(e for e in case["timeline"] if e["type"] == "case_resolved")
    assert resolved["actor"] == "user:ana" and resolved["detail"]["services_dispatched"] is True
    assert resolved["detail"]["located_at"].startswith("2026-11-28T02:40")


async def test_the_timeline_updates_live(service: Service, browser: Browser) -> None:
    case_id = await paris_case(service)
    await browser.login("ana")
    async with browser.http.get(f"{service.url}/cases/{case_id}/events?after=0") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await asyncio.wait_for(stream.content.readline(), WAIT_S)
        assert first.startswith(b"id: ")
        await service.phone_of("ana").send_sms("ACK")
        seen = b""
        while b"case_accepted" not in seen:
            seen += await asyncio.wait_for(stream.content.readline(), WAIT_S)
        assert b'"status": "acknowledged"' in seen


async def test_roles_decide_the_pages(service: Service) -> None:
    for username, path, allowed in (
        ("ana", "/dashboard", False),
        ("maya", "/dashboard", True),
        ("audrey", "/dashboard", True),
        ("audrey", "/dashboard.csv", True),
        ("ana", "/admin/users", False),
        ("maya", "/admin/users", False),
        ("root", "/admin/users", True),
        ("audrey", "/audit", True),
        ("maya", "/audit", False),
        ("ana", "/audit", False),
    ):
        person = Browser(service.url)
        try:
            await person.login(username)
            status, _ = await person.get(path)
            assert (status == 200) == allowed, (username, path, status)
        finally:
            await person.close()


async def test_each_role_lands_on_its_home_page(service: Service) -> None:
    # An auditor lands on the dashboard's figures, which link to the audit log.
    for username, home in (
        ("ana", "/cases"),
        ("maya", "/dashboard"),
        ("audrey", "/dashboard"),
        ("root", "/admin/users"),
    ):
        person = Browser(service.url)
        try:
            await person.login(username)
            async with person.http.get(f"{service.url}/", allow_redirects=False) as answer:
                assert (answer.status, answer.headers["Location"]) == (303, home), username
        finally:
            await person.close()


async def test_an_admin_creates_a_user_who_can_then_log_in(service: Service, browser: Browser) -> None:
    await browser.login("root")
    _, page = await browser.get("/admin/users")
    status, answer = await browser.post(
        "/admin/users", [("username", "bruno"), ("password", "short"), ("roles", "negotiator")], page
    )
    assert status == 422 and 'id="error-password">At least 10 characters.' in answer
    status, answer = await browser.post(
        "/admin/users",
        [("username", "bruno"), ("password", PASSWORD), ("roles", "negotiator"), ("person", "bruno")],
        page,
    )
    assert status == 200 and "User bruno created." in answer
    newcomer = Browser(service.url)
    try:
        status, page = await newcomer.login("bruno")
        assert status == 200 and "Cases paged to you" in page
    finally:
        await newcomer.close()


async def test_api_tokens_are_scoped_by_role(service: Service) -> None:
    env = {**os.environ, **environment(service.settings.env.database_url, service.url, service.sim.url)}

    async def create(name: str, role: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "responder",
            "tokens",
            "create",
            name,
            "--role",
            role,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await process.communicate()
        assert process.returncode == 0
        return out.decode().strip()

    auditor, manager = await create("reports", "auditor"), await create("ops", "manager")
    async with service.http.get(
        f"{service.url}/v1/cases", headers={"Authorization": f"Bearer {auditor}"}
    ) as r:
        assert r.status == 403
    async with service.http.get(
        f"{service.url}/v1/cases", headers={"Authorization": f"Bearer {manager}"}
    ) as r:
        assert r.status == 200
    async with service.http.get(
        f"{service.url}/v1/metrics", headers={"Authorization": f"Bearer {auditor}"}
    ) as r:
        assert r.status == 200
    async with service.http.get(
        f"{service.url}/v1/cases", headers={"Authorization": "Bearer rsp_forged"}
    ) as r:
        assert r.status == 401


async def test_the_audit_log_cannot_be_edited(db_url: str, service: Service, browser: Browser) -> None:
    case_id = await paris_case(service)
    await browser.login("ana")
    await browser.get(f"/cases/{case_id}")
    db = Database(db_url)
    try:
        for statement in ("UPDATE audit_event SET actor = 'nobody'", "DELETE FROM audit_event"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with db.engine.begin() as conn:
                    await conn.execute(text(statement))
    finally:
        await db.close()
    assert ("user:ana", "case_viewed") in await audit_actions(db_url, case_id)


async def test_the_api_is_documented_on_a_rendered_page(service: Service, browser: Browser) -> None:
    status, page = await browser.get("/docs")
    assert status == 200
    for path in ("/v1/alerts", "/v1/cases/{case_id}", "/v1/metrics", "/v1/review/cases", "/v1/oncall"):
        assert f"{path}</code>" in page, path


async def test_links_and_text_from_an_alert_cannot_run_script(service: Service, browser: Browser) -> None:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["content"] = {
        **alert["content"],
        "url": "javascript:alert(1)",
        "excerpt": "<script>alert(2)</script>",
    }
    alert["subject"] = {**alert["subject"], "profile_url": "JavaScript:alert(3)"}
    status, body = await service.post_alert(alert)
    assert status == 202
    await browser.login("maya")
    status, page = await browser.get(f"/cases/{body['case_id']}")
    assert status == 200
    assert 'href="javascript' not in page.lower()
    assert "<script>alert(2)" not in page and "&lt;script&gt;alert(2)" in page


async def test_web_pages_answer_errors_in_html_and_api_paths_in_json(
    service: Service, browser: Browser
) -> None:
    await browser.login("maya")
    async with browser.http.get(f"{service.url}/cases/nope") as answer:  # curl-like: Accept */*
        assert answer.status == 404 and answer.content_type == "text/html"
        assert "case not found" in await answer.text()
    async with browser.http.get(f"{service.url}/reports/monthly?month=bogus") as answer:
        assert answer.status == 422 and "month: a month as YYYY-MM" in await answer.text()
    async with browser.http.get(
        f"{service.url}/v1/cases/nope", headers={"Authorization": "Bearer x"}
    ) as answer:
        assert answer.status == 401 and answer.content_type == "application/json"


async def test_the_smallest_alert_opens_a_case_page_for_its_holder(db_url: str, service: Service) -> None:
    """The docs' smallest alert: no content, no subject, no hints, no platform contact, a bare risk."""
    alert = {"alert_id": new_alert_id(), "detected_at": "2026-11-28T02:14:07Z", "risk": {"level": "imminent"}}
    status, body = await service.post_alert(alert)
    assert status == 202
    ines = service.phone_of("ines")  # the duty investigator for every region, paged at once
    await ines.expect_sms(contains="ACK")
    await ines.send_sms("ACK")
    assert (await service.case(body["case_id"]))["accepted_by"]["id"] == "ines"
    db = Database(db_url)
    try:
        await create_user(db, "ines", PASSWORD, ["investigator"], "ines", datetime.now(UTC))
    finally:
        await db.close()
    holder, manager = Browser(service.url), Browser(service.url)
    try:
        await holder.login("ines")
        status, page = await holder.get(f"/cases/{body['case_id']}")
        assert status == 200 and "accepted by Ines Duty-Investigator" in page, page
        await manager.login("maya")
        for path in (f"/cases/{body['case_id']}", "/cases", "/dashboard", "/dashboard.csv"):
            status, page = await manager.get(path)
            assert status == 200, (path, page)
    finally:
        await holder.close()
        await manager.close()


async def test_a_browser_gets_every_failure_as_a_page_and_an_api_client_as_json(
    db_url: str, service: Service, browser: Browser
) -> None:
    case_id = await paris_case(service)
    await browser.login("maya")
    html = {"Accept": "text/html"}
    # aiohttp's own answers: no such route, a method the route does not have
    for method, path, status in (("GET", "/no/such/page", 404), ("DELETE", "/login", 405)):
        async with browser.http.request(method, service.url + path, headers=html) as answer:
            assert answer.status == status and answer.content_type == "text/html", path
            assert f"<h1>{status}</h1>" in await answer.text()
    async with browser.http.delete(f"{service.url}/login") as answer:  # curl-like: Accept */*
        assert answer.status == 405 and answer.content_type == "text/html"
        assert "GET" in answer.headers["Allow"]
    async with service.http.get(f"{service.url}/v1/no/such/thing") as answer:
        assert answer.status == 404 and answer.content_type == "application/json"
        assert (await answer.json())["error"] == "not_found"
    # An unexpected exception: the database refuses the audit row each view of a case writes.
    await refuse_inserts(db_url, "audit_event")
    async with browser.http.get(f"{service.url}/cases/{case_id}", headers=html) as answer:
        page = await answer.text()
        assert answer.status == 500 and answer.content_type == "text/html"
        assert "<h1>500</h1>" in page and "forced" not in page and "Traceback" not in page
    async with service.http.get(
        f"{service.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as answer:
        assert answer.status == 500 and (await answer.json()).keys() == {"error", "request_id"}


async def test_the_case_page_links_the_persons_earlier_cases(service: Service) -> None:
    ids = []
    for _ in range(2):
        alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
        alert["subject"] = {**alert["subject"], "account_id": "same-person-4410"}
        status, body = await service.post_alert(alert)
        assert status == 202
        ids.append(body["case_id"])
    manager = Browser(service.url)
    try:
        await manager.login("maya")
        status, page = await manager.get(f"/cases/{ids[1]}")
        assert status == 200
        assert "1 earlier case for this person" in page and f'href="/cases/{ids[0]}"' in page, page
        status, page = await manager.get(f"/cases/{ids[0]}")
        assert status == 200 and "earlier case" not in page
    finally:
        await manager.close()
