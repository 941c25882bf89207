"""What every web page uses: the templates, who is logged in, the CSRF check of a form, a form's errors;
and setup(), which adds every page's routes. Server-rendered, no external CDN.

Every page needs a session; every form carries the session's CSRF token; every view of a case's
personal data, and every refusal, goes to the audit log. The pages: login.py (log in and out, the home
redirect), cases.py, review.py (dashboard, monthly report, CSV), audit_log.py, admin.py (users),
schedules.py, account.py, docs.py.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from responder.accounts.audit import audit
from responder.accounts.logins import LOGINS_AT_ONCE
from responder.accounts.service import Principal, session_principal
from responder.api.keys import CLOCK, DB, LOGIN_GATE, STREAMS_CLOSING
from responder.errors import Forbidden

COOKIE = "responder_session"
ACCOUNT_PAGE = "/account/password"  # web/account.py
# The case page's outcome times (web/cases.py).
TIMES = (
    ("identified_at", "Identified"),
    ("located_at", "Located"),
    ("dispatched_at", "Dispatched"),
    ("contacted_at", "Contacted"),
)
# How often a live timeline looks for new events.
STREAM_POLL_S = 0.5
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
)


def web_link(url: object) -> str | None:
    """A URL from an alert, only if it is http(s): a `javascript:` link must never reach an href."""
    return url if isinstance(url, str) and url.lower().startswith(("https://", "http://")) else None


_TEMPLATES.globals["web_link"] = web_link


def render(name: str, status: int = 200, **context: Any) -> web.Response:
    body = _TEMPLATES.get_template(name).render(**context)
    # The security headers (CSP, no-store...) are set on every answer by responder.web.headers.
    return web.Response(text=body, content_type="text/html", status=status)


async def current(request: web.Request) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return await session_principal(request.app[DB], token, request.app[CLOCK].now())


async def login_required(request: web.Request, *roles: str) -> Principal:
    principal = await current(request)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
    if principal.must_change_password and request.path not in (ACCOUNT_PAGE, "/logout"):
        # A one-time password set by an admin: nothing else opens until the user sets their own.
        raise web.HTTPSeeOther(f"{ACCOUNT_PAGE}?next={quote(request.path_qs)}")
    if roles and not principal.has(*roles):
        await audit(
            request.app[DB], principal.name, "page_refused", request.app[CLOCK].now(), path=request.path
        )
        raise Forbidden(f"your role may not open this page (needs one of: {', '.join(roles)})")
    return principal


async def checked_form(request: web.Request, principal: Principal) -> MultiDictProxy[str]:
    """The POSTed form, when it carries this session's CSRF token."""
    form = await request.post()
    given = form.get("csrf", "")
    if (
        not isinstance(given, str)
        or not principal.csrf_token
        or not hmac.compare_digest(given, principal.csrf_token)
    ):
        await audit(
            request.app[DB], principal.name, "csrf_refused", request.app[CLOCK].now(), path=request.path
        )
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
    return MultiDictProxy(form)  # type: ignore[arg-type]


def sentence(text: str) -> str:
    """A domain message as shown next to a field: capitalised, ending in a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def field_errors(problems: list[dict[str, str]]) -> dict[str, str]:
    """{field: "Message."} for the template, from the domain's [{field, message}]."""
    return {p["field"]: sentence(p["message"]) for p in problems}


def utc_input(raw: str) -> datetime:
    """A <input type=datetime-local> value, read as UTC; ValueError when it is not one."""
    return datetime.fromisoformat(raw.strip()).replace(tzinfo=UTC)


def setup(app: web.Application) -> None:
    # The page modules use this module's helpers, so they are imported once it is loaded.
    from responder.web import account, admin, audit_log, cases, docs, login, review, schedules

    app.router.add_routes(cases.routes)
    app.router.add_routes(audit_log.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(account.routes)
    app.router.add_routes(login.routes)
    app.router.add_routes(review.routes)
    app.router.add_routes(schedules.routes)
    app.router.add_routes(docs.routes)
    app[STREAMS_CLOSING] = asyncio.Event()
    app[LOGIN_GATE] = asyncio.Semaphore(LOGINS_AT_ONCE)
    app.on_shutdown.append(_close_streams)


async def _close_streams(app: web.Application) -> None:
    # Before the server waits for its handlers: a live timeline must end by itself, not be cancelled
    # in the middle of a database read (whose thread would then answer a loop already closed).
    app[STREAMS_CLOSING].set()
