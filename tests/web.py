"""A browser-like client for the web pages: a cookie jar, the login form, forms with their CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp

from responder.accounts.service import create_user
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import Service, start_service, stop_service

PASSWORD = "correct horse battery"
Form = dict[str, Any] | list[tuple[str, str]]
USERS = {
    # username: (roles, roster person)
    "ana": (["negotiator"], "ana"),
    "sam": (["negotiator"], "sam"),
    "maya": (["manager"], "maya"),
    "root": (["admin"], None),
    "audrey": (["auditor"], None),
}


Users = Mapping[str, tuple[list[str], str | None]]


async def create_users(db_url: str, users: Users = USERS) -> None:
    db = Database(db_url)
    try:
        for username, (roles, person) in users.items():
            await create_user(db, username, PASSWORD, roles, person, datetime.now(UTC))
    finally:
        await db.close()


@asynccontextmanager
async def staffed_service(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, more_users: Users | None = None, **env: str
) -> AsyncIterator[Service]:
    """The service at real time (the chain stays on its first step while pages are used), with the
    accounts of USERS (and `more_users`)."""
    running = await start_service(db_url, sim, http, extra_env={"RESPONDER_TIME_SCALE": "1", **env})
    try:
        await create_users(db_url, {**USERS, **(more_users or {})})
        yield running
    finally:
        await stop_service(running)


class Browser:
    """One person's browser session against the service."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(
            self.base + path, headers={"Accept": "text/html"}, allow_redirects=True
        ) as r:
            return r.status, await r.text()

    async def login(self, username: str, password: str = PASSWORD) -> tuple[int, str]:
        _, page = await self.get("/login")
        form = {"csrf": csrf_of(page), "username": username, "password": password, "next": "/"}
        return await self.post_raw("/login", form)

    async def post(self, path: str, form: Form, page: str) -> tuple[int, str]:
        """Submit a form found on `page` (its CSRF token included)."""
        fields = list(form.items()) if isinstance(form, dict) else form
        return await self.post_raw(path, [("csrf", csrf_of(page)), *fields])

    async def post_raw(self, path: str, form: Form) -> tuple[int, str]:
        async with self.http.post(self.base + path, data=form, headers={"Accept": "text/html"}) as r:
            return r.status, await r.text()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)
