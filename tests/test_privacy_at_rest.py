"""The person's data at rest (store/sealed.py): an alert with a marker in every personal field goes the
whole way (pages, an accept, a note, an outcome with its reason); the database, read as raw bytes
(SQLite's file and its WAL) or as the text of every row (PostgreSQL), holds none of the markers in
clear, while the case API still shows them to those allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from responder.api.keys import DB
from responder.store.cases import load_case
from tests.harness import API_TOKEN, FORUM_SECRET, Service, new_alert_id, sample

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
MARKERS = {
    "display_name": "Mkr-Name-Zq81",
    "account_id": "mkracct7741",
    "excerpt": "mkr-excerpt-qx55",
    "content_url": "mkr-content-url-4411",
    "location_value": "mkr-location-9d2f",
    "location_source": "mkr-source-ab71",
    "contact_email": "mkr-contact-3e9a",
    "contact_reference": "MKR-REF-6c10",
    "note": "mkr-note-77fa",
    "outcome_note": "mkr-outcome-51bd",
}


def marked_alert() -> dict[str, Any]:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["subject"] = {
        **alert["subject"],
        "display_name": MARKERS["display_name"],
        "account_id": MARKERS["account_id"],
        "profile_url": f"https://social.example/u/{MARKERS['account_id']}",
    }
    alert["content"] = {
        **alert["content"],
        "excerpt": MARKERS["excerpt"],
        "url": f"https://social.example/live/{MARKERS['content_url']}",
    }
    alert["location_hints"] = [
        {**hint, "value": MARKERS["location_value"], "source": MARKERS["location_source"]}
        for hint in alert["location_hints"]
    ]
    alert["platform_contact"] = {
        **alert["platform_contact"],
        "email": f"{MARKERS['contact_email']}@social.example",
        "reference": MARKERS["contact_reference"],
    }
    return alert


async def stored_text(db_url: str) -> bytes:
    """Everything the database holds, as bytes: SQLite's files as they are on disk, or every row of
    every table of PostgreSQL as text."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split(":///", 1)[1])
        return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))
    url = make_url(db_url)
    conn = await asyncpg.connect(
        user=url.username, host=url.host, port=url.port, database=url.database, password=url.password
    )
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        rows = [await conn.fetch(f'SELECT t::text AS row FROM "{name}" t') for name in tables]
    finally:
        await conn.close()
    return "\n".join(r["row"] for table in rows for r in table).encode()


async def test_no_personal_field_is_stored_in_clear(db_url: str, service: Service) -> None:
    status, body = await service.post_alert(marked_alert())
    assert status == 202, body
    case_id = body["case_id"]
    ana = service.phone_of("ana")
    await ana.expect_sms(contains="ACK")
    await ana.send_sms("ACK")
    async with service.http.post(
        f"{service.url}/v1/cases/{case_id}/notes", json={"text": MARKERS["note"]}, headers=AUTH
    ) as answer:
        assert answer.status in (200, 201), await answer.text()
    status, _ = await service.resolve(case_id, {"outcome": "located_safe", "note": MARKERS["outcome_note"]})
    assert status == 200
    # Those allowed still read it: the API the note and the outcome's reason, the service's own
    # reading of the case (its page) the alert.
    shown = str(await service.case(case_id))
    assert MARKERS["note"] in shown and MARKERS["outcome_note"] in shown
    stored, *_ = await load_case(service.app[DB], case_id)
    assert all(marker in str(stored.alert) for name, marker in MARKERS.items() if "note" not in name)
    raw = await stored_text(db_url)
    assert b"sealed:" in raw  # the case is there, sealed
    found = [name for name, marker in MARKERS.items() if marker.encode() in raw]
    assert found == [], f"in clear in the database: {found}"
    if db_url.startswith("sqlite"):  # the file and its WAL: for their owner only
        path = Path(db_url.split(":///", 1)[1])
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in path.parent.glob(path.name + "*")}
        assert path.name + "-wal" in modes and set(modes.values()) == {"0o600"}, modes


async def test_a_persons_earlier_cases_are_found_by_pseudonym_alone(db_url: str, service: Service) -> None:
    """The same account on the same platform links the cases; the same account id on another platform
    is another person. The database holds the pseudonym, never the account id in clear."""
    first = sample("imminent-live-fr.json", alert_id=new_alert_id())
    first["subject"] = {**first["subject"], "account_id": MARKERS["account_id"]}
    status, a = await service.post_alert(first)
    assert status == 202
    again = sample("imminent-live-fr.json", alert_id=new_alert_id())
    again["subject"] = {**again["subject"], "account_id": MARKERS["account_id"]}
    status, b = await service.post_alert(again)
    assert status == 202
    elsewhere = sample("medium-comment-us.json", alert_id=new_alert_id())
    elsewhere["subject"] = {**(elsewhere.get("subject") or {}), "account_id": MARKERS["account_id"]}
    status, c = await service.post_alert(elsewhere, secret=FORUM_SECRET)
    assert status == 202
    later = await service.case(b["case_id"])
    assert [e["id"] for e in later["earlier_cases"]] == [a["case_id"]]
    assert later["earlier_cases"][0]["ref"] == (await service.case(a["case_id"]))["ref"]
    assert (await service.case(a["case_id"]))["earlier_cases"] == []  # earlier ones only
    assert (await service.case(c["case_id"]))["earlier_cases"] == []  # another platform's account
    assert MARKERS["account_id"].encode() not in await stored_text(db_url)
