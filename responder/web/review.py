"""/dashboard, /reports/monthly and /dashboard.csv: the outcome review (PRODUCT.md §5) for managers,
auditors and team leads. The figures are review/metrics.py's; the lists of cases store/review.py's."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from markupsafe import escape

from responder.accounts.audit import audit
from responder.api.keys import CLOCK, DB, ROSTER
from responder.domain import LEADS, OPEN, OUTCOMES, REVIEWERS
from responder.errors import ValidationFailed
from responder.review.metrics import LIVES_SAVED, Review, page_counts, parse_filters, review
from responder.store.models import Case
from responder.store.review import Filters, cases_with_platform, latest_resolved, unresolved_cases
from responder.web.views import field_errors, login_required, render

routes = web.RouteTableDef()
_CASE_COLUMNS = frozenset(Case.model_fields)
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


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    principal = await login_required(request, *REVIEWERS, "team_lead")
    filters, errors = _filters(request.query)
    result = await review(request.app[DB], filters)
    now = request.app[CLOCK].now()
    # Auditors see aggregates only: open cases name people (refs, regions) and are for those who act.
    managing = principal.has(*LEADS)
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


@routes.get("/dashboard.csv")
async def dashboard_csv(request: web.Request) -> web.Response:
    principal = await login_required(request, *REVIEWERS)
    filters, errors = _filters(request.query)
    if errors:
        raise ValidationFailed([{"field": k, "message": v} for k, v in errors.items()])
    rows = await cases_with_platform(request.app[DB], filters)
    counts = await page_counts(request.app[DB], filters)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for case, platform in rows:
        pages, failed = counts.get(case.id, (0, 0))
        values = {
            **{c: getattr(case, c) for c in CSV_COLUMNS if c in _CASE_COLUMNS},
            "platform": platform,
            "pages": pages,
            "pages_failed": failed,
        }
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


def _filters(query: Mapping[str, str]) -> tuple[Filters, dict[str, str]]:
    filters, problems = parse_filters(query)
    return filters, field_errors(problems)


async def _open_cases(request: web.Request) -> list[dict[str, Any]]:
    now = request.app[CLOCK].now()
    found = []
    for case, task_due in await unresolved_cases(request.app[DB]):
        candidates = [t for t in (case.next_due_at if case.status == OPEN else None, task_due) if t]
        deadline = min(candidates) if candidates else None
        found.append(
            {
                "id": case.id,
                "ref": case.ref,
                "status": case.status,
                "risk": case.risk_level,
                "region": case.region,
                "overdue": task_due is not None and task_due < now,
                "deadline_text": deadline.strftime("%Y-%m-%d %H:%M") if deadline else "-",
            }
        )
    return found


async def _closed_cases(request: web.Request, filters: Filters) -> list[dict[str, Any]]:
    """The latest 100 resolved cases matching the filters (the CSV has them all)."""
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
        for c in await latest_resolved(request.app[DB], filters, limit=100)
    ]


def _name(request: web.Request, person_id: str | None) -> str:
    person = request.app[ROSTER].person(person_id) if person_id else None
    return person.name if person else (person_id or "-")


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


def _csv_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet
