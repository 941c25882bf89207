"""The web pages: log in, work a case from a phone, review outcomes. Server-rendered, no external CDN.

Every page needs a session; every form carries the session's CSRF token; every view of a case's
personal data, and every refusal, goes to the audit log.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from markupsafe import escape
from multidict import MultiDictProxy
from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import col

from responder.accounts.audit import audit
from responder.accounts.devices import COOKIE as DEVICE_COOKIE
from responder.accounts.devices import DEVICE_TTL
from responder.accounts.logins import LOGINS_AT_ONCE, LoginAttempt, log_in
from responder.accounts.service import (
    Principal,
    close_session,
    open_session,
    session_principal,
)
from responder.api.keys import CLOCK, DB, ROSTER, SETTINGS
from responder.api.openapi import openapi_document
from responder.api.schedules import override_problems, refresh_overrides
from responder.engine.acceptance import (
    OUTCOMES,
)
from responder.errors import Forbidden, ValidationFailed
from responder.oncall import store
from responder.oncall.schedule import Override, spans
from responder.review.metrics import LIVES_SAVED, Filters, Review, page_counts, parse_filters, review
from responder.store.models import Case, CaseTask, Integration

routes = web.RouteTableDef()
COOKIE, LOGIN_COOKIE = "responder_session", "responder_login"
ACCOUNT_PAGE = "/account/password"  # web/account.py
REVIEWERS = ("manager", "auditor")
TIMES = (
    ("identified_at", "Identified"),
    ("located_at", "Located"),
    ("dispatched_at", "Dispatched"),
    ("contacted_at", "Contacted"),
)
STREAMS_CLOSING = web.AppKey("streams_closing", asyncio.Event)
LOGIN_GATE = web.AppKey("login_gate", asyncio.Semaphore)
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


def _secure(request: web.Request) -> bool:
    return request.app[SETTINGS].env.public_url.startswith("https://")


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


# --- log in and out ---------------------------------------------------------------------------------


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    csrf = secrets.token_urlsafe(24)
    response = render(
        "login.html",
        principal=None,
        csrf=csrf,
        next=_safe_next(request.query.get("next")),
        error="",
    )
    response.set_cookie(
        LOGIN_COOKIE, csrf, httponly=True, samesite="Strict", secure=_secure(request), max_age=3600
    )
    return response


# A path on this site, in plain URL characters. Browsers drop tabs and newlines from a Location and
# read "\" as "/", so "/\t/evil.example" or "/\\evil.example" would lead off the site.
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*")


def _safe_next(value: str | None) -> str:
    """Only a path on this site (no open redirect); anything else goes home."""
    return value if value and _SAME_SITE_PATH.fullmatch(value) else "/"


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
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


# --- cases ------------------------------------------------------------------------------------------


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    principal = await login_required(request)
    if principal.has(*REVIEWERS):
        raise web.HTTPSeeOther("/dashboard")
    if principal.has("auditor"):
        raise web.HTTPSeeOther("/audit")
    if principal.has("admin") and not principal.has("negotiator", "investigator", "team_lead"):
        raise web.HTTPSeeOther("/admin/users")
    raise web.HTTPSeeOther("/cases")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# --- review -----------------------------------------------------------------------------------------


def _filters(query: Any) -> tuple[Filters, dict[str, str]]:
    filters, problems = parse_filters(query)
    return filters, _field_errors(problems)


def _field_errors(problems: list[dict[str, str]]) -> dict[str, str]:
    """{field: "Message."} for the template, from the domain's [{field, message}]."""
    return {p["field"]: _sentence(p["message"]) for p in problems}


