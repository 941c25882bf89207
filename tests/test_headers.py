"""Security headers on every kind of answer, over real HTTP: pages, API answers, error pages (a 404, a
405, a crash), redirects, the one-time link page, a live stream, the CSV export and static files; and
pages that hold no inline script or style, so the CSP can refuse both."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from aiohttp import web

from responder.simulator import PhoneSimulator
from tests.harness import API_TOKEN, Service, new_alert_id, sample, start_service, stop_service
from tests.web import Browser, create_users

test_routes = web.RouteTableDef()


@test_routes.get("/test/crash")
async def crash(_: web.Request) -> web.Response:
    raise RuntimeError("a handler that crashes: the answer is the errors middleware's bare 500")


HTML = {"Accept": "text/html"}
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
# A <script> element without a src, a <style> element, a style or on...= attribute.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    # Playbook time at full speed: the case stays in Ana's hands (paged, open) for the whole test.
    running = await start_service(db_url, sim, http, routes=test_routes, RESPONDER_TIME_SCALE="1")
    await create_users(db_url)
    yield running
    await stop_service(running)


async def open_case(service: Service) -> tuple[str, str]:
    """A new case paged to Ana; its id and the one-time link in her SMS."""
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202, body
    sms = await service.phone_of("ana").expect_sms(contains="ACK")
    link = re.search(r"https?://\S+/a/\S+", sms.body)
    assert link is not None, sms.body
    return body["case_id"], link.group(0)


def assert_secured(what: str, found: Mapping[str, str], cache: str = "no-store") -> None:
    assert found.get("X-Content-Type-Options") == "nosniff", (what, found)
    assert found.get("Cache-Control") == cache, (what, found)
    csp = found.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "style-src 'self'" in csp, (what, csp)
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, (what, csp)
    assert "Strict-Transport-Security" not in found, (what, "the public URL is http: no HSTS")


async def test_every_kind_of_answer_carries_the_security_headers(service: Service) -> None:
    case_id, link = await open_case(service)
    anonymous = [
        ("a page", "GET", "/login", HTML, 200),
        ("the API docs", "GET", "/docs", HTML, 200),
        ("an API answer with case data", "GET", f"/v1/cases/{case_id}", BEARER, 200),
        ("an API refusal", "GET", "/v1/cases", {}, 401),
        ("a 404 page", "GET", "/no/such/page", HTML, 404),
        ("a 404 in JSON", "GET", "/v1/no/such/thing", {}, 404),
        ("a 405", "DELETE", "/login", HTML, 405),
        ("a crash's page", "GET", "/test/crash", HTML, 500),
        ("a redirect to the login", "GET", f"/cases/{case_id}", HTML, 303),
        ("the one-time link page", "GET", link, HTML, 200),
        ("a probe", "GET", "/healthz", {}, 200),
    ]
    for what, method, path, headers, status in anonymous:
        url = path if path.startswith("http") else service.url + path
        async with service.http.request(method, url, headers=headers, allow_redirects=False) as answer:
            assert answer.status == status, (what, answer.status, await answer.text())
            assert_secured(what, answer.headers)
    async with service.http.get(f"{service.url}/static/case.js") as script:
        assert script.status == 200 and "javascript" in script.content_type
        assert_secured("a static file", script.headers, cache="no-cache")  # no data: revalidated only

    ana, maya = Browser(service.url), Browser(service.url)
    try:
        await ana.login("ana")
        await maya.login("maya")
        async with ana.http.get(f"{service.url}/cases/{case_id}", headers=HTML) as page:
            assert page.status == 200
            assert_secured("the case page", page.headers)
        async with ana.http.get(f"{service.url}/cases/{case_id}/events") as stream:
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            assert_secured("the live timeline", stream.headers)  # read before the first event
        async with maya.http.get(f"{service.url}/dashboard.csv") as export:
            assert export.status == 200 and export.content_type == "text/csv"
            assert_secured("the CSV export", export.headers)
    finally:
        await ana.close()
        await maya.close()


async def test_pages_hold_no_inline_script_style_or_handler(service: Service) -> None:
    case_id, link = await open_case(service)
    pages: dict[str, str] = {}
    anonymous = {"login": "/login", "docs": "/docs", "404": "/no/such/page", "500": "/test/crash"}
    for name, path in anonymous.items():
        async with service.http.get(service.url + path, headers=HTML) as answer:
            pages[name] = await answer.text()
    async with service.http.get(link, headers=HTML) as answer:
        pages["link"] = await answer.text()
    for username, path in (
        ("ana", f"/cases/{case_id}"),
        ("maya", "/dashboard"),
        ("root", "/admin/users"),
        ("root", "/admin/schedules"),
        ("audrey", "/audit"),
    ):
        browser = Browser(service.url)
        try:
            await browser.login(username)
            status, pages[path] = await browser.get(path)
            assert status == 200, (path, status)
        finally:
            await browser.close()
    for name, page in pages.items():
        assert "<html" in page, name
        assert not INLINE_SCRIPT.search(page), (name, INLINE_SCRIPT.search(page))
        assert not INLINE_STYLE.search(page), (name, INLINE_STYLE.search(page))
        assert not INLINE_HANDLER.search(page), (name, INLINE_HANDLER.search(page))
    # The live timeline's script is a file the case page loads, and the styles are files too.
    assert '<script src="/static/case.js"' in pages[f"/cases/{case_id}"]
    for asset in ("/static/case.js", "/static/responder.css", "/static/plain.css"):
        async with service.http.get(service.url + asset) as answer:
            assert answer.status == 200, asset


async def test_hsts_is_sent_when_the_public_url_is_https(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http, RESPONDER_PUBLIC_URL="https://responder.example")
    try:
        for path, headers in (("/login", HTML), ("/v1/cases", {}), ("/no/such/page", HTML)):
            async with http.get(service.url + path, headers=headers) as answer:
                assert answer.headers.get("Strict-Transport-Security") == "max-age=31536000", path
                assert answer.headers.get("X-Content-Type-Options") == "nosniff", path
    finally:
        await stop_service(service)
