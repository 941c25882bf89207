"""Manager review on 500 generated cases: the metrics API and the dashboard equal independent SQL
written here (raw SQL, a different way of taking percentiles), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert, text

from responder.domain import OUTCOMES
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.models import Case, CaseTask, Page
from responder.store.sealed import for_case
from tests.harness import API_TOKEN, Service, start_service, stop_service
from tests.web import Browser, create_users

CASES = 500
START = datetime(2026, 10, 1, tzinfo=UTC)
ENDS = {
    "accept": "accepted_at",
    "identify": "identified_at",
    "locate": "located_at",
    "dispatch": "dispatched_at",
    "contact": "contacted_at",
    "resolve": "resolved_at",
}


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    running = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE="1")
    await create_users(db_url)
    await generate(db_url)
    yield running
    await stop_service(running)


async def generate(db_url: str) -> None:
    """500 cases over two months, seeded: open and resolved, every outcome, pages, overdue tasks."""
    rng = random.Random(500)
    db = Database(db_url)
    cases: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    try:
        async with db.engine.begin() as conn:
            integrations = [r[0] for r in await conn.execute(text("SELECT id FROM integration ORDER BY id"))]
            for n in range(CASES):
                received = START + timedelta(seconds=rng.uniform(0, 60 * 86400))
                resolved = rng.random() < 0.8
                accepted = resolved or rng.random() < 0.5

                def later(
                    lo: float, hi: float, chance: float = 1.0, received: datetime = received
                ) -> datetime | None:
                    return (
                        received + timedelta(seconds=rng.uniform(lo, hi)) if rng.random() < chance else None
                    )

                case_id = f"gen{n:05d}"
                cases.append(
                    {
                        "id": case_id,
                        "ref": f"G{n:05d}",
                        "integration_id": rng.choice(integrations),
                        "alert_id": f"gen-{n}",
                        "status": "resolved" if resolved else ("acknowledged" if accepted else "open"),
                        "risk_level": rng.choice(["imminent", "high", "medium", "low"]),
                        "priority": rng.randint(0, 3),
                        "is_live": rng.random() < 0.3,
                        "region": rng.choice(["FR-75", "FR-13", "US-CA", "IN-UP", None]),
                        "language": "fr",
                        "playbook": "imminent-risk",
                        "alert": for_case(case_id, {}),
                        "detected_at": received - timedelta(seconds=5),
                        "received_at": received,
                        "chain_started_at": received,
                        "next_step": 3,
                        "skew_s": 0.0,
                        "next_due_at": None,
                        "declined": [],
                        "accepted_by": rng.choice(["ana", "bruno", "lee"]) if accepted else None,
                        "accepted_at": later(20, 900) if accepted else None,
                        "accepted_via": "sms" if accepted else None,
                        "resolved_at": later(1800, 20000) if resolved else None,
                        "resolved_by": "user:maya" if resolved else None,
                        "outcome": rng.choice(OUTCOMES) if resolved else None,
                        "identified_at": later(60, 1200, 0.7),
                        "located_at": later(300, 2400, 0.6),
                        "dispatched_at": later(600, 3000, 0.4),
                        "contacted_at": later(900, 4000, 0.5),
                        "services_dispatched": rng.random() < 0.4 if resolved else None,
                        "person_collaborated": rng.random() < 0.5 if resolved else None,
                        "quiet_stage": 0,
                    }
                )
                for k in range(rng.randint(0, 3)):
                    sent = later(0.01, 5) if rng.random() < 0.95 else None
                    status = rng.choice(
                        ["delivered", "delivered", "completed", "undelivered", "busy", "failed", "canceled"]
                    )
                    # As the service records them: Twilio's failures failed, our cancel (never sent) not.
                    outcome = {"undelivered": "failed", "busy": "failed", "failed": "failed"}.get(status)
                    if status == "canceled":
                        sent, outcome = None, "cancelled"
                    pages.append(
                        {
                            "id": f"{case_id}p{k}",
                            "case_id": case_id,
                            "person_id": rng.choice(["ines", "ana", "bruno"]),
                            "channel": rng.choice(["sms", "voice"]),
                            "purpose": "page",
                            "step": k,
                            "body": "",
                            "status": status,
                            "outcome": outcome,
                            "created_at": received,
                            "not_before": received,
                            "sent_at": sent,
                            "updated_at": received,
                        }
                    )
                for task in ("triage", "locate"):
                    tasks.append(
                        {
                            "case_id": case_id,
                            "task": task,
                            "title": task,
                            "role": "investigator",
                            "due_at": received + timedelta(minutes=2),
                            "overdue_at": received + timedelta(minutes=3) if rng.random() < 0.2 else None,
                        }
                    )
            await conn.execute(insert(Case), cases)
            await conn.execute(insert(Page), pages)
            await conn.execute(insert(CaseTask), tasks)
    finally:
        await db.close()


def seconds(db: Database, start: str, end: str) -> str:
    if db.is_sqlite:
        return f"(julianday({end}) - julianday({start})) * 86400.0"
    return f"EXTRACT(EPOCH FROM {end} - {start})"


async def independent(
    db_url: str, where: str = "1 = 1", params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The same figures, by hand: counts, and percentiles as ORDER BY ... OFFSET ceil(p n) - 1."""
    params = params or {}
    db = Database(db_url)
    found: dict[str, Any] = {"durations": {}}
    try:
        async with db.engine.connect() as conn:

            async def one(sql: str) -> Any:
                return (await conn.execute(text(sql), params)).scalar()

            found["cases"] = await one(f'SELECT COUNT(*) FROM "case" c WHERE {where}')
            found["resolved"] = await one(
                f"SELECT COUNT(*) FROM \"case\" c WHERE {where} AND c.status = 'resolved'"
            )
            first_page = "(SELECT MIN(p.sent_at) FROM page p WHERE p.case_id = c.id AND p.purpose = 'page')"
            ends = {"first_page": first_page, **{k: f"c.{v}" for k, v in ENDS.items()}}
            for name, end in ends.items():
                value = seconds(db, "c.received_at", end)
                base = f'FROM "case" c WHERE {where} AND {end} IS NOT NULL'
                n = await one(f"SELECT COUNT(*) {base}")
                figures: dict[str, Any] = {"n": n}
                for label, p in (("median_s", 0.5), ("p90_s", 0.9)):
                    if n == 0:
                        figures[label] = None
                        continue
                    offset = math.ceil(p * n) - 1
                    figures[label] = await one(
                        f"SELECT {value} AS v {base} ORDER BY v LIMIT 1 OFFSET {offset}"
                    )
                found["durations"][name] = figures
            rows = await conn.execute(
                text(
                    f'SELECT outcome, COUNT(*) FROM "case" c WHERE {where} AND outcome IS NOT NULL'
                    " GROUP BY outcome"
                ),
                params,
            )
            found["outcomes"] = {r[0]: r[1] for r in rows}
            found["pages_failed"] = await one(
                f'SELECT COUNT(*) FROM page p JOIN "case" c ON c.id = p.case_id WHERE {where}'
                " AND p.purpose = 'page'"
                " AND p.outcome = 'failed'"
            )
            found["deadline_breaches"] = await one(
                f'SELECT COUNT(*) FROM case_task t JOIN "case" c ON c.id = t.case_id WHERE {where}'
                " AND t.overdue_at IS NOT NULL"
            )
    finally:
        await db.close()
    return found


