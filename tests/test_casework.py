"""After the accept: investigation tasks with due times, overdue notices, and re-escalation of a
case with no activity (PRODUCT.md §3), through the real service."""

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
    events,
    new_alert_id,
    sample,
    start_service,
    stop_service,
)

# 1/500 speed: triage (+2m) is due 0.24 s after the alert, re-escalation (15m quiet) 1.8 s after the
# last activity.
SCALE = 0.002
QUIET = timedelta(minutes=15 * SCALE)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ACTIVITY = ("case_accepted", "note", "task_done")


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    running = await start_service(db_url, sim, http, RESPONDER_TIME_SCALE=str(SCALE))
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
    due = {
        t["id"]: (datetime.fromisoformat(t["due_at"]) - received).total_seconds() / SCALE
        for t in case["tasks"]
    }
    assert due == pytest.approx(
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
    await service.phone_of("ana").expect_sms(contains="tâche en retard : Triage the alert")
    await service.phone_of("tom").expect_sms(contains="task overdue: Triage the alert")
    case = await service.case(case_id)
    triage = next(t for t in case["tasks"] if t["id"] == "triage")
    assert triage["overdue"] is True and triage["done_at"] is None


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


def quiet_before(case: dict[str, Any], event: dict[str, Any]) -> timedelta:
    """How long the case had been without activity (accept, note, task ticked) when `event` happened."""
    when = at(event["at"])
    return when - max(at(e["at"]) for e in case["timeline"] if e["type"] in ACTIVITY and at(e["at"]) <= when)


async def test_a_quiet_case_nudges_the_holder_then_the_team_lead(service: Service) -> None:
    case_id = await accepted_case(service)
    ana, tom = service.phone_of("ana"), service.phone_of("tom")
    await ana.expect_sms(contains="aucune activité")  # after 15m (1.8 s) of silence
    await tom.expect_sms(contains="no activity")  # after as long again
    case = await service.case(case_id)
    quiet = events(case, "case_quiet")
    assert [e["detail"]["stage"] for e in quiet][:2] == [1, 2]
    assert quiet_before(case, quiet[0]) >= QUIET and quiet_before(case, quiet[1]) >= 2 * QUIET


async def test_activity_resets_the_quiet_clock(service: Service) -> None:
    case_id = await accepted_case(service)
    ana = service.phone_of("ana")
    # A note after each of the first overdue-task notices (+2m, +10m, +15m: less than the quiet time
    # apart), then silence until the nudge.
    for task in ("Triage the alert", "Identify the person", "Locate the person"):
        await ana.expect_sms(contains=f"tâche en retard : {task}")
        async with service.http.post(
            f"{service.url}/v1/cases/{case_id}/notes", json={"text": "still working"}, headers=AUTH
        ) as response:
            assert response.status == 201
    await ana.expect_sms(contains="aucune activité")
    case = await service.case(case_id)
    nudge = events(case, "case_quiet")[0]
    assert nudge["detail"]["stage"] == 1
    # The nudge waited a whole quiet time after the activity just before it, whichever that was: the
    # clock starts again at every note (a service that kept counting from the accept would nudge
    # within 15m of a note). On a slow machine a note may come after the nudge; that is still true.
    assert quiet_before(case, nudge) >= QUIET


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
        db_url, sim, http, RESPONDER_TIME_SCALE=str(SCALE), RESPONDER_PLAYBOOKS_DIR=str(playbooks)
    )
    try:
        await accepted_case(running)
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
    # Due at +10m like the disclosure request: the same engine pass, which wrote the notices of every
    # task it found overdue together with their task_overdue events.
    await ana.expect_sms(contains="Identify the person")
    case = await service.case(case_id)
    overdue = {e["detail"]["task"]: at(e["at"]) for e in events(case, "task_overdue")}
    located = at(next(e for e in events(case, "task_done") if e["detail"]["task"] == "locate")["at"])
    assert "identify" in overdue
    if "disclosure-request" in overdue:  # a slow machine: +10m came before the tick, and it was needed
        assert overdue["disclosure-request"] < located
    else:  # never reported once located
        assert not [m for m in ana.messages if "disclosure" in m.body.casefold()]
