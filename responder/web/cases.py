"""The case pages: a negotiator works a case from a phone; who sees what is decided by access.py.

Every full view of a case writes an audit row; so does every refusal. A stub (someone else has the
case) carries nothing personal. Reading a case resolved long ago takes a reason, kept on the audit row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from responder.accounts.access import CaseAccess, View, case_access, work_refusal
from responder.accounts.audit import audit
from responder.accounts.service import Principal, session_principal
from responder.api.cases import case_json
from responder.api.keys import CLOCK, COMMANDS, DB, ROSTER, SETTINGS, STREAMS_CLOSING
from responder.domain import LEADS, MANAGER, OUTCOMES, PAGED_ROLES
from responder.engine.acceptance import REASON_REQUIRED
from responder.errors import Conflict, Forbidden, NotFound, ValidationFailed
from responder.store import retention
from responder.store.cases import case_and_paged, events_after, latest_cases, latest_page_to, load_case
from responder.store.models import Case, Page
from responder.web.views import (
    COOKIE,
    STREAM_POLL_S,
    TIMES,
    checked_form,
    current,
    field_errors,
    login_required,
    render,
    utc_input,
)

routes = web.RouteTableDef()
REASON_MAX = 500
CLOSED_TO_YOU = "This case is no longer open to you."
LOGGED_OUT = "Your login has ended: log in again to go on."


@routes.get("/cases")
async def my_cases(request: web.Request) -> web.Response:
    principal = await login_required(request)
    if principal.has(*LEADS):
        cases = await latest_cases(request.app[DB])
    else:
        # Only the roles that are paged have "their" cases (a person link on an auditor is nothing).
        on_call = principal.has(*PAGED_ROLES) and principal.person_id is not None
        cases = await latest_cases(request.app[DB], paged_to=principal.person_id, nobody=not on_call)
    heading = "All cases" if principal.has(*LEADS) else "Cases paged to you"
    return render("cases.html", principal=principal, cases=cases, heading=heading)


def holder_window(request: web.Request) -> timedelta:
    return timedelta(hours=request.app[SETTINGS].env.holder_access_after_resolve_h)


async def access_to(
    request: web.Request, principal: Principal, case_id: str, audited: bool = True
) -> tuple[Case, CaseAccess, bool]:
    """The case, what this person may do with it and whether they were paged for it; 404 for no such
    case, 403 (audited) for none."""
    db, now = request.app[DB], request.app[CLOCK].now()
    case, paged = await case_and_paged(db, case_id, principal.person_id)
    access = case_access(principal, case, paged, now, holder_window(request))
    if access.view is View.NONE:
        if audited:
            await audit(db, principal.name, "case_view_refused", now, case_id, path=request.path)
        raise Forbidden(access.why)
    return case, access, paged


async def may_work(request: web.Request, principal: Principal, what: str) -> str:
    """The case id when this person may work the case (holder, team lead, manager); else 403,
    audited. A case resolved long ago is read-only, even for a lead."""
    case_id = request.match_info["case_id"]
    _, access, _ = await access_to(request, principal, case_id)
    if not access.work or access.reason_required:
        await audit(
            request.app[DB],
            principal.name,
            "case_action_refused",
            request.app[CLOCK].now(),
            case_id,
            path=request.path,
        )
        raise Forbidden(work_refusal(access, what))
    return case_id


@routes.get("/cases/{case_id}")
async def case_page(request: web.Request) -> web.Response:
    principal = await login_required(request)
    return await _render_case(request, principal, request.match_info["case_id"])


@routes.post("/cases/{case_id}/open")
async def break_glass(request: web.Request) -> web.Response:
    """An old resolved case, read with a reason: the reason is kept on the audit row."""
    principal = await login_required(request)
    form = await checked_form(request, principal)
    reason = str(form.get("reason", "")).strip()
    if not reason or len(reason) > REASON_MAX:
        return await _render_case(
            request,
            principal,
            request.match_info["case_id"],
            422,
            errors={"reason": f"Say why you open this case (1 to {REASON_MAX} characters)."},
        )
    return await _render_case(request, principal, request.match_info["case_id"], reason=reason)


async def _render_case(
    request: web.Request,
    principal: Principal,
    case_id: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    message: str = "",
    reason: str | None = None,
) -> web.Response:
    _, _, paged = await access_to(request, principal, case_id)
    loaded = await load_case(request.app[DB], case_id)
    case, now = loaded[0], request.app[CLOCK].now()
    # Decided again on the case as loaded for the page: an accept in between makes it a stub.
    access = case_access(principal, case, paged, now, holder_window(request))
    if access.view is View.NONE:
        raise Forbidden(access.why)
    if access.view is View.STUB or (access.reason_required and reason is None):
        if access.reason_required:
            await audit(
                request.app[DB],
                principal.name,
                "case_view_refused",
                now,
                case_id,
                path=request.path,
                reason_required=True,
            )
        return _render_stub(request, principal, case, access, status, errors, message)
    data = case_json(request, *loaded)
    detail: dict[str, Any] = {"via": "web"} | ({"reason": reason} if reason is not None else {})
    await audit(request.app[DB], principal.name, "case_viewed", now, case_id, **detail)
    return render(
        "case.html",
        status,
        principal=principal,
        case=data | {"is_live": case.is_live},
        alert=case.alert if isinstance(case.alert, dict) else {},
        can_answer=access.answer,
        can_hold=principal.has(MANAGER) and reason is None,
        can_work=access.work and reason is None,  # a break-glass view is read-only
        live=reason is None,  # a break-glass view is of a closed case: nothing more will come
        outcomes=OUTCOMES,
        times=TIMES,
        errors=errors or {},
        form=form or {},
        message=message,
        now=now.isoformat().replace("+00:00", "Z"),
        last_event=max((e.id or 0 for e in loaded[1]), default=0),
    )


def _render_stub(
    request: web.Request,
    principal: Principal,
    case: Case,
    access: CaseAccess,
    status: int,
    errors: dict[str, str] | None,
    message: str,
) -> web.Response:
    """Reference, status, risk, region and who has it: nothing about the person."""
    holder = request.app[ROSTER].person(case.accepted_by) if case.accepted_by else None
    return render(
        "case_stub.html",
        403 if access.reason_required and status == 200 else status,
        principal=principal,
        case=case,
        holder=holder.name if holder else case.accepted_by,
        ask_reason=access.reason_required,
        why=access.why,
        errors=errors or {},
        message=message,
        reason_max=REASON_MAX,
    )


async def _answering(request: web.Request) -> tuple[Principal, str, Page]:
    """Who answers a page from the case page (accept or pass), the case, and their latest page for it;
    403 unless they may see the case, the form carries their CSRF token, and they were paged for it."""
    principal = await login_required(request)
    case_id = request.match_info["case_id"]
    await access_to(request, principal, case_id)
    await checked_form(request, principal)
    page = await latest_page_to(request.app[DB], case_id, principal.person_id or "")
    if page is None:
        raise Forbidden("only a person paged for this case can accept or pass it")
    return principal, case_id, page


@routes.post("/cases/{case_id}/accept")
async def accept_case(request: web.Request) -> web.Response:
    principal, case_id, page = await _answering(request)
    answer = await request.app[COMMANDS].accept(case_id, page.person_id, "web")
    message = {
        "accepted": "The case is yours.",
        "taken": f"Already accepted by {answer.result.holder_name or 'someone else'}.",
        "closed": "The case is no longer open.",
    }[answer.came_to]
    return await _render_case(request, principal, case_id, message=message)


@routes.post("/cases/{case_id}/pass")
async def pass_case(request: web.Request) -> web.Response:
    principal, case_id, page = await _answering(request)
    passed = await request.app[COMMANDS].pass_page(
        case_id, page.id, page.person_id, "web", "passed on the web page"
    )
    message = "Passed: the next person is being paged." if passed else "The case is no longer open."
    return await _render_case(request, principal, case_id, message=message)


@routes.post("/cases/{case_id}/tasks/{task}/done")
async def task_done(request: web.Request) -> web.Response:
    principal = await login_required(request)
    await checked_form(request, principal)
    case_id = await may_work(request, principal, "tick its tasks")
    with contextlib.suppress(Conflict):  # ticked twice (two people at once): it is done either way
        await request.app[COMMANDS].task_done(case_id, request.match_info["task"], principal.name)
    raise web.HTTPSeeOther(f"/cases/{case_id}#task-{request.match_info['task']}")


@routes.post("/cases/{case_id}/notes")
async def note(request: web.Request) -> web.Response:
    principal = await login_required(request)
    form = await checked_form(request, principal)
    case_id = await may_work(request, principal, "add notes")
    text = str(form.get("text", "")).strip()
    if not text or len(text) > 4000:
        return await _render_case(
            request, principal, case_id, 422, {"text": "Write 1 to 4000 characters."}, {"text": text}
        )
    await request.app[COMMANDS].note(case_id, text, principal.name)
    raise web.HTTPSeeOther(f"/cases/{case_id}")


@routes.post("/cases/{case_id}/resolve")
async def record_outcome(request: web.Request) -> web.Response:
    principal = await login_required(request)
    form = await checked_form(request, principal)
    case_id = await may_work(request, principal, "record its outcome")
    values = {k: str(form.get(k, "")) for k in ("outcome", "note", *(name for name, _ in TIMES))}
    errors: dict[str, str] = {}
    details: dict[str, Any] = {
        "services_dispatched": form.get("services_dispatched") == "1",
        "person_collaborated": form.get("person_collaborated") == "1",
    }
    for name, _ in TIMES:
        raw = values[name].strip()
        if raw:
            try:
                details[name] = utc_input(raw)
            except ValueError:
                errors[name] = "Use the date and time picker (UTC)."
    if not values["outcome"]:
        errors["outcome"] = "Choose an outcome."
    if values["outcome"] in REASON_REQUIRED and not values["note"].strip():
        errors["note"] = f"A reason is required for {values['outcome']}."
    if not errors:
        try:
            await request.app[COMMANDS].resolve(
                case_id, values["outcome"], values["note"].strip() or None, principal.name, details
            )
        except ValidationFailed as exc:
            errors = field_errors(exc.detail)
        except Conflict as exc:
            return await _render_case(request, principal, case_id, 409, message=str(exc.detail))
    if errors:
        return await _render_case(request, principal, case_id, 422, errors, values)
    raise web.HTTPSeeOther(f"/cases/{case_id}")


@routes.post("/cases/{case_id}/hold")
async def hold(request: web.Request) -> web.Response:
    """A manager puts the case on legal hold, or lifts it (`lift=1`), with a reason; audited."""
    principal = await login_required(request)
    form = await checked_form(request, principal)
    case_id = request.match_info["case_id"]
    if not principal.has(MANAGER):
        await audit(
            request.app[DB],
            principal.name,
            "case_action_refused",
            request.app[CLOCK].now(),
            case_id,
            path=request.path,
        )
        raise Forbidden("only a manager puts a case on legal hold or lifts it")
    reason = str(form.get("reason", "")).strip()
    if not reason or len(reason) > REASON_MAX:
        message = f"Give the hold's reason: 1 to {REASON_MAX} characters (a reference, not the person)."
        return await _render_case(request, principal, case_id, 422, {"reason": message}, {"reason": reason})
    change = retention.lift_hold if form.get("lift") == "1" else retention.set_hold
    try:
        await change(request.app[DB], case_id, principal.name, reason, request.app[CLOCK].now())
    except Conflict as exc:
        return await _render_case(request, principal, case_id, 409, message=str(exc.detail))
    raise web.HTTPSeeOther(f"/cases/{case_id}")


@routes.get("/cases/{case_id}/events")
async def case_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the case's new timeline entries as they land (the page updates live).

    The stream lasts while its login and its access last: a logout, a disabled account, the case
    taken by someone else or closed to this person ends it at the next look, with a last `end`
    message that tells the page to drop the person's details. A reconnect without a login or without
    access gets that message at once (never a redirect the browser's EventSource cannot read)."""
    case_id = request.match_info["case_id"]
    principal = await current(request)
    access: CaseAccess | None = None
    status: str | None = None
    if principal is not None:
        with contextlib.suppress(Forbidden):
            case, access, _ = await access_to(request, principal, case_id)
            status = case.status
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    if principal is None:
        await _end(response, LOGGED_OUT, None)
        return response
    if access is None or not access.full:  # no access, or the case left their hands before this
        await _end(response, (access.why if access else "") or CLOSED_TO_YOU, status)
        return response
    after = _last_event_id(request)
    deadline = asyncio.get_running_loop().time() + 600  # the browser reconnects after this
    closing = request.app[STREAMS_CLOSING]
    while asyncio.get_running_loop().time() < deadline and not closing.is_set():
        rows = await events_after(request.app[DB], case_id, after)
        for event, event_status in rows:
            after = event.id or after
            payload = {
                "id": event.id,
                "at": event.at.isoformat().replace("+00:00", "Z"),
                "type": event.type,
                "actor": event.actor,
                "status": event_status,
            }
            try:
                await response.write(f"id: {event.id}\ndata: {json.dumps(payload)}\n\n".encode())
            except ConnectionError:
                return response  # the page was closed: nothing to clean up
        # The events carry no personal field, so those up to now go out; then the access is checked.
        ended = await _access_ended(request, case_id)
        if ended is not None:
            await _end(response, *ended)
            return response
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), STREAM_POLL_S)  # the next look, or shutdown
    return response


def _last_event_id(request: web.Request) -> int:
    """Where the stream starts: after the browser's Last-Event-ID on a reconnect, else `?after=`."""
    for given in (request.headers.get("Last-Event-ID", ""), request.query.get("after", "")):
        if given.isdigit() and len(given) <= 18:
            return int(given)
    return 0


async def _end(response: web.StreamResponse, reason: str, status: str | None) -> None:
    """The stream's last message: why it ends, and the case's status (the page shows both)."""
    with contextlib.suppress(ConnectionError):
        message = json.dumps({"reason": reason, "status": status})
        await response.write(f"event: end\ndata: {message}\n\n".encode())


async def _access_ended(request: web.Request, case_id: str) -> tuple[str, str | None] | None:
    """Why the stream must end now (its login ended, or it no longer sees the whole case), and the
    case's status; None while it goes on."""
    now = request.app[CLOCK].now()
    principal = await session_principal(request.app[DB], request.cookies.get(COOKIE, ""), now)
    if principal is None:
        return LOGGED_OUT, None
    try:
        case, access, _ = await access_to(request, principal, case_id, audited=False)
    except (Forbidden, NotFound):
        return CLOSED_TO_YOU, None
    return None if access.full else (access.why or CLOSED_TO_YOU, case.status)
