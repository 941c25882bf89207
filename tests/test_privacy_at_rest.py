"""The person's data at rest (store/sealed.py): an alert with a marker in every personal field goes the
whole way (pages, an accept, a note, an outcome with its reason); the database, read as raw bytes
(SQLite's file and its WAL) or as the text of every row (PostgreSQL), holds none of the markers in
clear, while the case API still shows them to those allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from responder.api.keys import DB
from responder.simulator import Behaviour, PhoneSimulator
from responder.store.cases import load_case
from responder.store.db import Database
from responder.store.migrate import downgrade, upgrade
from tests.harness import (
    API_TOKEN,
    FORUM_SECRET,
    Service,
    events,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)

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


# A page's one-time link (paging/links.py) and its token, as the SMS carries it.
ACCEPT_LINK = re.compile(r"https?://\S+/a/(\S+)")


async def page_bodies(db_url: str) -> list[tuple[str, str]]:
    """Every page row's (purpose, body), the column's raw value as the database holds it."""
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(text("SELECT purpose, body FROM page"))
            return [(purpose, body) for purpose, body in rows]
    finally:
        await db.close()


async def assert_no_link_stored(db_url: str, token: str) -> None:
    bodies = await page_bodies(db_url)
    assert ("page", "") in bodies, bodies  # the pages are there, with no text kept
    assert [b for _, b in bodies if "/a/" in b or token in b] == [], bodies
    assert token.encode() not in await stored_text(db_url)  # nor anywhere else: a table, a WAL


async def accept_by_link(service: Service, case_id: str, link: str) -> None:
    async with service.http.post(link) as used:
        assert used.status == 200, await used.text()
    case = await service.case(case_id)
    assert case["status"] == "acknowledged"
    assert (case["accepted_by"]["id"], case["accepted_via"]) == ("ana", "link")


async def test_a_page_row_keeps_no_accept_link(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """The SMS carries a working one-time link; the database holds neither the link nor its token, so
    a copy of it accepts nothing. (At full speed the case stays in Ana's hands, her link unexpired.)"""
    service = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE="1")
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202, body
        sms = await service.phone_of("ana").expect_sms(contains="ACK")
        link = ACCEPT_LINK.search(sms.body)
        assert link is not None, sms.body
        await assert_no_link_stored(db_url, link.group(1))
        await accept_by_link(service, body["case_id"], link.group(0))
        await service.phone_of("ines").expect_sms(contains="pris par Ana")  # the notices went too
        await assert_no_link_stored(db_url, link.group(1))
    finally:
        await stop_service(service)


async def test_a_page_twilio_refused_is_resent_with_a_working_link(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """Twilio answers Ana's first send with a 500: the page is retried, its text (and link) built again
    for the resend, since the row kept none."""
    service = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE="1")
    try:
        ana = service.phone_of("ana")
        ana.behaviour = Behaviour(api_error=500, api_error_count=1)
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202, body
        await ana.expect_api_errors(1)
        sms = await ana.expect_sms(contains="ACK")
        link = ACCEPT_LINK.search(sms.body)
        assert link is not None, sms.body
        retried = events(await service.case(body["case_id"]), "page_retry")
        assert [(e["detail"]["person"], e["detail"]["channel"]) for e in retried] == [("ana", "sms")]
        await assert_no_link_stored(db_url, link.group(1))
        await accept_by_link(service, body["case_id"], link.group(0))
    finally:
        await stop_service(service)


async def test_0013_blanks_the_text_old_page_rows_kept(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """Page rows written before 0013 kept their SMS text, a live link in it: the migration blanks it.
    Notices keep theirs (news, no link)."""
    service = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE="1")
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202, body
        await service.phone_of("ana").expect_sms(contains="ACK")
        await service.phone_of("ana").send_sms("ACK")
        await service.phone_of("ines").expect_sms(contains="pris par Ana")  # a notice row too
    finally:
        await stop_service(service)
    notices = sorted(body for purpose, body in await page_bodies(db_url) if purpose == "notice")
    assert notices and all(notices), notices
    db = Database(db_url)
    try:
        await downgrade(db, "0012")
        old_text = f"RESPONDER case X: Reply ACK X to accept. {service.url}/a/page.1.signature"
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE page SET body = :old WHERE purpose = 'page'"), {"old": old_text})
        await upgrade(db)
    finally:
        await db.close()
    bodies = await page_bodies(db_url)
    assert {body for purpose, body in bodies if purpose == "page"} == {""}, bodies
    assert sorted(body for purpose, body in bodies if purpose == "notice") == notices