async def metrics(service: Service, **query: str) -> dict[str, Any]:
    async with service.http.get(
        f"{service.url}/v1/metrics", params=query, headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as answer:
        assert answer.status == 200, await answer.text()
        data: dict[str, Any] = await answer.json()
        return data


def assert_same(api: dict[str, Any], hand: dict[str, Any]) -> None:
    assert api["cases"] == hand["cases"] and api["resolved"] == hand["resolved"]
    assert api["outcomes"] == hand["outcomes"]
    assert api["pages_failed"] == hand["pages_failed"]
    assert api["deadline_breaches"] == hand["deadline_breaches"]
    for name, figures in hand["durations"].items():
        got = api["durations"][name]
        assert got["n"] == figures["n"], name
        for label in ("median_s", "p90_s"):
            if figures[label] is None:
                assert got[label] is None
            else:
                assert got[label] == pytest.approx(float(figures[label]), abs=0.002), (name, label)


async def test_metrics_equal_independent_sql_on_500_cases(db_url: str, service: Service) -> None:
    hand = await independent(db_url)
    assert hand["cases"] == CASES
    assert_same(await metrics(service), hand)
    # Filtered: one month, one region.
    where = "c.received_at >= :start AND c.received_at < :end AND c.region = 'FR-75'"
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    hand = await independent(db_url, where, {"start": start, "end": end})
    assert_same(await metrics(service, **{"from": "2026-10-01", "to": "2026-11-01", "region": "FR-75"}), hand)


async def test_the_dashboard_shows_the_same_figures(db_url: str, service: Service) -> None:
    hand = await independent(db_url)
    maya = Browser(service.url)
    try:
        await maya.login("maya")
        status, page = await maya.get("/dashboard")
        assert status == 200
        assert re.search(rf'id="m-cases">{hand["cases"]}<', page)
        lives = sum(
            n
            for o, n in hand["outcomes"].items()
            if o
            in (
                "located_safe",
                "deescalated",
                "transported_voluntary",
                "transported_involuntary",
                "medical_intervention",
            )
        )
        assert re.search(rf'id="m-lives">{lives}<', page)
        for name, figures in hand["durations"].items():
            row = re.search(rf'<tr id="d-{name}">.*?</tr>', page, re.S)
            assert row, name
            shown = re.findall(r'data-s="([^"]+)"', row.group(0))
            assert float(shown[0]) == pytest.approx(float(figures["median_s"]), abs=0.002)
            assert float(shown[1]) == pytest.approx(float(figures["p90_s"]), abs=0.002)
        assert "<svg" in page  # the outcome chart, drawn on the server
        status, csv_text = await maya.get("/dashboard.csv?from=2026-10-01&to=2026-11-01")
        assert status == 200
        hand_month = await independent(
            db_url,
            "c.received_at >= :start AND c.received_at < :end",
            {"start": datetime(2026, 10, 1, tzinfo=UTC), "end": datetime(2026, 11, 1, tzinfo=UTC)},
        )
        assert len(csv_text.strip().splitlines()) == hand_month["cases"] + 1
        status, filtered = await maya.get("/dashboard?outcome=false_positive")
        closed = re.search(r'<table id="closed-cases">.*?</table>', filtered, re.S)
        assert status == 200 and closed
        assert closed.group(0).count("<a href=") == min(100, hand["outcomes"]["false_positive"])
        assert "located safe" not in closed.group(0)
        status, report = await maya.get("/reports/monthly?month=2026-10")
        assert status == 200 and re.search(rf'id="m-cases">{hand_month["cases"]}<', report)
    finally:
        await maya.close()


async def test_review_api_pages_through_cases(service: Service) -> None:
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        async with service.http.get(
            f"{service.url}/v1/review/cases",
            params={"limit": "200", "offset": str(offset)},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as answer:
            assert answer.status == 200
            body = await answer.json()
        assert body["total"] == CASES
        seen += [c["id"] for c in body["cases"]]
        offset = body["next_offset"]
    assert len(seen) == len(set(seen)) == CASES
    async with service.http.get(
        f"{service.url}/v1/review/cases",
        params={"limit": "0"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as answer:
        assert answer.status == 422 and (await answer.json())["detail"][0]["field"] == "limit"
