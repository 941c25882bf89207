"""Subject requests (`responder subject export|erase`, responder/subjects.py): the person's cases are
found by their pseudonym; the export gives the data-protection officer everything held, opened, in a
file for them alone; the erasure redacts every resolved case now and leaves an open one, named; both
are audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from responder.store.db import Database
from responder.store.models import AuditEvent
from tests.harness import API_TOKEN, Service, new_alert_id, responder_command, sample
from tests.test_privacy_at_rest import MARKERS, marked_alert

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
AUDITS: Any = AuditEvent.__table__  # type: ignore[attr-defined]
WHO = "dpo:ticket-4411"


async def subject(service: Service, *args: str) -> tuple[int, str, str]:
    return await responder_command(
        service.settings.env.database_url,
        service.url,
        service.sim.url,
        "subject",
        *args,
        "--integration",
        "social-example",
        "--account-id",
        MARKERS["account_id"],
        "--requested-by",
        WHO,
    )


async def audit_of(db_url: str, action: str) -> list[tuple[str | None, dict[str, Any]]]:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                select(AUDITS.c.case_id, AUDITS.c.detail).where(
                    AUDITS.c.action == action, AUDITS.c.actor == WHO
                )
            )
            return [(r[0], r[1]) for r in rows]
    finally:
        await db.close()


async def test_a_subject_is_exported_then_erased_and_each_is_audited(
    db_url: str, service: Service, tmp_path: Path
) -> None:
    status, first = await service.post_alert(marked_alert())
    assert status == 202
    async with service.http.post(
        f"{service.url}/v1/cases/{first['case_id']}/notes", json={"text": MARKERS["note"]}, headers=AUTH
    ) as answer:
        assert answer.status == 201
    status, _ = await service.resolve(
        first["case_id"], {"outcome": "located_safe", "note": MARKERS["outcome_note"]}
    )
    assert status == 200
    status, again = await service.post_alert(marked_alert())  # the same person, still open
    assert status == 202
    status, other = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202

    async with service.http.get(f"{service.url}/v1/metrics", headers=AUTH) as answer:
        figures = await answer.json()
    assert (figures["repeat_subjects"], figures["repeat_subject_cases"]) == (1, 2)  # by pseudonym alone

    out = tmp_path / "export.json"
    code, said, err = await subject(service, "export", "--out", str(out))
    assert code == 0, err
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    exported = json.loads(out.read_text())
    refs = [c["ref"] for c in exported["cases"]]
    assert refs == [(await service.case(c["case_id"]))["ref"] for c in (first, again)]  # not the other
    held = exported["cases"][0]
    assert held["alert"]["subject"]["display_name"] == MARKERS["display_name"]
    assert held["outcome_note"] == MARKERS["outcome_note"]
    assert [w.get("text") for w in held["written_by_staff"] if w["type"] == "note"] == [MARKERS["note"]]
    assert MARKERS["display_name"] not in said + err  # the file holds it, the terminal does not
    exports = await audit_of(db_url, "subject_exported")
    assert sorted(c or "" for c, _ in exports) == sorted(["", first["case_id"], again["case_id"]])

    code, _, err = await subject(service, "export", "--out", str(out))
    assert code == 2 and "exists" in err  # never over an earlier export

    code, said, err = await subject(service, "erase")
    assert code == 1, err  # the open case is left, and named
    assert f"left case {again['case_id']}: open" in said
    erased = (await service.case(first["case_id"]))["retention"]
    assert erased["identity_redacted_at"] and erased["notes_redacted_at"]
    assert (await service.case(first["case_id"]))["outcome_note"] is None
    assert (await service.case(other["case_id"]))["retention"]["identity_redacted_at"] is None
    redacted = await audit_of(db_url, "case_redacted")
    assert [c for c, _ in redacted] == [first["case_id"]]
    assert "case.subject_key" in redacted[0][1]["removed"]
    [(_, request)] = await audit_of(db_url, "subject_erased")
    assert request["erased"] == 1 and request["left_open"] == [again["case_id"]]

    out2 = tmp_path / "after.json"
    code, _, err = await subject(service, "export", "--out", str(out2))
    assert code == 0, err
    assert [c["ref"] for c in json.loads(out2.read_text())["cases"]] == refs[1:]  # the pseudonym is gone


async def test_a_subject_request_names_what_is_wrong(service: Service, tmp_path: Path) -> None:
    code, _, err = await responder_command(
        service.settings.env.database_url,
        service.url,
        service.sim.url,
        "subject",
        "erase",
        "--integration",
        "nowhere",
        "--account-id",
        "x",
        "--requested-by",
        WHO,
    )
    assert code == 2 and "--integration: unknown integration 'nowhere'" in err
