"""/audit for auditors and admins: filtered by case, actor, kind and period, and paged through everything
(newest first, an "older" link per page of 100: keyset on the id, so no entry is ever out of reach)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from aiohttp import web

from responder.accounts.audit import AuditQuery, audit_trail
from responder.api.keys import DB
from responder.domain import ADMIN, AUDITOR
from responder.web.views import field_errors, login_required, render

routes = web.RouteTableDef()
PAGE_SIZE, MAX_PAGE_SIZE = 100, 500
FILTERS = ("case", "actor", "action", "from", "to")
_CASE_ID = re.compile(r"[A-Za-z0-9-]{1,36}")  # as case ids are written (max_length 36)
_ACTION = re.compile(r"[a-z_]{1,40}")  # audit actions are snake_case words (max_length 40)


def parse_audit_query(query: Mapping[str, str]) -> tuple[AuditQuery, list[dict[str, str]]]:
    """The filters of ?case=&actor=&action=&from=&to=&before=&limit=, with one problem per bad field."""
    problems: list[dict[str, str]] = []
    values = {key: query.get(key, "").strip() or None for key in (*FILTERS, "before", "limit")}
    if values["case"] is not None and not _CASE_ID.fullmatch(values["case"]):
        problems.append({"field": "case", "message": "a case id: letters, digits and '-', at most 36"})
    if values["actor"] is not None and len(values["actor"]) > 80:
        problems.append({"field": "actor", "message": "at most 80 characters, like user:maya"})
    if values["action"] is not None and not _ACTION.fullmatch(values["action"]):
        problems.append({"field": "action", "message": "a kind of entry, like case_viewed or login_failed"})
    bounds: dict[str, datetime | None] = {}
    for key in ("from", "to"):
        raw = values[key]
        bounds[key] = None if raw is None else _moment(raw)
        if raw is not None and bounds[key] is None:
            problems.append({"field": key, "message": "a UTC time as YYYY-MM-DD or YYYY-MM-DDTHH:MM"})
    start, end = bounds["from"], bounds["to"]
    if start is not None and end is not None and end <= start:
        problems.append({"field": "to", "message": "after 'from'"})
    before = _whole(values["before"], 1, 2**63 - 1)
    if values["before"] is not None and before is None:
        problems.append({"field": "before", "message": "an entry number (the 'older' link's)"})
    limit = _whole(values["limit"], 1, MAX_PAGE_SIZE) if values["limit"] is not None else PAGE_SIZE
    if limit is None:
        problems.append({"field": "limit", "message": f"a whole number from 1 to {MAX_PAGE_SIZE}"})
    parsed = AuditQuery(
        case_id=values["case"],
        actor=values["actor"],
        action=values["action"],
        start=start,
        end=end,
        before=before,
        limit=limit or PAGE_SIZE,
    )
    return parsed, problems


def _moment(raw: str) -> datetime | None:
    """A date (its midnight) or a date and time, read as UTC unless it names its offset."""
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _whole(raw: str | None, low: int, high: int) -> int | None:
    # ASCII digits only, and few of them: int() refuses "²" and strings of thousands of digits.
    if raw is None or not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        return None
    return int(raw)


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    principal = await login_required(request, AUDITOR, ADMIN)
    query, problems = parse_audit_query(request.query)
    # A bad filter shows the form with the message next to the field, and no entries (422).
    events, more = ([], False) if problems else await audit_trail(request.app[DB], query)
    kept = {key: request.query[key] for key in (*FILTERS, "limit") if request.query.get(key)}
    older = urlencode({**kept, "before": events[-1].id}) if more and events else None
    return render(
        "audit.html",
        422 if problems else 200,
        principal=principal,
        events=events,
        errors=field_errors(problems),
        query=request.query,
        older=older,
        newest=urlencode(kept) if query.before is not None else None,
    )
