"""Retention (store/retention.py) on the service's own clock: the person's data goes when its period after
the resolution is over, per outcome, the ciphertext with it; a legal hold keeps a case whole until a
manager lifts it; every figure of the review is the same before and after; each redaction leaves one
audit row that says what went, never what it was."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import JSON, Text, select, type_coerce

from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.models import AuditEvent, Case, CaseEvent
from responder.store.review import Filters
from responder.store.sealed import PREFIX, use_keyring
from tests.harness import (
    API_TOKEN,
    Service,
    manual_clock,
    new_alert_id,
    responder_command,
    sample,
    service_log,
    start_service,
    stop_service,
)
from tests.test_privacy_at_rest import MARKERS, marked_alert, stored_text
from tests.web import Browser, create_users

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CASES: Any = Case.__table__  # type: ignore[attr-defined]
EVENTS: Any = CaseEvent.__table__  # type: ignore[attr-defined]
AUDITS: Any = AuditEvent.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    """On a clock the test moves, housekeeping's beat every half second of real time."""
    running = await start_service(db_url, sim, http, clock=manual_clock(), RESPONDER_SWEEP_INTERVAL_S="0.5")
    await create_users(db_url)
    yield running
    await stop_service(running)


async def worked_case(service: Service, outcome: str, marked: bool = False) -> str:
    """An alert accepted by Ana, with a note and an outcome with its reason."""
    alert = marked_alert() if marked else sample("imminent-live-fr.json", alert_id=new_alert_id())
    status, body = await service.post_alert(alert)
    assert status == 202, body
    case_id: str = body["case_id"]
    ana = service.phone_of("ana")
    await ana.expect_sms(contains=(await service.case(case_id))["ref"])
    await ana.send_sms("ACK")
    text = MARKERS["note"] if marked else "called the platform"
    async with service.http.post(
        f"{service.url}/v1/cases/{case_id}/notes", json={"text": text}, headers=AUTH
    ) as r:
        assert r.status == 201, await r.text()
    reason = MARKERS["outcome_note"] if marked else "checked"
    status, answer = await service.resolve(case_id, {"outcome": outcome, "note": reason})
    assert status == 200, answer
    return case_id


async def old_case(service: Service, case_id: str) -> dict[str, Any]:
    """A case resolved long ago, read as a lead does: with the reason the audit keeps."""
    headers = {**AUTH, "X-Access-Reason": "retention review"}
    async with service.http.get(f"{service.url}/v1/cases/{case_id}", headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        found: dict[str, Any] = await answer.json()
        return found


async def sealed_values(db_url: str, case_id: str) -> list[str]:
    """The case's ciphertexts as stored: its alert, its outcome's reason, the texts on its timeline."""
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            alert, note = (
                await conn.execute(
                    select(
                        type_coerce(CASES.c.alert, Text()), type_coerce(CASES.c.outcome_note, Text())
                    ).where(CASES.c.id == case_id)
                )
            ).one()
            rows = await conn.execute(
                select(type_coerce(EVENTS.c.detail, JSON())).where(EVENTS.c.case_id == case_id)
            )
            details: list[dict[str, Any]] = [d for d in rows.scalars() if isinstance(d, dict)]
            texts = [v for d in details for v in d.values() if isinstance(v, str) and v.startswith(PREFIX)]
    finally:
        await db.close()
    return [v for v in (alert, note, *texts) if v is not None and v.startswith(PREFIX)]


async def redactions(db_url: str) -> dict[str, list[dict[str, Any]]]:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(AUDITS.c.case_id, AUDITS.c.detail)
                    .where(AUDITS.c.action == "case_redacted")
                    .order_by(AUDITS.c.id)
                )
            ).all()
    finally:
        await db.close()
    found: dict[str, list[dict[str, Any]]] = {}
    for case_id, detail in rows:
        found.setdefault(case_id, []).append(detail)
    return found


async def figures(service: Service, month: str) -> dict[str, Any]:
    """Every figure the review gives: the metrics API, the dashboard's and the monthly report's figures,
    and the CSV (a manager's fresh login: weeks pass between two readings)."""
    async with service.http.get(f"{service.url}/v1/metrics", headers=AUTH) as answer:
        assert answer.status == 200
        metrics = await answer.json()
    maya = Browser(service.url)
    try:
        status, _ = await maya.login("maya")
        assert status == 200
        shown = {}
        for path in ("/dashboard", f"/reports/monthly?month={month}"):
            status, page = await maya.get(path)
            assert status == 200, path
            shown[path.split("?")[0]] = re.findall(r'id="(m-[a-z-]+)">([^<]*)<', page)
        status, csv_text = await maya.get("/dashboard.csv")
        assert status == 200
    finally:
        await maya.close()
    return {"metrics": metrics, "pages": shown, "csv": csv_text}


