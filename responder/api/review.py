"""Review API: cases listed and filtered with pagination, and the metrics of PRODUCT.md §5."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from responder.accounts.audit import audit
from responder.api.auth import require_api
from responder.api.keys import CLOCK, DB
from responder.domain import REVIEWERS
from responder.errors import ValidationFailed
from responder.review.metrics import LIVES_SAVED, parse_filters, review
from responder.store.review import Filters, page_of_cases

routes = web.RouteTableDef()
MAX_PAGE = 200


def filters_of(query: Any) -> Filters:
    filters, problems = parse_filters(query)
    if problems:
        raise ValidationFailed(problems)
    return filters


@routes.get("/v1/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Response times (median, p90), outcomes, lives saved, false positives, page failures, breaches."""
    await require_api(request, *REVIEWERS)
    result = await review(request.app[DB], filters_of(request.query))
    return web.json_response({**result.as_json(), "lives_saved_outcomes": list(LIVES_SAVED)})


@routes.get("/v1/review/cases")
async def cases(request: web.Request) -> web.Response:
    """Cases filtered like the dashboard, newest first: ?limit= (at most 200) and ?offset=."""
    caller = await require_api(request, "manager")
    filters = filters_of(request.query)
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError as exc:
        raise ValidationFailed([{"field": "limit", "message": "limit and offset are whole numbers"}]) from exc
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValidationFailed([{"field": "limit", "message": f"1 to {MAX_PAGE}; offset 0 or more"}])
    total, rows = await page_of_cases(request.app[DB], filters, limit, offset)
    await audit(request.app[DB], caller.name, "cases_listed", request.app[CLOCK].now(), rows=len(rows))
    return web.json_response(
        {
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None,
            "cases": [
                {
                    "id": c.id,
                    "ref": c.ref,
                    "status": c.status,
                    "risk_level": c.risk_level,
                    "region": c.region,
                    "received_at": c.received_at.isoformat().replace("+00:00", "Z"),
                    "accepted_by": c.accepted_by,
                    "outcome": c.outcome,
                }
                for c in rows
            ],
        }
    )
