"""One definition of a failed page (paging/failures.py), the same in the timeline, the metrics API, the
dashboard and Prometheus: voicemail is a failure, a page cancelled by an accept is not. The expected
figures come from the simulator's own record of what reached the phones, not from the service."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import aiohttp

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import (
    API_TOKEN,
    Service,
    new_alert_id,
    patient_phones,
    sample,
    start_service,
    stop_service,
)
from tests.web import Browser, create_users

# A playbook minute is 6 s: the voice step of the first tier at +1m, the backup's voice at +30s.
SCALE = "0.1"


async def alert(service: Service) -> dict[str, Any]:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    return await service.case(body["case_id"])


async def metric(service: Service, name: str) -> float:
    async with service.http.get(f"{service.url}/metrics") as answer:
        text = await answer.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def review(service: Service) -> dict[str, Any]:
    async with service.http.get(
        f"{service.url}/v1/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as answer:
        assert answer.status == 200, await answer.text()
        figures: dict[str, Any] = await answer.json()
        return figures


def machine_calls(sim: PhoneSimulator) -> int:
    return len([c for c in sim.calls.values() if (c.answered_by or "").startswith("machine")])


async def test_voicemail_twice_then_an_accept_counts_two_failures_and_no_cancel(
    db_url: str, http: aiohttp.ClientSession
) -> None:
    async with patient_phones() as sim:
        service = await start_service(
            db_url,
            sim,
            http,
            RESPONDER_TIME_SCALE=SCALE,
            # The flood limit holds case B's calls for a long while, so the accept surely cancels them.
            RESPONDER_PHONE_LIMIT="4",
            RESPONDER_PHONE_LIMIT_HOLD_S="300",
        )
        try:
            await run_scenario(service, sim)
        finally:
            await stop_service(service)


async def run_scenario(service: Service, sim: PhoneSimulator) -> None:
    ana, ines = service.phone_of("ana"), service.phone_of("ines")
    bruno, maya = service.phone_of("bruno"), service.phone_of("maya")
    failures_before = await metric(service, "responder_page_failures_total")
    ana.behaviour = ines.behaviour = Behaviour(call="machine")
    # Case A: the SMS step, then both calls reach voicemail; the backup negotiator takes it by key 1.
    a = await alert(service)
    for phone in (ana, ines):
        call = await phone.expect_call(timeout_s=30)
        await call.expect_status("completed", timeout_s=30)
    call = await bruno.expect_call(timeout_s=30)
    await call.expect_prompt()
    await call.press("1")
    assert (await service.case(a["id"]))["accepted_by"]["id"] == "bruno"
    # Case B: its SMS go out (each phone's 4th message); its calls are over the limit and held;
    # Ana accepts before they could go: they are cancelled, never sent.
    b = await alert(service)
    await ana.expect_sms(contains=b["ref"])
    await ines.expect_sms(contains=b["ref"])
    for _ in range(2):
        await maya.expect_sms(contains="flood limit", timeout_s=30)  # the calls are held now
    await ana.send_sms(f"ACK {b['ref']}")
    b = await service.case(b["id"])
    cancelled = [p for p in b["pages"] if p["status"] == "cancelled"]
    assert {(p["person"]["id"], p["channel"]) for p in cancelled} == {("ana", "voice"), ("ines", "voice")}

    # What the phones saw: two machine-answered calls, and nothing for the cancelled pages.
    assert machine_calls(sim) == 2
    spelled_b = ", ".join(b["ref"])
    assert not [c for c in sim.calls.values() if any(spelled_b in said for said in c.said)]
    pages_reached = len([m for m in sim.messages.values() if "ACK" in m.body and "/a/" in m.body])
    pages_reached += len(sim.calls)  # every call here is a page (the notices are SMS)

    figures = await review(service)
    assert figures["pages_failed"] == 2
    assert figures["pages"] == pages_reached
    assert figures["page_failure_rate"] == round(2 / pages_reached, 4)
    assert await metric(service, "responder_page_failures_total") == failures_before + 2
    timeline_failures = [
        e for case_id in (a["id"], b["id"]) for e in (await service.case(case_id))["timeline"]
        if e["type"] == "page_failed"
    ]  # fmt: skip
    assert len(timeline_failures) == 2
    assert {e["detail"]["reason"] for e in timeline_failures} == {"answered by a machine"}
    # The manager's dashboard shows the same figure.
    await create_users(service.settings.env.database_url)
    manager = Browser(service.url)
    try:
        await manager.login("maya")
        status, page = await manager.get("/dashboard")
        csv_status, csv_text = await manager.get("/dashboard.csv")
    finally:
        await manager.close()
    assert status == 200
    shown = re.search(r'id="m-page-failures">([^<]*)<', page)
    assert shown is not None and shown.group(1).strip() == f"{100 * 2 / pages_reached:.1f} %"
    # And the CSV, case by case: A's two voicemails, none for B (its cancelled calls never went out).
    assert csv_status == 200
    rows = {row["ref"]: row for row in csv.DictReader(io.StringIO(csv_text))}
    assert (rows[a["ref"]]["pages_failed"], rows[b["ref"]]["pages_failed"]) == ("2", "0")
    assert int(rows[a["ref"]]["pages"]) + int(rows[b["ref"]]["pages"]) == pages_reached
