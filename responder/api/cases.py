"""The case API for staff tools: read a case with its timeline, resolve it with an outcome."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from responder.accounts.access import case_access
from responder.accounts.audit import audit
from responder.accounts.service import Principal
from responder.api.auth import require_api
from responder.api.keys import CLOCK, COMMANDS, DB, ROSTER, SETTINGS
from responder.domain import CASE_STATUSES, LEADS, MANAGER
from responder.errors import Forbidden, InvalidJSON, ValidationFailed
from responder.store import cases as case_store
from responder.store import retention
from responder.store.models import Case, CaseEvent, CaseTask, Page

routes = web.RouteTableDef()
# Reading a case resolved longer ago than the holder's window is break-glass: the caller says why.
REASON_HEADER, REASON_MAX = "X-Access-Reason", 500


class ReasonRequired(Forbidden):
    code = "reason_required"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def case_json(
    request: web.Request,
    case: Case,
    events: list[CaseEvent],
    pages: list[Page],
    tasks: list[CaseTask],
    earlier: list[Case],
) -> dict[str, Any]:
    roster = request.app[ROSTER]
    holder = roster.person(case.accepted_by) if case.accepted_by else None

    def who(person_id: str) -> dict[str, str]:
        person = roster.person(person_id)
        return {"id": person_id, "name": person.name if person else person_id}

    return {
        "id": case.id,
        "ref": case.ref,
        "status": case.status,
        "risk_level": case.risk_level,
        "is_live": case.is_live,
        "region": case.region,
        "language": case.language,
        "playbook": case.playbook,
        "alert_id": case.alert_id,
        "detected_at": _iso(case.detected_at),
        "received_at": _iso(case.received_at),
        "next_due_at": _iso(case.next_due_at),
        "accepted_by": {"id": case.accepted_by, "name": holder.name if holder else case.accepted_by}
        if case.accepted_by
        else None,
        "accepted_at": _iso(case.accepted_at),
        "accepted_via": case.accepted_via,
        "resolved_at": _iso(case.resolved_at),
        "outcome": case.outcome,
        "outcome_note": case.outcome_note,
        "pages": [
            {
                "id": p.id,
                "person": who(p.person_id),
                "channel": p.channel,
                "purpose": p.purpose,
                "tier": p.tier,
                "step": p.step,
                "status": p.status,
                "twilio_status": p.twilio_status,
                "outcome": p.outcome,
                "created_at": _iso(p.created_at),
                "sent_at": _iso(p.sent_at),
                "error_code": p.error_code,
                "answered_by": p.answered_by,
            }
            for p in pages
        ],
        "tasks": [
            {
                "id": t.task,
                "title": t.title,
                "role": t.role,
                "due_at": _iso(t.due_at),
                "done_at": _iso(t.done_at),
                "done_by": t.done_by,
                "overdue": t.done_at is None and t.overdue_at is not None,
            }
            for t in tasks
        ],
        "timeline": [
            {"type": e.type, "at": _iso(e.at), "actor": e.actor, "detail": e.detail} for e in events
        ],
        # When the person's data goes (store/retention.py): redacted, due, or held.
        "retention": retention_json(request, case),
        # The same person's earlier cases (by the subject's pseudonym), newest first.
        "earlier_cases": [
            {
                "id": c.id,
                "ref": c.ref,
                "status": c.status,
                "received_at": _iso(c.received_at),
                "outcome": c.outcome,
            }
            for c in earlier
        ],
    }


def retention_json(request: web.Request, case: Case) -> dict[str, Any]:
    """When the person's data goes (store/retention.py): redacted when, due when, or held by whom."""
    identity_s, notes_s = request.app[SETTINGS].config.retention.periods(case.outcome)

    def until(seconds: float, redacted: datetime | None) -> str | None:
        if case.resolved_at is None or case.held_at is not None or redacted is not None:
            return None
        return _iso(case.resolved_at + timedelta(seconds=seconds))

    return {
        "identity_redacted_at": _iso(case.identity_redacted_at),
        "notes_redacted_at": _iso(case.notes_redacted_at),
        "identity_until": until(identity_s, case.identity_redacted_at),
        "notes_until": until(notes_s, case.notes_redacted_at),
        "legal_hold": {"since": _iso(case.held_at), "by": case.held_by, "reason": case.hold_reason}
        if case.held_at is not None
        else None,
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise InvalidJSON("body is not JSON") from exc
    if not isinstance(body, dict):
        raise ValidationFailed([{"field": "(body)", "message": "must be a JSON object"}])
    return body


@routes.post("/v1/cases/{case_id}/tasks/{task}/done")
async def task_done(request: web.Request) -> web.Response:
    caller = await require_api(request, *LEADS)
    reason = await _reason(request, caller, request.match_info["case_id"])
    await request.app[COMMANDS].task_done(
        request.match_info["case_id"], request.match_info["task"], caller.name
    )
    return await _answer(request, caller, request.match_info["case_id"], reason)


@routes.post("/v1/cases/{case_id}/notes")
async def post_note(request: web.Request) -> web.Response:
    caller = await require_api(request, *LEADS)
    text = (await _json_body(request)).get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 4000:
        raise ValidationFailed([{"field": "text", "message": "required: 1 to 4000 characters"}])
    reason = await _reason(request, caller, request.match_info["case_id"])
    await request.app[COMMANDS].note(request.match_info["case_id"], text.strip(), caller.name)
    return await _answer(request, caller, request.match_info["case_id"], reason, status=201)


@routes.get("/v1/cases")
async def list_cases(request: web.Request) -> web.Response:
    await require_api(request, *LEADS)
    status = request.query.get("status")
    if status is not None and status not in CASE_STATUSES:
        raise ValidationFailed([{"field": "status", "message": f"must be one of {', '.join(CASE_STATUSES)}"}])
    cases = await case_store.latest_cases(request.app[DB], status=status or None)
    return web.json_response(
        {
            "cases": [
                {
                    "id": c.id,
                    "ref": c.ref,
                    "status": c.status,
                    "risk_level": c.risk_level,
                    "region": c.region,
                    "received_at": _iso(c.received_at),
                    "next_due_at": _iso(c.next_due_at),
                }
                for c in cases
            ]
        }
    )


@routes.get("/v1/cases/{case_id}")
async def get_case(request: web.Request) -> web.Response:
    caller = await require_api(request, *LEADS)
    reason = await _reason(request, caller, request.match_info["case_id"])
    return await _answer(request, caller, request.match_info["case_id"], reason)


@routes.post("/v1/cases/{case_id}/resolve")
async def resolve_case(request: web.Request) -> web.Response:
    caller = await require_api(request, *LEADS)
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise InvalidJSON("body is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("outcome"), str):
        raise ValidationFailed([{"field": "outcome", "message": "required: an outcome code string"}])
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise ValidationFailed([{"field": "note", "message": "must be a string of at most 2000 characters"}])
    case = await request.app[COMMANDS].resolve(
        request.match_info["case_id"], body["outcome"], note, caller.name
    )
    return await _answer(request, caller, case.id, None)


@routes.post("/v1/cases/{case_id}/hold")
@routes.delete("/v1/cases/{case_id}/hold")
async def hold_case(request: web.Request) -> web.Response:
    """A legal hold (managers), with a reason: POST sets it (nothing of the case is redacted until it is
    lifted), DELETE lifts it (retention applies again); audited. The answer carries the case's
    reference and retention, nothing about the person."""
    caller = await require_api(request, MANAGER)
    reason = _hold_reason(await _json_body(request))
    case_id = request.match_info["case_id"]
    change = retention.set_hold if request.method == "POST" else retention.lift_hold
    await change(request.app[DB], case_id, caller.name, reason, request.app[CLOCK].now())
    case = await case_store.get_case(request.app[DB], case_id)
    return web.json_response({"id": case.id, "ref": case.ref, "retention": retention_json(request, case)})


def _hold_reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_MAX:
        raise ValidationFailed(
            [
                {
                    "field": "reason",
                    "message": f"required: 1 to {REASON_MAX} characters (a reference, not the person)",
                }
            ]
        )
    return reason.strip()


async def _reason(request: web.Request, caller: Principal, case_id: str) -> str | None:
    """The caller's reason when the case needs one (resolved longer ago than the holder's window);
    403 reason_required when it needs one and none was given. None when no reason is needed."""
    case = await case_store.get_case(request.app[DB], case_id)
    window = timedelta(hours=request.app[SETTINGS].env.holder_access_after_resolve_h)
    if not case_access(caller, case, False, request.app[CLOCK].now(), window).reason_required:
        return None
    given = request.headers.get(REASON_HEADER, "").strip()
    if not given or len(given) > REASON_MAX:
        await audit(
            request.app[DB],
            caller.name,
            "case_view_refused",
            request.app[CLOCK].now(),
            case_id,
            path=request.path,
            reason_required=True,
        )
        raise ReasonRequired(
            [
                {
                    "field": REASON_HEADER,
                    "message": f"this case was resolved over {window.total_seconds() / 3600:g} h ago: "
                    f"say why you read it (1 to {REASON_MAX} characters); the reason is audited",
                }
            ]
        )
    return given


async def _answer(
    request: web.Request, caller: Principal, case_id: str, reason: str | None, status: int = 200
) -> web.Response:
    """The whole case, as every answer that carries it: audited, with the caller named."""
    loaded = await case_store.load_case(request.app[DB], case_id)
    detail: dict[str, Any] = {"via": "api"} | ({"reason": reason} if reason else {})
    await audit(request.app[DB], caller.name, "case_viewed", request.app[CLOCK].now(), case_id, **detail)
    return web.json_response(case_json(request, *loaded), status=status)
