"""Outcome review (PRODUCT.md §5): durations, percentiles and counts computed in SQL on both databases.

Percentiles are nearest-rank: the p-th percentile of n values is the smallest value whose rank r
(1-based, ascending) has r >= p/100 * n. The median is p50 by that rule (no interpolation), so a
figure is always a duration some case really took.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from responder.domain import OUTCOMES
from responder.paging.failures import CANCELLED, FAILED
from responder.store.db import Database
from responder.store.models import Case, CaseTask, Integration, Page
from responder.store.review import Filters

# Outcomes counted as a life saved: the person was found alive and helped. Documented in docs/review.md.
LIVES_SAVED = (
    "located_safe",
    "deescalated",
    "transported_voluntary",
    "transported_involuntary",
    "medical_intervention",
)
DURATIONS = ("first_page", "accept", "identify", "locate", "dispatch", "contact", "resolve")


def parse_filters(query: Mapping[str, str]) -> tuple[Filters, list[dict[str, str]]]:
    """Filters from a query string (?from=&to=&region=&platform=&outcome=&person=), with one problem
    per bad field; the dashboard shows them next to the field, the API answers 422."""
    problems: list[dict[str, str]] = []
    bounds: dict[str, datetime | None] = {"from": None, "to": None}
    for key in bounds:
        raw = query.get(key, "")
        if raw:
            try:
                bounds[key] = datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
            except ValueError:
                problems.append({"field": key, "message": "a date as YYYY-MM-DD"})
    outcome = query.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        problems.append({"field": "outcome", "message": f"one of {', '.join(OUTCOMES)}"})
    filters = Filters(
        start=bounds["from"],
        end=bounds["to"],
        region=query.get("region") or None,
        platform=query.get("platform") or None,
        outcome=outcome,
        person=query.get("person") or None,
    )
    return filters, problems


# The pages the review counts and the ones that failed (paging/failures.py says what failed; a page
# cancelled by an accept never went out and is not counted at all).
_PAGES_COUNTED = (col(Page.purpose) == "page", func.coalesce(col(Page.outcome), "") != CANCELLED)
_PAGE_FAILED = func.sum(case((col(Page.outcome) == FAILED, 1), else_=0))


async def page_counts(db: Database, filters: Filters) -> dict[str, tuple[int, int]]:
    """Per case of the filter: the pages counted and the pages failed, as the figures count them."""
    async with db.sessions() as session:
        rows = await session.execute(
            select(col(Page.case_id), func.count(), _PAGE_FAILED)
            .join(Case, col(Case.id) == col(Page.case_id))
            .where(*filters.where(), *_PAGES_COUNTED)
            .group_by(col(Page.case_id))
        )
        return {case_id: (int(pages), int(failed or 0)) for case_id, pages, failed in rows}


@dataclass
class Review:
    cases: int = 0
    resolved: int = 0
    open: int = 0
    durations: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    lives_saved: int = 0
    false_positive_rate: list[dict[str, Any]] = field(default_factory=list)
    page_failure_rate: float | None = None
    pages: int = 0
    pages_failed: int = 0
    deadline_breaches: int = 0
    # People (by their pseudonym, never their identity) with more than one case of the filter.
    repeat_subjects: int = 0
    repeat_subject_cases: int = 0

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def seconds_between(db: Database, start: Any, end: Any) -> ColumnElement[float]:
    if db.is_sqlite:
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)


async def review(db: Database, filters: Filters) -> Review:
    result = Review()
    where = filters.where()
    first_page = (
        select(func.min(col(Page.sent_at)))
        .where(col(Page.case_id) == col(Case.id), col(Page.purpose) == "page", col(Page.sent_at).is_not(None))
        .correlate(Case)
        .scalar_subquery()
    )
    ends = {
        "first_page": first_page,
        "accept": col(Case.accepted_at),
        "identify": col(Case.identified_at),
        "locate": col(Case.located_at),
        "dispatch": col(Case.dispatched_at),
        "contact": col(Case.contacted_at),
        "resolve": col(Case.resolved_at),
    }
    async with db.sessions() as session:
        counts = (
            await session.execute(
                select(
                    func.count(),
                    func.sum(case((col(Case.status) == "resolved", 1), else_=0)),
                ).where(*where)
            )
        ).one()
        result.cases, result.resolved = int(counts[0] or 0), int(counts[1] or 0)
        result.open = result.cases - result.resolved
        for name, end in ends.items():
            result.durations[name] = await _percentiles(session, db, where, end)
        for outcome, count in await session.execute(
            select(col(Case.outcome), func.count())
            .where(*where, col(Case.outcome).is_not(None))
            .group_by(col(Case.outcome))
        ):
            result.outcomes[str(outcome)] = int(count)
        result.lives_saved = sum(result.outcomes.get(o, 0) for o in LIVES_SAVED)
        rows = await session.execute(
            select(
                col(Integration.name),
                col(Case.risk_level),
                func.count(),
                func.sum(case((col(Case.outcome) == "false_positive", 1), else_=0)),
            )
            .join(Integration, col(Integration.id) == col(Case.integration_id))
            .where(*where, col(Case.status) == "resolved")
            .group_by(col(Integration.name), col(Case.risk_level))
            .order_by(col(Integration.name), col(Case.risk_level))
        )
        result.false_positive_rate = [
            {
                "platform": p,
                "risk": r,
                "resolved": int(n),
                "false_positives": int(fp or 0),
                "rate": round(int(fp or 0) / int(n), 4),
            }
            for p, r, n, fp in rows
        ]
        page_rows = (
            await session.execute(
                # paging/failures.py says what failed; a page cancelled by an accept never went out.
                select(func.count(), _PAGE_FAILED)
                .select_from(Page)
                .join(Case, col(Case.id) == col(Page.case_id))
                .where(*where, *_PAGES_COUNTED)
            )
        ).one()
        result.pages, result.pages_failed = int(page_rows[0] or 0), int(page_rows[1] or 0)
        result.page_failure_rate = round(result.pages_failed / result.pages, 4) if result.pages else None
        result.deadline_breaches = int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(CaseTask)
                    .join(Case, col(Case.id) == col(CaseTask.case_id))
                    .where(*where, col(CaseTask.overdue_at).is_not(None))
                )
            ).scalar()
            or 0
        )
        per_subject = (
            select(func.count().label("n"))
            .where(*where, col(Case.subject_key).is_not(None))
            .group_by(col(Case.subject_key))
            .having(func.count() > 1)
            .subquery()
        )
        repeats = (await session.execute(select(func.count(), func.sum(per_subject.c.n)))).one()
        result.repeat_subjects, result.repeat_subject_cases = int(repeats[0] or 0), int(repeats[1] or 0)
    return result


async def _percentiles(
    session: Any, db: Database, where: list[ColumnElement[bool]], end: Any
) -> dict[str, float | int | None]:
    seconds = seconds_between(db, col(Case.received_at), end).label("v")
    values = select(seconds).where(*where, end.is_not(None)).subquery()
    ranked = select(
        values.c.v,
        func.row_number().over(order_by=values.c.v).label("rank"),
        func.count().over().label("n"),
    ).subquery()
    row = (
        await session.execute(
            select(
                func.max(ranked.c.n),
                func.min(case((ranked.c.rank * 100 >= ranked.c.n * 50, ranked.c.v))),
                func.min(case((ranked.c.rank * 100 >= ranked.c.n * 90, ranked.c.v))),
            )
        )
    ).one()
    n = int(row[0] or 0)
    return {
        "n": n,
        "median_s": round(float(row[1]), 3) if row[1] is not None else None,
        "p90_s": round(float(row[2]), 3) if row[2] is not None else None,
    }
