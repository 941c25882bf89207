"""Accounts and tokens after they are made (issue 12, item 9), over HTTP and the `responder` command:
disabled (logins and tokens end at once), enabled, roles changed (the next request), one-time passwords
set by an admin, one's own password changed, tokens listed without their secret and revoked; a
negotiator needs a roster person; nobody locks the admins out; every change audited, no password."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import ROOT, Service, environment
from tests.web import PASSWORD, Browser, staffed_service

ONE_TIME = "one-time-password-42"
NEW_PASSWORD = "a brand new passphrase"
PERSON_REQUIRED = (
    "a negotiator or investigator must be linked to a roster person (--person),"
    " which is how the cases paged to them are known"
)


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    async with staffed_service(db_url, sim, http) as running:
        yield running


@pytest.fixture
async def browsers(service: Service) -> AsyncIterator[Browsers]:
    opened = Browsers(service.url)
    yield opened
    await opened.close()


class Browsers:
    """One browser per name, logged in on first use; `fresh()` opens another one (not logged in)."""

    def __init__(self, base: str) -> None:
        self.base, self.named, self.opened = base, dict[str, Browser](), list[Browser]()

    async def of(self, username: str, password: str = PASSWORD) -> Browser:
        if username not in self.named:
            self.named[username] = await self.fresh()
            status, _ = await self.named[username].login(username, password)
            assert status == 200, username
        return self.named[username]

    async def fresh(self) -> Browser:
        self.opened.append(Browser(self.base))
        return self.opened[-1]

    async def close(self) -> None:
        for browser in self.opened:
            await browser.close()


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def responder(service: Service, *args: str, stdin: str | None = None) -> Ran:
    """`responder ARGS` as an operator runs it, against the service's database."""
    env = environment(service.settings.env.database_url, service.url, service.sim.url)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "responder",
        *args,
        env={**os.environ, **env},
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate(None if stdin is None else (stdin + "\n").encode())
    assert child.returncode is not None
    return Ran(child.returncode, out.decode(), err.decode())


async def where_to(browser: Browser, path: str) -> str:
    """Where a GET of `path` sends this browser: its own path when the page opens, else the redirect."""
    async with browser.http.get(
        browser.base + path, headers={"Accept": "text/html"}, allow_redirects=False
    ) as answer:
        if answer.status in (302, 303):
            return answer.headers["Location"]
        assert answer.status == 200, (path, answer.status)
        return path


async def admin_action(
    root: Browser, path: str, form: list[tuple[str, str]] | None = None
) -> tuple[int, str]:
    """A form of /admin/users, sent as root's browser sends it."""
    _, page = await root.get("/admin/users")
    return await root.post(path, form or [], page)


