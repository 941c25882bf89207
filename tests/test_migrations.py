"""Migrations of rows that exist: a database from before a migration, upgraded, reads as it should."""

from __future__ import annotations

import aiohttp
from sqlalchemy import text

from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.migrate import downgrade, upgrade
from tests.harness import new_alert_id, sample, start_service, stop_service

SID = "SM" + "0" * 32

# 0009 (one page lifecycle): what a page row held before it (Twilio's status mixed into ours, the
# outcome beside it) → the state it is in after, and Twilio's raw status kept in its own column.
# (old status, has a Twilio sid, old outcome) → (status, twilio_status)
PAGE_LIFECYCLE = [
    (("pending", False, None), ("pending", None)),
    (("queued", True, None), ("sent", "queued")),
    (("sent", True, None), ("sent", "sent")),
    (("ringing", True, None), ("sent", "ringing")),
    (("delivered", True, None), ("delivered", "delivered")),
    (("completed", True, None), ("delivered", "completed")),
    (("failed", True, None), ("failed", "failed")),
    (("undelivered", True, None), ("failed", "undelivered")),
    (("no-answer", True, None), ("failed", "no-answer")),
    (("busy", True, "failed"), ("failed", "busy")),
    (("canceled", False, None), ("cancelled", None)),
    (("canceled", True, None), ("failed", "canceled")),
    (("delivered", True, "cancelled"), ("cancelled", "delivered")),
    (("in-progress", True, None), ("delivered", "in-progress")),
]


async def test_0009_maps_every_old_page_status(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    # Real cases and pages, made by the service, then the schema taken back to before 0009.
    service = await start_service(db_url, sim, http)
    cases = []
    for _ in range((len(PAGE_LIFECYCLE) + 1) // 2):
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        cases.append(body["case_id"])
    pages = [p["id"] for case_id in cases for p in (await service.case(case_id))["pages"]]
    assert len(pages) >= len(PAGE_LIFECYCLE)
    await stop_service(service)
    db = Database(db_url)
    await downgrade(db, "0008")
    async with db.engine.begin() as conn:
        for page_id, ((old, has_sid, outcome), _) in zip(pages, PAGE_LIFECYCLE, strict=False):
            await conn.execute(
                text("UPDATE page SET status = :s, twilio_sid = :sid, outcome = :o WHERE id = :id"),
                {"s": old, "sid": SID if has_sid else None, "o": outcome, "id": page_id},
            )
    await upgrade(db)
    # Read as the database holds it: a service started now would go on sending the pending page.
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, status, twilio_status FROM page"))
        seen = {page_id: (status, twilio_status) for page_id, status, twilio_status in rows}
    await db.close()
    found = [(before, seen[page_id]) for page_id, (before, _) in zip(pages, PAGE_LIFECYCLE, strict=False)]
    assert found == PAGE_LIFECYCLE