async def backup_bytes(db_url: str, service: Service, path: Path) -> bytes:
    """A backup's raw bytes (`responder backup` on SQLite; PostgreSQL's is pg_dump, not run here)."""
    if not db_url.startswith("sqlite"):
        return b""
    code, _, err = await responder_command(db_url, service.url, service.sim.url, "backup", str(path))
    assert code == 0, err
    return await asyncio.to_thread(path.read_bytes)


async def test_retention_redacts_by_outcome_holds_what_is_held_and_keeps_every_figure(
    db_url: str, service: Service, tmp_path: Path
) -> None:
    assert service.clock is not None
    month = service.clock.now().strftime("%Y-%m")
    marked = await worked_case(service, "located_safe", marked=True)  # identity 30 days, notes 90
    false_alarm = await worked_case(service, "false_positive")  # both 7 days
    held = await worked_case(service, "located_safe")
    async with service.http.post(
        f"{service.url}/v1/cases/{held}/hold", json={"reason": "coroner's request 2026/118"}, headers=AUTH
    ) as answer:
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["retention"]["legal_hold"]["reason"] == "coroner's request 2026/118"
    before = await figures(service, month)
    copy = await backup_bytes(db_url, service, tmp_path / "before.db")
    assert [name for name, marker in MARKERS.items() if marker.encode() in copy] == []
    ciphertexts = {case_id: await sealed_values(db_url, case_id) for case_id in (marked, false_alarm, held)}
    # Each: its alert, its outcome's reason, and on the timeline the note and the reason given.
    assert all(len(values) == 4 for values in ciphertexts.values()), ciphertexts
    retention = (await service.case(marked))["retention"]
    assert (
        retention["identity_until"] < retention["notes_until"] and retention["identity_redacted_at"] is None
    )

    with service_log() as log:
        await service.advance(minutes=8 * 24 * 60)  # a false positive's week is over
        await log.expect("case_redacted")
    assert list(await redactions(db_url)) == [false_alarm]
    gone = await old_case(service, false_alarm)
    assert gone["retention"]["identity_redacted_at"] and gone["retention"]["notes_redacted_at"]
    assert gone["outcome_note"] is None and gone["outcome"] == "false_positive"
    assert next(e for e in gone["timeline"] if e["type"] == "note")["detail"].get("text") is None
    assert (await old_case(service, marked))["retention"]["identity_redacted_at"] is None

    with service_log() as log:
        await service.advance(minutes=23 * 24 * 60)  # 31 days: the identity of a case found safe goes
        await log.expect("case_redacted")
    case = await old_case(service, marked)
    assert case["retention"]["identity_redacted_at"] and case["retention"]["notes_redacted_at"] is None
    assert case["outcome_note"] == MARKERS["outcome_note"]  # what staff wrote stays 90 days
    shown = str(case)
    assert not [name for name, marker in MARKERS.items() if "note" not in name and marker in shown]
    assert (await old_case(service, held))["retention"]["identity_redacted_at"] is None  # on hold

    async with service.http.delete(
        f"{service.url}/v1/cases/{held}/hold", json={"reason": "inquest closed"}, headers=AUTH
    ) as answer:
        assert answer.status == 200, await answer.text()
    with service_log() as log:
        await service.advance(minutes=60 * 24 * 60)  # 91 days: the notes go too, and the released case
        await log.expect("case_redacted")
        while len([e for e in log.entries if e.get("event") == "case_redacted"]) < 2:
            await log.expect("case_redacted", after=len(log.entries))

    done = await redactions(db_url)
    assert {case_id: [d["parts"] for d in rows] for case_id, rows in done.items()} == {
        false_alarm: [["identity", "notes"]],
        marked: [["identity"], ["notes"]],
        held: [["identity", "notes"]],
    }
    assert not any(marker in str(done) for marker in MARKERS.values())  # what went, never what it was
    raw = await stored_text(db_url)
    assert [name for name, marker in MARKERS.items() if marker.encode() in raw] == []
    left = [case_id for case_id, values in ciphertexts.items() for v in values if v.encode() in raw]
    assert left == [], "ciphertext of redacted fields still stored"
    copy = await backup_bytes(db_url, service, tmp_path / "after.db")
    assert not [v for values in ciphertexts.values() for v in values if v.encode() in copy]
    after = await figures(service, month)
    assert after["metrics"] == before["metrics"]
    assert after["csv"] == before["csv"]
    assert after["pages"] == before["pages"]


