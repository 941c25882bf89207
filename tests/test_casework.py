"""After the accept: investigation tasks with due times, overdue notices, and re-escalation of a
case with no activity (PRODUCT.md §3), through the real service on a ManualClock: the test fast-forwards
it, and every notice is asserted at its exact playbook time."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from responder.simulator import PhoneSimulator
from tests.harness import (
    API_TOKEN,
    ROOT,
    Service,
    at,
    due,
    events,
    manual_clock,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)

QUIET = timedelta(minutes=15)  # reescalate.quiet_for in playbooks/imminent-risk.yaml
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ACTIVITY = ("case_accepted", "note", "task_done")


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    running = await start_service(db_url, sim, http, clock=manual_clock())
    yield running
    await stop_service(running)


async def accepted_case(service: Service) -> str:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    ana = service.phone_of("ana")
    await ana.expect_sms(contains="ACK")
    await ana.send_sms("ACK")
    case_id: str = body["case_id"]
    return case_id


async def test_tasks_come_from_the_playbook_with_due_times(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    case = await service.case(body["case_id"])
    received = datetime.fromisoformat(case["received_at"])
    due = {t["id"]: (datetime.fromisoformat(t["due_at"]) - received).total_seconds() for t in case["tasks"]}
    assert due == (
        {
            "triage": 120,
            "identify": 600,
            "disclosure-request": 600,
            "locate": 900,
            "jurisdiction": 1200,
            "dispatch": 1800,
            "contact-confirmed": 2700,
            "follow-up": 86400,
        }
    )


async def test_an_overdue_task_tells_the_holder_and_the_team_lead(service: Service) -> None:
    case_id = await accepted_case(service)
    await service.advance(minutes=2)
    await service.phone_of("ana").expect_sms(contains="tâche en retard : Triage the alert")
    await service.phone_of("tom").expect_sms(contains="task overdue: Triage the alert")
    case = await service.case(case_id)
    triage = next(t for t in case["tasks"] if t["id"] == "triage")
    assert triage["overdue"] is True and triage["done_at"] is None
    assert [(e["detail"]["task"], at(e["at"])) for e in events(case, "task_overdue")] == [
        ("triage", due(case, 2))
    ]


async def test_ticking_tasks_and_notes(service: Service) -> None:
    case_id = await accepted_case(service)
    url = f"{service.url}/v1/cases/{case_id}"
    async with service.http.post(f"{url}/tasks/locate/done", headers=AUTH) as response:
        assert response.status == 200
        locate = next(t for t in (await response.json())["tasks"] if t["id"] == "locate")
        assert locate["done_at"] and locate["done_by"] == "setup-token"
    async with service.http.post(f"{url}/tasks/locate/done", headers=AUTH) as response:
        assert response.status == 409
    async with service.http.post(f"{url}/tasks/teleport/done", headers=AUTH) as response:
        assert response.status == 404 and (await response.json())["detail"][0]["field"] == "task"
    async with service.http.post(
        f"{url}/notes", json={"text": "Called the platform"}, headers=AUTH
    ) as response:
        assert response.status == 201
        notes = [e for e in (await response.json())["timeline"] if e["type"] == "note"]
        assert [(e["detail"]["text"], e["actor"]) for e in notes] == [("Called the platform", "setup-token")]
    async with service.http.post(f"{url}/notes", json={"text": " "}, headers=AUTH) as response:
        assert response.status == 422


def activity(case: dict[str, Any]) -> list[datetime]:
    """When the case saw activity (the accept, a note, a task ticked)."""
    return [at(e["at"]) for e in case["timeline"] if e["type"] in ACTIVITY]


async def test_a_quiet_case_nudges_the_holder_then_the_team_lead(service: Service) -> None:
    case_id = await accepted_case(service)
    ana, tom = service.phone_of("ana"), service.phone_of("tom")
    await service.advance(minutes=15)
    await ana.expect_sms(contains="aucune activité")  # after 15m of silence
    await service.advance(minutes=15)
    await tom.expect_sms(contains="no activity")  # after as long again
    case = await service.case(case_id)
    [accepted] = activity(case)
    quiet = events(case, "case_quiet")
    assert [(e["detail"]["stage"], at(e["at"])) for e in quiet] == [
        (1, accepted + QUIET),
        (2, accepted + 2 * QUIET),
    ]


async def test_activity_resets_the_quiet_clock(service: Service) -> None:
    case_id = await accepted_case(service)
    ana = service.phone_of("ana")
    # A note after each of the first overdue-task notices (+2m, +10m, +15m: less than the quiet time
    # apart), then silence until the nudge.
    for minutes, task in ((2, "Triage the alert"), (8, "Identify the person"), (5, "Locate the person")):
        await service.advance(minutes=minutes)
        await ana.expect_sms(contains=f"tâche en retard : {task}")
        async with service.http.post(
            f"{service.url}/v1/cases/{case_id}/notes", json={"text": "still working"}, headers=AUTH
        ) as response:
            assert response.status == 201
    await service.advance(minutes=15)
    await ana.expect_sms(contains="aucune activité")
    case = await service.case(case_id)
    # The clock starts again at every note: the nudge comes a whole quiet time after the last one
    # (+15m), not 15m after the accept, nor after the first notes.
    assert activity(case)[1:] == [due(case, 2), due(case, 10), due(case, 15)]
    assert [(e["detail"]["stage"], at(e["at"])) for e in events(case, "case_quiet")] == [
        (1, due(case, 15) + QUIET)
    ]


async def test_an_overdue_task_can_call_as_well(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    path = playbooks / "imminent-risk.yaml"
    path.write_text(
        path.read_text().replace(
            "{id: triage, title: Triage the alert, due: 2m}",
            "{id: triage, title: Triage the alert, due: 2m, overdue_notify: [team_lead], overdue_page: true}",
        )
    )
    running = await start_service(
        db_url, sim, http, clock=manual_clock(), RESPONDER_PLAYBOOKS_DIR=str(playbooks)
    )
    try:
        await accepted_case(running)
        await running.advance(minutes=2)
        tom = running.phone_of("tom")
        await tom.expect_sms(contains="task overdue: Triage the alert")
        call = await tom.expect_call()
        await call.expect_status("completed")
        assert any(
            "task overdue: Triage the alert" in said for said in call.said
        )  # read out, nothing to press
    finally:
        await stop_service(running)


async def test_a_task_not_needed_once_another_is_done_is_never_overdue(service: Service) -> None:
    case_id = await accepted_case(service)
    async with service.http.post(
        f"{service.url}/v1/cases/{case_id}/tasks/locate/done", headers=AUTH
    ) as answer:
        assert answer.status == 200  # located: the emergency disclosure request is no longer needed
    ana = service.phone_of("ana")
    await service.advance(minutes=10)
    # Due at +10m like the disclosure request: the same engine pass, which wrote the notices of every
    # task it found overdue together with their task_overdue events.
    await ana.expect_sms(contains="Identify the person")
    case = await service.case(case_id)
    overdue = {e["detail"]["task"]: at(e["at"]) for e in events(case, "task_overdue")}
    assert overdue == {"triage": due(case, 2), "identify": due(case, 10)}  # never the disclosure request
    assert not [m for m in ana.messages if "disclosure" in m.body.casefold()]
