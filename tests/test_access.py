"""Logins that cannot lead off the site (issue 12, item 7): `next` after a login is only ever a path on
this site, whatever a browser would make of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Service
from tests.web import PASSWORD, Browser, create_users, csrf_of


@pytest.fixture
async def browser(service: Service) -> AsyncIterator[Browser]:
    await create_users(service.settings.env.database_url)
    person = Browser(service.url)
    yield person
    await person.close()


async def login_location(browser: Browser, next_path: str) -> str:
    _, page = await browser.get("/login")
    form = {"csrf": csrf_of(page), "username": "ana", "password": PASSWORD, "next": next_path}
    async with browser.http.post(f"{browser.base}/login", data=form, allow_redirects=False) as answer:
        assert answer.status == 303, await answer.text()
        return answer.headers["Location"]


@pytest.mark.parametrize(
    "next_path",
    [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\n/evil.example",
        "https://evil.example",
        " /x",
    ],
)
async def test_next_after_login_never_leads_off_the_site(browser: Browser, next_path: str) -> None:
    assert await login_location(browser, next_path) == "/"


async def test_next_after_login_keeps_a_path_on_the_site(browser: Browser) -> None:
    assert await login_location(browser, "/cases?status=open") == "/cases?status=open"
    assert await login_location(browser, "/%09/evil.example") == "/%09/evil.example"  # a path here