async def api_status(service: Service, token: str, path: str = "/v1/cases") -> int:
    async with service.http.get(f"{service.url}{path}", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def audit_rows(service: Service, action: str) -> list[tuple[str, dict[str, Any]]]:
    db = Database(service.settings.env.database_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT actor, detail FROM audit_event WHERE action = :a ORDER BY id"), {"a": action}
            )
            return [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows]
    finally:
        await db.close()


async def whole_audit_log(service: Service) -> str:
    db = Database(service.settings.env.database_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(text("SELECT actor, action, detail FROM audit_event"))
            return "\n".join(str(tuple(r)) for r in rows)
    finally:
        await db.close()


async def test_disabling_a_user_ends_their_logins_and_tokens_at_once(
    service: Service, browsers: Browsers
) -> None:
    made = await responder(service, "tokens", "create", "maya-ops", "--role", "manager", "--user", "maya")
    assert made.code == 0, made.err
    token = made.out.strip()
    maya = await browsers.of("maya")
    assert await where_to(maya, "/dashboard") == "/dashboard"
    assert await api_status(service, token) == 200

    status, page = await admin_action(await browsers.of("root"), "/admin/users/maya/disable")
    assert status == 200
    assert "User maya disabled; open sessions ended: 1; tokens revoked: maya-ops." in page
    assert (await where_to(maya, "/dashboard")).startswith("/login")  # the very next request
    assert await api_status(service, token) == 401
    status, _ = await (await browsers.fresh()).login("maya")
    assert status == 401
    assert await audit_rows(service, "user_disabled") == [
        ("user:root", {"username": "maya", "sessions_ended": 1, "tokens_revoked": ["maya-ops"]})
    ]

    enabled = await responder(service, "users", "enable", "maya")
    assert enabled.code == 0, enabled.err
    status, page = await (await browsers.fresh()).login("maya")
    assert status == 200 and "Dashboard" in page
    assert await api_status(service, token) == 401  # a token revoked stays revoked
    assert await audit_rows(service, "user_enabled") == [("cli", {"username": "maya"})]


async def test_a_change_of_roles_holds_from_the_next_request(service: Service, browsers: Browsers) -> None:
    made = await responder(service, "tokens", "create", "maya-ops", "--role", "manager", "--user", "maya")
    token = made.out.strip()
    maya, root = await browsers.of("maya"), await browsers.of("root")
    assert await where_to(maya, "/reports/monthly") == "/reports/monthly"
    status, _ = await maya.get("/admin/users")
    assert status == 403

    status, page = await admin_action(root, "/admin/users/maya/roles", [("roles", "admin"), ("person", "")])
    assert status == 200 and "Roles of maya saved." in page
    assert await where_to(maya, "/admin/users") == "/admin/users"  # no new login needed
    status, _ = await maya.get("/reports/monthly")
    assert status == 403
    assert await api_status(service, token) == 401  # her token's role is no longer hers
    assert await audit_rows(service, "user_roles_changed") == [
        (
            "user:root",
            {
                "username": "maya",
                "roles_before": ["manager"],
                "roles": ["admin"],
                "person_before": "maya",
                "person": None,
            },
        )
    ]


async def test_a_negotiator_or_investigator_must_be_a_roster_person(
    service: Service, browsers: Browsers
) -> None:
    root = await browsers.of("root")
    status, page = await admin_action(
        root, "/admin/users/maya/roles", [("roles", "negotiator"), ("person", "")]
    )
    assert status == 422
    assert f'id="error-user-maya">Person: {PERSON_REQUIRED}.' in page
    _, page = await root.get("/admin/users")
    assert '<td class="roles">manager</td>' in page  # unchanged
    status, page = await admin_action(
        root, "/admin/users", [("username", "bruno"), ("password", PASSWORD), ("roles", "investigator")]
    )
    assert status == 422 and f'id="error-person">{PERSON_REQUIRED[0].upper()}{PERSON_REQUIRED[1:]}.' in page

    refused = await responder(service, "users", "add", "bruno", "--role", "investigator", "--password-stdin")
    assert refused.code == 2 and f"person: {PERSON_REQUIRED}" in refused.err
    refused = await responder(service, "users", "roles", "audrey", "--role", "negotiator")  # no person
    assert refused.code == 2 and f"person: {PERSON_REQUIRED}" in refused.err
    listed = json.loads((await responder(service, "users", "list", "--json")).out)
    assert "bruno" not in [u["username"] for u in listed]
    assert next(u for u in listed if u["username"] == "audrey")["roles"] == ["auditor"]
    assert await audit_rows(service, "user_roles_changed") == []


async def test_a_password_reset_makes_the_user_choose_their_own_at_the_next_login(
    service: Service, browsers: Browsers
) -> None:
    sam = await browsers.of("sam")
    status, page = await admin_action(
        await browsers.of("root"), "/admin/users/sam/password", [("password", ONE_TIME)]
    )
    assert status == 200 and "One-time password set for sam" in page
    assert (await where_to(sam, "/cases")).startswith("/login")  # the open session ended
    status, _ = await (await browsers.fresh()).login("sam")
    assert status == 401

    sam = await browsers.fresh()
    status, page = await sam.login("sam", ONE_TIME)
    assert status == 200 and 'id="one-time"' in page
    for path in ("/cases", "/", "/dashboard"):
        assert await where_to(sam, path) == f"/account/password?next={path}"
    for form, field in (
        ({"current_password": "wrong password!", "new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": ONE_TIME, "new_password": ONE_TIME}, "new_password"),
        ({"current_password": ONE_TIME, "new_password": "too short"}, "new_password"),
    ):
        _, page = await sam.get("/account/password")
        status, answer = await sam.post(
            "/account/password", {**form, "new_password_again": form["new_password"]}, page
        )
        assert status == 422 and f'id="error-{field}"' in answer, form
    _, page = await sam.get("/account/password")
    status, answer = await sam.post(
        "/account/password",
        {"current_password": ONE_TIME, "new_password": NEW_PASSWORD, "new_password_again": "typo"},
        page,
    )
    assert status == 422 and 'id="error-new_password_again"' in answer
    assert await where_to(sam, "/cases") == "/account/password?next=/cases"  # still

    _, page = await sam.get("/account/password?next=/cases")
    status, answer = await sam.post(
        "/account/password",
        {
            "current_password": ONE_TIME,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
        page,
    )
    assert status == 200 and "Cases paged to you" in answer
    assert await where_to(sam, "/") == "/cases"  # works as usual
    status, _ = await (await browsers.fresh()).login("sam", ONE_TIME)
    assert status == 401
    status, _ = await (await browsers.fresh()).login("sam", NEW_PASSWORD)
    assert status == 200
    assert await audit_rows(service, "password_reset") == [
        ("user:root", {"username": "sam", "sessions_ended": 1})
    ]
    assert await audit_rows(service, "password_changed") == [("user:sam", {"sessions_ended": 0})]
    log = await whole_audit_log(service)
    assert ONE_TIME not in log and NEW_PASSWORD not in log


async def test_a_user_changes_their_own_password_and_their_other_logins_end(
    service: Service, browsers: Browsers
) -> None:
    phone, laptop = await browsers.of("ana"), await browsers.fresh()
    await laptop.login("ana")
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD}
    status, _ = await phone.post_raw("/account/password", form)  # no CSRF token: refused, nothing changed
    assert status == 403
    assert await where_to(laptop, "/cases") == "/cases"

    _, page = await phone.get("/cases")
    assert 'href="/account/password"' in page  # every page leads there
    _, page = await phone.get("/account/password")
    status, answer = await phone.post("/account/password", form, page)
    assert status == 200 and "Cases paged to you" in answer
    assert await where_to(phone, "/cases") == "/cases"  # this login stays
    assert (await where_to(laptop, "/cases")).startswith("/login")  # the others end
    status, _ = await (await browsers.fresh()).login("ana")
    assert status == 401
    status, _ = await (await browsers.fresh()).login("ana", NEW_PASSWORD)
    assert status == 200
    assert await audit_rows(service, "password_changed") == [("user:ana", {"sessions_ended": 1})]


async def test_tokens_are_listed_without_their_secret_and_revoked(
    service: Service, browsers: Browsers
) -> None:
    made = await responder(service, "tokens", "create", "reports", "--role", "auditor")
    assert made.code == 0, made.err
    token = made.out.strip()
    hashed = hashlib.sha256(token.encode()).hexdigest()
    assert await api_status(service, token, "/v1/metrics") == 200

    listed = await responder(service, "tokens", "list")
    as_json = await responder(service, "tokens", "list", "--json")
    _, page = await (await browsers.of("root")).get("/admin/users")
    for shown in (listed.out, as_json.out, page):
        assert "reports" in shown and token not in shown and hashed not in shown
    (row,) = json.loads(as_json.out)
    assert row["role"] == "auditor" and row["user"] is None and row["revoked_at"] is None
    assert row["last_used_at"] is not None  # the call above
    assert re.search(r"^reports\s+auditor\s+-\s+\S+ \S+\s+\S+ \S+\s+active$", listed.out, re.M), listed.out

    duplicate = await responder(service, "tokens", "create", "reports", "--role", "manager")
    assert duplicate.code == 2
    assert "name: 'reports' is taken" in duplicate.err
    assert "Traceback" not in duplicate.err and not re.search(r"[0-9a-f]{64}", duplicate.err + duplicate.out)

    revoked = await responder(service, "tokens", "revoke", "reports")
    assert revoked.code == 0, revoked.err
    assert await api_status(service, token, "/v1/metrics") == 401
    again = await responder(service, "tokens", "revoke", "reports")
    assert again.code == 2 and "name: 'reports' was revoked already" in again.err

    ops = (await responder(service, "tokens", "create", "ops", "--role", "manager")).out.strip()
    assert await api_status(service, ops) == 200
    status, page = await admin_action(await browsers.of("root"), "/admin/tokens/ops/revoke")
    assert status == 200 and "Token ops revoked." in page
    assert await api_status(service, ops) == 401
    assert await audit_rows(service, "api_token_created") == [
        ("cli", {"name": "reports", "role": "auditor", "user": None}),
        ("cli", {"name": "ops", "role": "manager", "user": None}),
    ]
    assert await audit_rows(service, "api_token_revoked") == [
        ("cli", {"name": "reports"}),
        ("user:root", {"name": "ops"}),
    ]


async def test_nobody_locks_the_admins_out(service: Service, browsers: Browsers) -> None:
    root = await browsers.of("root")
    status, page = await admin_action(root, "/admin/users/root/disable")
    assert status == 409 and "Username: you cannot disable your own account." in page
    status, page = await admin_action(root, "/admin/users/root/roles", [("roles", "manager")])
    assert status == 409 and "Roles: &#39;root&#39; is the last active admin" in page
    refused = await responder(service, "users", "disable", "root")
    assert refused.code == 2 and "username: 'root' is the last active admin" in refused.err
    assert await where_to(root, "/admin/users") == "/admin/users"

    added = await responder(
        service, "users", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert added.code == 0, added.err
    status, page = await admin_action(root, "/admin/users/root/roles", [("roles", "manager")])
    assert status == 200 and "Roles of root saved." in page
    status, _ = await root.get("/admin/users")
    assert status == 403
    assert [d["username"] for _, d in await audit_rows(service, "user_roles_changed")] == ["root"]
    assert await audit_rows(service, "user_disabled") == []


async def test_the_command_line_changes_accounts_and_says_what_it_did(
    service: Service, browsers: Browsers
) -> None:
    changed = await responder(service, "users", "roles", "ana", "--role", "negotiator", "--role", "team_lead")
    assert changed.code == 0 and "user ana: roles negotiator, team_lead" in changed.out
    reset = await responder(service, "users", "reset-password", "ana", "--password-stdin", stdin=ONE_TIME)
    assert reset.code == 0, reset.err
    ana = await browsers.fresh()
    status, page = await ana.login("ana", ONE_TIME)
    assert status == 200 and 'id="one-time"' in page
    listed = await responder(service, "users", "list")
    assert re.search(r"^ana\s+negotiator,team_lead\s+ana\s+active, must change password\s", listed.out, re.M)
    disabled = await responder(service, "users", "disable", "ana")
    assert disabled.code == 0 and "user ana disabled; sessions ended: 1" in disabled.out
    assert (await where_to(ana, "/account/password")).startswith("/login")
    unknown = await responder(service, "users", "disable", "nobody")
    assert unknown.code == 2 and "username: no user 'nobody'" in unknown.err
    assert [(actor, d["username"]) for actor, d in await audit_rows(service, "user_roles_changed")] == [
        ("cli", "ana")
    ]
    assert await audit_rows(service, "password_reset") == [("cli", {"username": "ana", "sessions_ended": 0})]
    assert await audit_rows(service, "user_disabled") == [
        ("cli", {"username": "ana", "sessions_ended": 1, "tokens_revoked": []})
    ]
