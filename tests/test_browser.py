"""In a real browser (Debian's Chromium, headless, driven by Playwright): a negotiator works a case from
a phone-sized screen, a manager reads the dashboard, an admin creates, disables and changes an account.
Screenshots of the case page at phone size and of the dashboard go to test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from sqlalchemy import text

from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import API_TOKEN, ROOT, WAIT_S, Service, new_alert_id, sample
from tests.web import PASSWORD, staffed_service

if TYPE_CHECKING:  # the module itself is imported below only where Playwright is installed
    from playwright.async_api import Browser, Page, ViewportSize

playwright_api = pytest.importorskip("playwright.async_api")
ARTIFACTS = ROOT / "test-artifacts"
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium_path() -> str:
    found = (
        os.environ.get("RESPONDER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed: CI must run the browser tests (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs these")


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    async with staffed_service(db_url, sim, http) as running:
        yield running


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        await browser.close()


async def log_in(page: Page, base: str, username: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")


async def test_a_negotiator_works_a_case_from_a_phone(
    service: Service, chromium: Browser, db_url: str
) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    case_id = body["case_id"]
    context = await chromium.new_context(viewport=PHONE, is_mobile=True)
    page = await context.new_page()
    await page.goto(f"{service.url}/cases/{case_id}")  # the link from the SMS: log in first
    await log_in(page, service.url, "ana")
    await page.wait_for_selector("text=Camille D. (fictional)")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "case-page-phone.png"), full_page=True)

    await page.click("#accept")
    await page.wait_for_selector("text=The case is yours.")
    await page.click("#task-triage button")
    await page.wait_for_selector("#task-triage >> text=done")
    await page.fill("#text", "Platform called back with an address.")
    await page.click("text=Add note")
    await page.wait_for_selector("#timeline >> text=note")
    await page.select_option("#outcome", "unable_to_locate")
    await page.click("text=Record outcome and close")
    await page.wait_for_selector("#error-note")  # the reason is required: said next to the field
    await page.fill("#note", "Address was out of date.")
    await page.fill("#located_at", "2026-11-28T02:40")
    await page.select_option("#outcome", "located_safe")
    await page.click("text=Record outcome and close")
    await page.wait_for_selector("#status >> text=resolved")
    case = await service.case(case_id)
    assert case["status"] == "resolved" and case["outcome"] == "located_safe"
    assert case["accepted_by"]["id"] == "ana" and case["accepted_via"] == "web"
    await context.close()


async def test_the_timeline_updates_live_in_the_browser(service: Service, chromium: Browser) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    page = await chromium.new_page(viewport=PHONE)
    await page.goto(f"{service.url}/cases/{body['case_id']}")
    await log_in(page, service.url, "ana")
    await page.wait_for_selector("#timeline")
    await service.phone_of("ana").send_sms("ACK")  # Ana accepts by SMS while she has the page open
    await page.wait_for_selector("#timeline >> text=case accepted", timeout=WAIT_S * 1000)
    assert await page.text_content("#status") == "acknowledged"
    assert "Camille D. (fictional)" in await page.content()  # hers: she keeps the whole case
    await page.close()


async def test_when_someone_else_takes_the_case_the_page_drops_the_details(
    service: Service, chromium: Browser
) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    page = await chromium.new_page(viewport=PHONE)
    await page.goto(f"{service.url}/cases/{body['case_id']}")
    await log_in(page, service.url, "ana")
    await page.wait_for_selector("text=Camille D. (fictional)")
    await service.phone_of("ines").send_sms("ACK")  # Ines accepts by SMS while Ana has the page open
    await page.wait_for_selector("#ended >> text=Someone else has this case", timeout=WAIT_S * 1000)
    assert await page.text_content("#status") == "acknowledged"
    assert "Camille" not in await page.content() and await page.query_selector("#accept") is None
    await page.close()


async def test_a_negotiator_cannot_open_a_case_not_paged_to_them(
    service: Service, chromium: Browser, db_url: str
) -> None:
    status, body = await service.post_alert(sample("medium-comment-us.json", alert_id=new_alert_id()))
    assert status == 202
    page = await chromium.new_page()
    await page.goto(f"{service.url}/login")
    await log_in(page, service.url, "ana")
    answer = await page.goto(f"{service.url}/cases/{body['case_id']}")
    assert answer is not None and answer.status == 403
    assert "not paged to you" in await page.content()
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            refused = (
                await conn.execute(
                    text(
                        "SELECT COUNT(*) FROM audit_event WHERE action = 'case_view_refused' AND case_id = :c"
                    ),
                    {"c": body["case_id"]},
                )
            ).scalar()
    finally:
        await db.close()
    assert refused == 1
    await page.close()


async def test_the_manager_dashboard_matches_the_database(
    service: Service, chromium: Browser, db_url: str
) -> None:
    for name in ("imminent-live-fr.json", "medium-comment-us.json", "high-post-in.json"):
        status, _ = await service.post_alert(sample(name, alert_id=new_alert_id()))
        assert status == 202
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            total = (await conn.execute(text('SELECT COUNT(*) FROM "case"'))).scalar_one()
            still_open = (
                await conn.execute(text("SELECT COUNT(*) FROM \"case\" WHERE status <> 'resolved'"))
            ).scalar_one()
    finally:
        await db.close()
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{service.url}/login")
    await log_in(page, service.url, "maya")
    await page.wait_for_selector("#summary")
    assert await page.text_content("#m-cases") == str(total)
    assert await page.text_content("#m-open") == str(still_open)
    assert await page.locator("#open-cases tr").count() == still_open + 1  # with its header row
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    async with page.expect_download() as download:
        await page.click("#csv")
    saved = await (await download.value).path()
    exported = await asyncio.to_thread(Path(saved).read_text)
    assert len(exported.strip().splitlines()) == total + 1
    await page.close()


async def test_an_admin_creates_an_account_in_the_browser(service: Service, chromium: Browser) -> None:
    page = await chromium.new_page()
    await page.goto(f"{service.url}/login")
    await log_in(page, service.url, "root")
    await page.wait_for_selector("#users")
    await page.fill("#username", "bruno")
    await page.fill("#password", "short")
    await page.select_option("#roles", ["negotiator"])
    await page.click("text=Create user")
    await page.wait_for_selector("#error-password")
    await page.fill("#password", PASSWORD)
    await page.select_option("#roles", ["negotiator"])
    await page.select_option("#person", "bruno")
    await page.click("text=Create user")
    await page.wait_for_selector("text=User bruno created.")
    users = await page.text_content("#users")
    assert users is not None and "bruno" in users
    await page.click("#disable-bruno")
    await page.wait_for_selector("text=User bruno disabled; open sessions ended: 0.")
    assert await page.text_content("#user-bruno .state") == "no"
    await page.click("#change-bruno summary")  # roles and a one-time password, folded by default
    await page.check("#change-bruno input[value=team_lead]")
    await page.click("#save-roles-bruno")
    await page.wait_for_selector("text=Roles of bruno saved.")
    assert await page.text_content("#user-bruno .roles") == "negotiator, team_lead"
    await page.close()


async def test_an_admin_puts_someone_on_call_from_the_browser(service: Service, chromium: Browser) -> None:
    page = await chromium.new_page()
    await page.goto(f"{service.url}/login")
    await log_in(page, service.url, "root")
    await page.click("text=Schedules and overrides")
    await page.wait_for_selector("#schedule-negotiators-paris")
    await page.select_option("#schedule", "negotiators-paris")
    await page.select_option("#person", "bruno")
    await page.fill("#start", "2030-01-01T08:00")
    await page.fill("#end", "2029-12-31T08:00")
    await page.click("text=Add override")
    await page.wait_for_selector("#error-end")  # the end before the start: said next to the field
    await page.fill("#end", "2030-01-02T08:00")
    await page.fill("#reason", "Ana on leave")
    await page.click("text=Add override")
    await page.wait_for_selector("text=Override added to negotiators-paris.")
    async with service.http.get(
        f"{service.url}/v1/oncall",
        params={"role": "negotiator", "region": "FR-75", "at": "2030-01-01T12:00:00Z"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as answer:
        assert (await answer.json())["on_call"][0]["person"] == "bruno"
    async with service.http.get(
        f"{service.url}/v1/schedules/negotiators-paris", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as answer:
        timeline = (await answer.json())["timeline"]
    assert [(e["type"], e["actor"]) for e in timeline] == [("override_added", "user:root")]
    await page.close()