async def test_a_hold_is_for_managers_with_a_reason(service: Service) -> None:
    case_id = await worked_case(service, "deescalated")
    async with service.http.post(f"{service.url}/v1/cases/{case_id}/hold", json={}, headers=AUTH) as answer:
        assert answer.status == 422
        assert (await answer.json())["detail"][0]["field"] == "reason"
    maya = Browser(service.url)
    ana = Browser(service.url)
    try:
        for browser, name in ((maya, "maya"), (ana, "ana")):
            status, _ = await browser.login(name)
            assert status == 200
        status, page = await ana.get(f"/cases/{case_id}")
        assert status == 200 and 'id="hold-form"' not in page
        status, _ = await ana.post(f"/cases/{case_id}/hold", {"reason": "mine"}, page)
        assert status == 403
        status, page = await maya.get(f"/cases/{case_id}")
        assert status == 200 and 'id="hold-form"' in page
        status, page = await maya.post(f"/cases/{case_id}/hold", {"reason": "police request 77"}, page)
        assert status == 200 and "On legal hold" in page and "police request 77" in page
        status, page = await maya.post(f"/cases/{case_id}/hold", {"reason": "again"}, page)
        assert status == 409  # already held: lift it first
    finally:
        await maya.close()
        await ana.close()
    audit = [
        (e["action"], e["actor"])
        for e in await audit_rows(service.settings.env.database_url, case_id)
        if e["action"].startswith(("legal_hold", "case_action_refused"))
    ]
    assert audit == [("case_action_refused", "user:ana"), ("legal_hold_set", "user:maya")]


async def audit_rows(db_url: str, case_id: str) -> list[dict[str, Any]]:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                select(AUDITS.c.action, AUDITS.c.actor, AUDITS.c.detail)
                .where(AUDITS.c.case_id == case_id)
                .order_by(AUDITS.c.id)
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await db.close()


async def test_the_review_and_the_engine_never_open_the_persons_data(db_url: str, service: Service) -> None:
    """With no data key at all, every figure, list and export of the review still comes out, and a case
    is accepted."""
    from responder.api.keys import ROSTER
    from responder.engine.acceptance import accept
    from responder.review.metrics import page_counts, review
    from responder.store.review import cases_with_platform, latest_resolved, page_of_cases, unresolved_cases

    await worked_case(service, "located_safe", marked=True)
    status, waiting = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    db = Database(db_url)
    keyring = service.settings.keyring
    use_keyring(None)
    try:
        assert (await review(db, Filters())).cases == 2
        assert len(await cases_with_platform(db, Filters())) == 2
        assert len(await latest_resolved(db, Filters())) == 1
        assert len(await unresolved_cases(db)) == 1
        assert (await page_of_cases(db, Filters(), 10, 0))[0] == 2
        assert await page_counts(db, Filters())
        # Nor does the engine: an accept loads the case without its sealed columns.
        roster, now = service.app[ROSTER], datetime.now(UTC)
        assert (await accept(db, roster, waiting["case_id"], "ana", "sms", now)).won
    finally:
        use_keyring(keyring)
        await db.close()


async def test_two_replicas_purging_at_once_redact_and_audit_a_case_once(
    db_url: str, service: Service
) -> None:
    """Every replica runs housekeeping: two that find the same case due at the same moment redact it once,
    with one audit row."""
    from datetime import timedelta

    from responder.store.retention import Rules, due_cases, redact

    case_id = await worked_case(service, "false_positive")
    assert service.clock is not None
    later = service.clock.now() + timedelta(days=8)
    rules = service.settings.config.retention.rules()
    assert isinstance(rules, Rules)
    first, second = Database(db_url), Database(db_url)
    try:
        found = [await due_cases(db, rules, later) for db in (first, second)]
        assert [[d.case_id for d in f] for f in found] == [[case_id], [case_id]]
        done = await asyncio.gather(
            *(redact(db, f, later, "retention", "test") for db, f in zip((first, second), found, strict=True))
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(len(d) for d in done) == [0, 1]
    assert len((await redactions(db_url))[case_id]) == 1
