"""/login and /logout, and / (home): where each role lands once logged in.

The login form carries its own CSRF token (a cookie of its own: there is no session yet); a refused
login never echoes what was sent.
"""

from __future__ import annotations

import hmac
import re
import secrets

from aiohttp import web

from responder.accounts.audit import audit
from responder.accounts.devices import COOKIE as DEVICE_COOKIE
from responder.accounts.devices import DEVICE_TTL
from responder.accounts.logins import LoginAttempt, log_in
from responder.accounts.service import close_session, open_session
from responder.api.keys import CLOCK, DB, LOGIN_GATE, SETTINGS
from responder.domain import ADMIN, LEADS, PAGED_ROLES, REVIEWERS
from responder.errors import Forbidden
from responder.web.views import COOKIE, checked_form, login_required, render

routes = web.RouteTableDef()
LOGIN_COOKIE = "responder_login"
# A path on this site, in plain URL characters. Browsers drop tabs and newlines from a Location and
# read "\" as "/", so "/\t/evil.example" or "/\\evil.example" would lead off the site.
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*")


def safe_next(value: str | None) -> str:
    """Only a path on this site (no open redirect); anything else goes home."""
    return value if value and _SAME_SITE_PATH.fullmatch(value) else "/"


def _secure(request: web.Request) -> bool:
    return request.app[SETTINGS].env.public_url.startswith("https://")


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    csrf = secrets.token_urlsafe(24)
    response = render(
        "login.html",
        principal=None,
        csrf=csrf,
        next=safe_next(request.query.get("next")),
        error="",
    )
    response.set_cookie(
        LOGIN_COOKIE, csrf, httponly=True, samesite="Strict", secure=_secure(request), max_age=3600
    )
    return response


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    cookie, given = request.cookies.get(LOGIN_COOKIE, ""), str(form.get("csrf", ""))
    if not cookie or not hmac.compare_digest(cookie, given):
        raise Forbidden("the login form's CSRF token is missing or wrong: reload the page")
    now, db = request.app[CLOCK].now(), request.app[DB]
    attempt = LoginAttempt(username, password, request.remote, request.cookies.get(DEVICE_COOKIE))
    async with request.app[LOGIN_GATE]:
        result = await log_in(db, attempt, now)
    # A refused login shows an empty form: an error answer never echoes what was sent (a password
    # typed into the username field, say).
    if result.locked_until is not None:
        refused = render(
            "login.html",
            429,
            principal=None,
            csrf=given,
            next=target,
            error=f"Too many failed attempts: try again after {result.locked_until:%H:%M} UTC.",
        )
        refused.headers["Retry-After"] = str(max(1, int((result.locked_until - now).total_seconds())))
        return refused
    user = result.user
    if user is None:
        return render(
            "login.html",
            401,
            principal=None,
            csrf=given,
            next=target,
            error="Wrong username or password.",
        )
    token, _ = await open_session(db, user, now)
    await audit(db, f"user:{user.username}", "login", now, ip=request.remote)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Lax", secure=_secure(request), max_age=12 * 3600
    )
    response.del_cookie(LOGIN_COOKIE)
    if result.new_device_token is not None:  # this browser is now a known device of the user
        response.set_cookie(
            DEVICE_COOKIE,
            result.new_device_token,
            path="/login",
            httponly=True,
            samesite="Strict",
            secure=_secure(request),
            max_age=int(DEVICE_TTL.total_seconds()),
        )
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    principal = await login_required(request)
    await checked_form(request, principal)
    await close_session(request.app[DB], request.cookies.get(COOKIE, ""))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE)
    raise response


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    principal = await login_required(request)
    if principal.has(*REVIEWERS):  # managers and auditors (an auditor's dashboard links to /audit)
        raise web.HTTPSeeOther("/dashboard")
    if principal.has(ADMIN) and not principal.has(*PAGED_ROLES, *LEADS):  # an admin who works no case
        raise web.HTTPSeeOther("/admin/users")
    raise web.HTTPSeeOther("/cases")
