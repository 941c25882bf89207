"""Priority under load: when many steps are due at once (here after a restart), imminent and live
cases are paged before lower-risk ones."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import aiohttp
from sqlalchemy import select

from responder.clock import ManualClock, utcnow
from responder.engine.playbook import load_playbooks
from responder.intake.schema import parse_alert
from responder.intake.service import Intake
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.models import Integration
from tests.harness import ROOT, new_alert_id, sample, start_service, stop_service

MEDIUM, IMMINENT = 12, 4


async def test_imminent_and_live_cases_are_paged_first(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    first = await start_service(db_url, sim, http)  # migrates and writes the roster
    await stop_service(first)
    db = Database(db_url)
    async with db.sessions() as session:
        ids = {i.name: int(i.id or 0) for i in (await session.execute(select(Integration))).scalars()}
    # Cases taken in 30 s ago while the service was down: their first steps are overdue (at full
    # speed, as the service runs here, nothing else is due yet).
    intake = Intake(
        db, load_playbooks(ROOT / "playbooks"), ids, ManualClock(utcnow() - timedelta(seconds=30))
    )
    risk_of = {}
    for name, count in (("medium-comment-us.json", MEDIUM), ("imminent-live-fr.json", IMMINENT)):
        for _ in range(count):
            raw = sample(name, alert_id=new_alert_id())
            result = await intake.receive("forum-example", new_alert_id(), parse_alert(json.dumps(raw)))
            risk_of[result.case_id] = raw["risk"]["level"]
    await db.close()

    second = await start_service(db_url, sim, http, migrate=False, RESPONDER_TIME_SCALE="1")
    try:
        ines = sim.phone("+33639980001")  # the duty investigator is in the first tier of both playbooks
        for _ in range(MEDIUM + IMMINENT):
            await ines.expect_sms(contains="ACK")
        refs = {}
        for case_id, risk in risk_of.items():
            refs[(await second.case(case_id))["ref"]] = risk
    finally:
        await stop_service(second)
    order = [
        refs[match.group(1)]
        for request in sim.requests
        if request.path.endswith("/Messages.json")
        and request.form.get("To") == "+33639980001"
        and (match := re.search(r"ACK ([A-Z0-9]{5})", request.form.get("Body", "")))
    ]
    assert order[:IMMINENT] == ["imminent"] * IMMINENT, order