def _utc_input(raw: str) -> datetime:
    """A <input type=datetime-local> value, read as UTC; ValueError when it is not one."""
    return datetime.fromisoformat(raw.strip()).replace(tzinfo=UTC)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _chart(result: Review) -> str:
    """Outcome counts as a horizontal bar chart, in SVG made here (no library, no CDN)."""
    items = sorted(result.outcomes.items(), key=lambda kv: -kv[1])
    if not items:
        return ""
    top, bar_h, width = max(n for _, n in items), 22, 560
    rows = []
    for index, (name, count) in enumerate(items):
        y = index * (bar_h + 6)
        length = 0 if top == 0 else round((width - 260) * count / top)
        rows.append(
            f'<text x="0" y="{y + 16}" font-size="13">{escape(name.replace("_", " "))}</text>'
            f'<rect x="210" y="{y}" width="{length}" height="{bar_h}" fill="#0b57d0"></rect>'
            f'<text x="{216 + length}" y="{y + 16}" font-size="13">{count}</text>'
        )
    height = len(items) * (bar_h + 6)
    return (
        f'<svg role="img" aria-label="Outcome counts" viewBox="0 0 {width} {height}" width="{width}" '
        f'class="chart" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


async def _open_cases(request: web.Request) -> list[dict[str, Any]]:
    now = request.app[CLOCK].now()
    async with request.app[DB].sessions() as session:
        cases = (
            (
                await session.execute(
                    select(Case)
                    .where(col(Case.status) != "resolved")
                    .order_by(col(Case.priority), col(Case.received_at))
                )
            )
            .scalars()
            .all()
        )
        tasks = (
            await session.execute(
                select(col(CaseTask.case_id), col(CaseTask.due_at)).where(
                    col(CaseTask.case_id).in_([c.id for c in cases]), col(CaseTask.done_at).is_(None)
                )
            )
        ).all()
    earliest: dict[str, datetime] = {}
    for case_id, due in tasks:
        earliest[case_id] = min(due, earliest.get(case_id, due))
    found = []
    for case in cases:
        candidates = [
            t for t in (case.next_due_at if case.status == "open" else None, earliest.get(case.id)) if t
        ]
        deadline = min(candidates) if candidates else None
        found.append(
            {
                "id": case.id,
                "ref": case.ref,
                "status": case.status,
                "risk": case.risk_level,
                "region": case.region,
                "overdue": case.id in earliest and earliest[case.id] < now,
                "deadline_text": deadline.strftime("%Y-%m-%d %H:%M") if deadline else "-",
            }
        )
    return found


async def _closed_cases(request: web.Request, filters: Filters) -> list[dict[str, Any]]:
    """The latest 100 resolved cases matching the filters (the CSV has them all)."""
    async with request.app[DB].sessions() as session:
        rows = (
            (
                await session.execute(
                    select(Case)
                    .where(*filters.where(), col(Case.status) == "resolved")
                    .order_by(col(Case.resolved_at).desc())
                    .limit(100)
                )
            )
            .scalars()
            .all()
        )
    return [
        {
            "id": c.id,
            "ref": c.ref,
            "outcome": (c.outcome or "").replace("_", " "),
            "region": c.region,
            "accepted_by": _name(request, c.accepted_by),
            "received": c.received_at.strftime("%Y-%m-%d %H:%M"),
            "to_accept": _duration((c.accepted_at - c.received_at).total_seconds()) if c.accepted_at else "-",
        }
        for c in rows
    ]


def _name(request: web.Request, person_id: str | None) -> str:
    person = request.app[ROSTER].person(person_id) if person_id else None
    return person.name if person else (person_id or "-")


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    principal = await login_required(request, *REVIEWERS, "team_lead")
    filters, errors = _filters(request.query)
    result = await review(request.app[DB], filters)
    now = request.app[CLOCK].now()
    # Auditors see aggregates only: open cases name people (refs, regions) and are for those who act.
    managing = principal.has("manager", "team_lead")
    open_cases = await _open_cases(request) if managing else None
    closed_cases = await _closed_cases(request, filters) if managing else None
    return render(
        "dashboard.html",
        422 if errors else 200,
        principal=principal,
        title="Dashboard",
        report=False,
        r=result,
        errors=errors,
        query=request.query,
        query_string=request.query_string,
        outcomes=OUTCOMES,
        lives_saved=LIVES_SAVED,
        chart=_chart(result),
        open_cases=open_cases,
        closed_cases=closed_cases,
        this_month=now.strftime("%Y-%m"),
        dur=_duration,
        pct=_pct,
    )


@routes.get("/reports/monthly")
async def monthly_report(request: web.Request) -> web.Response:
    principal = await login_required(request, *REVIEWERS)
    month = request.query.get("month", request.app[CLOCK].now().strftime("%Y-%m"))
    try:
        start = datetime.strptime(month + "-01", "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValidationFailed([{"field": "month", "message": "a month as YYYY-MM"}]) from exc
    end = (start + timedelta(days=32)).replace(day=1)
    result = await review(request.app[DB], Filters(start=start, end=end))
    return render(
        "dashboard.html",
        principal=principal,
        title=f"Monthly report: {start.strftime('%B %Y')}",
        report=True,
        r=result,
        errors={},
        query={},
        query_string="",
        outcomes=OUTCOMES,
        lives_saved=LIVES_SAVED,
        chart=_chart(result),
        open_cases=None,
        closed_cases=None,
        this_month=month,
        dur=_duration,
        pct=_pct,
    )


CSV_COLUMNS = (
    "ref",
    "status",
    "platform",
    "risk_level",
    "is_live",
    "region",
    "received_at",
    "accepted_by",
    "accepted_at",
    "resolved_at",
    "outcome",
    "services_dispatched",
    "person_collaborated",
    "identified_at",
    "located_at",
    "dispatched_at",
    "contacted_at",
    "pages",
    "pages_failed",
)


@routes.get("/dashboard.csv")
async def dashboard_csv(request: web.Request) -> web.Response:
    principal = await login_required(request, *REVIEWERS)
    filters, errors = _filters(request.query)
    if errors:
        raise ValidationFailed([{"field": k, "message": v} for k, v in errors.items()])
    async with request.app[DB].sessions() as session:
        rows = (
            await session.execute(
                select(Case, col(Integration.name))
                .join(Integration, col(Integration.id) == col(Case.integration_id))
                .where(*filters.where())
                .order_by(col(Case.received_at))
            )
        ).all()
        counts = await page_counts(session, filters.where())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for case, platform in rows:
        pages, failed = counts.get(case.id, (0, 0))
        values = {**case.model_dump(), "platform": platform, "pages": pages, "pages_failed": failed}
        writer.writerow([_csv_value(values.get(c)) for c in CSV_COLUMNS])
    await audit(
        request.app[DB],
        principal.name,
        "csv_exported",
        request.app[CLOCK].now(),
        rows=len(rows),
        query=request.query_string,
    )
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="responder-cases.csv"'},
    )


def _csv_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet


# --- admin ------------------------------------------------------------------------------------------


# /admin/users: web/admin.py


@routes.get("/admin/schedules")
async def schedules_page(request: web.Request) -> web.Response:
    principal = await login_required(request, "admin")
    return _render_schedules(request, principal)


def _render_schedules(
    request: web.Request,
    principal: Principal,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    message: str = "",
) -> web.Response:
    roster, now = request.app[ROSTER], request.app[CLOCK].now()
    turns = {s.id: spans(s, now, now + timedelta(days=7), roster.people) for s in roster.schedules}
    return render(
        "schedules.html",
        status,
        principal=principal,
        schedules=roster.schedules,
        turns=turns,
        people=roster.people,
        errors=errors or {},
        form=form or {},
        message=message,
    )


@routes.post("/admin/schedules/overrides")
async def add_schedule_override(request: web.Request) -> web.Response:
    """The API's override, from a form: the same checks, the same audit on the schedule's timeline."""
    principal = await login_required(request, "admin")
    form = await checked_form(request, principal)
    values = {
        k: str(form.get(k, "")).strip() for k in ("schedule", "layer", "person", "start", "end", "reason")
    }
    schedule = request.app[ROSTER].schedule(values["schedule"])
    errors: dict[str, str] = {}
    times: dict[str, datetime] = {}
    for key in ("start", "end"):
        try:
            times[key] = _utc_input(values[key])
        except ValueError:
            errors[key] = "Use the date and time picker (UTC)."
    if schedule is None:
        errors["schedule"] = "Unknown schedule."
    if not errors and schedule is not None:
        try:
            override = Override(
                layer=values["layer"] or "primary",
                person=values["person"],
                start=times["start"],
                end=times["end"],
                reason=values["reason"],
            )
        except ValidationError as exc:
            errors = {
                "end" if not e["loc"] else str(e["loc"][0]): _sentence(
                    str(e["msg"]).removeprefix("Value error, ")
                )
                for e in exc.errors()
            }
        else:
            problems = override_problems(request, schedule, override)
            errors = _field_errors(problems)
            if not errors:
                await store.add_override(
                    request.app[DB], schedule.id, override, principal.name, request.app[CLOCK].now()
                )
                await refresh_overrides(request.app)
                return _render_schedules(request, principal, message=f"Override added to {schedule.id}.")
    return _render_schedules(request, principal, 422, errors, values)


@routes.get("/docs")
async def api_docs(request: web.Request) -> web.Response:
    """The OpenAPI document rendered for people (no login: it describes, it holds no data)."""
    return render("api_docs.html", principal=await current(request), doc=openapi_document())


def setup(app: web.Application) -> None:
    from responder.web import account, admin, audit_log, cases  # their pages use this module's helpers

    app.router.add_routes(cases.routes)
    app.router.add_routes(audit_log.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(account.routes)
    app[STREAMS_CLOSING] = asyncio.Event()
    app[LOGIN_GATE] = asyncio.Semaphore(LOGINS_AT_ONCE)
    app.on_shutdown.append(_close_streams)
    app.router.add_routes(routes)


async def _close_streams(app: web.Application) -> None:
    # Before the server waits for its handlers: a live timeline must end by itself, not be cancelled
    # in the middle of a database read (whose thread would then answer a loop already closed).
    app[STREAMS_CLOSING].set()
