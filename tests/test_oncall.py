"""On-call through the real service and the CLI: overrides through the API (audited) change who is
paged, schedule files reload without a restart, a region with nobody falls back to the default team,
and `oncall who`, `oncall gaps` and the iCal feed agree on a generated month."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from icalendar import Calendar

from responder.simulator import Behaviour, PhoneSimulator
from tests.harness import (
    API_TOKEN,
    ROOT,
    Service,
    ServiceLog,
    environment,
    events,
    new_alert_id,
    sample,
    service_log,
    start_service,
    stop_service,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PARIS = ROOT / "config" / "schedules" / "negotiators-paris.yaml"


@pytest.fixture
def schedules(tmp_path: Path) -> Path:
    directory = tmp_path / "schedules"
    shutil.copytree(ROOT / "config" / "schedules", directory)
    return directory


@pytest.fixture
def log() -> Iterator[ServiceLog]:
    with service_log() as noted:
        yield noted


@pytest.fixture
async def service(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, schedules: Path
) -> AsyncIterator[Service]:
    running = await start_service(
        db_url, sim, http, RESPONDER_SCHEDULES_DIR=str(schedules), RESPONDER_SWEEP_INTERVAL_S="0.2"
    )
    yield running
    await stop_service(running)


async def get(service: Service, path: str, **params: str) -> tuple[int, Any]:
    async with service.http.get(f"{service.url}{path}", params=params, headers=AUTH) as answer:
        return answer.status, await answer.json()


async def post_override(service: Service, body: Any, schedule: str = "negotiators-paris") -> tuple[int, Any]:
    url = f"{service.url}/v1/schedules/{schedule}/overrides"
    async with service.http.post(url, json=body, headers=AUTH) as answer:
        return answer.status, await answer.json()


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def paged_at_step_0(service: Service) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post a Paris alert; return the case and its step-0 `step_fired` once Ines has her SMS."""
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    case = await service.case(body["case_id"])
    await service.phone_of("ines").expect_sms(contains=case["ref"])  # the investigator, always paged
    case = await service.case(body["case_id"])
    return case, next(e for e in events(case, "step_fired") if e["detail"]["step"] == 0)


async def test_an_override_pages_the_replacement_from_the_moment_it_starts(service: Service) -> None:
    start = datetime.now(UTC) + timedelta(seconds=1.5)
    status, made = await post_override(
        service,
        {
            "person": "bruno",
            "start": iso(start),
            "end": iso(start + timedelta(hours=2)),
            "reason": "Ana ill",
            "by": "maya",
        },
    )
    assert status == 201, made
    for moment, person in ((start - timedelta(seconds=1), "ana"), (start, "bruno")):
        _, who = await get(service, "/v1/oncall", role="negotiator", region="FR-75", at=iso(moment))
        assert who["on_call"][0]["person"] == person, (moment, who)
    # A step pages whoever is on call when it fires: before the window Ana (the Paris primary), unless
    # the machine was so slow that the window had begun.
    case, fired = await paged_at_step_0(service)
    expected = "ana" if datetime.fromisoformat(fired["at"]) < start else "bruno"
    assert fired["detail"]["people"] == ["ines", expected]
    await service.phone_of(expected).expect_sms(contains=case["ref"])
    # In the window: the same alert pages Bruno, and not Ana (the step fired with its page rows).
    await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))  # the clock, no event
    case, fired = await paged_at_step_0(service)
    assert fired["detail"]["people"] == ["ines", "bruno"]
    await service.phone_of("bruno").expect_sms(contains=case["ref"])
    assert "ana" not in [p["person"]["id"] for p in case["pages"]]

    status, who = await get(service, "/v1/oncall", role="negotiator", region="FR-75")
    assert status == 200
    assert who["on_call"][0] == {
        "person": "bruno",
        "name": "Bruno Negotiator",
        "layer": "primary",
        "schedule": "negotiators-paris",
        "region": "FR-75",
        "override": True,
    }
    status, schedule = await get(service, "/v1/schedules/negotiators-paris")
    assert status == 200
    added = [e for e in schedule["timeline"] if e["type"] == "override_added"]
    assert len(added) == 1 and added[0]["actor"] == "setup-token:maya"
    assert added[0]["detail"]["override"]["reason"] == "Ana ill"
    # Cancelled: Ana again, and the cancel is on the timeline too.
    url = f"{service.url}/v1/schedules/negotiators-paris/overrides/{made['id']}"
    async with service.http.delete(url, headers=AUTH) as answer:
        assert answer.status == 200
    async with service.http.delete(url, headers=AUTH) as answer:
        assert answer.status == 409
    _, who = await get(service, "/v1/oncall", role="negotiator", region="FR-75")
    assert who["on_call"][0]["person"] == "ana"
    _, schedule = await get(service, "/v1/schedules/negotiators-paris")
    assert [e["type"] for e in schedule["timeline"]] == ["override_added", "override_cancelled"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"person": "tom", "start": "2030-01-01T00:00Z", "end": "2030-01-02T00:00Z"}, "person"),  # no role
        ({"person": "nobody", "start": "2030-01-01T00:00Z", "end": "2030-01-02T00:00Z"}, "person"),
        ({"person": "bruno", "start": "2030-01-02T00:00Z", "end": "2030-01-01T00:00Z"}, "body"),
        ({"person": "bruno", "start": "2030-01-01T00:00", "end": "2030-01-02T00:00Z"}, "start"),  # no zone
        (
            {"person": "bruno", "start": "2030-01-01T00:00Z", "end": "2030-01-02T00:00Z", "layer": "x"},
            "layer",
        ),
        ({"person": "bruno", "start": "2020-01-01T00:00Z", "end": "2020-01-02T00:00Z"}, "end"),  # over
        (
            {"person": "bruno", "start": "2030-01-01T00:00Z", "end": "2030-01-02T00:00Z", "colour": 1},
            "colour",
        ),
    ],
)
async def test_a_bad_override_is_refused_with_the_field_and_changes_nothing(
    service: Service, body: dict[str, Any], field: str
) -> None:
    status, answer = await post_override(service, body)
    assert status == 422, answer
    assert field in [e["field"] for e in answer["detail"]], answer
    _, schedule = await get(service, "/v1/schedules/negotiators-paris")
    assert schedule["timeline"] == [] and schedule["overrides"] == []


async def test_schedule_api_needs_the_token_and_known_ids(service: Service) -> None:
    async with service.http.get(f"{service.url}/v1/schedules") as answer:
        assert answer.status == 401
    assert (await get(service, "/v1/schedules/nope"))[0] == 404
    assert (await get(service, "/v1/oncall", role="boss"))[0] == 422
    assert (await get(service, "/v1/oncall", role="manager", at="tomorrow"))[0] == 422
    status, listed = await get(service, "/v1/schedules")
    assert status == 200 and "negotiators-paris" in [s["id"] for s in listed["schedules"]]
    async with service.http.get(f"{service.url}/ical/schedules/managers.ics?key=forged") as answer:
        assert answer.status == 404  # a wrong key: as if there were no such feed


async def test_schedule_files_reload_without_a_restart(
    log: ServiceLog, service: Service, schedules: Path
) -> None:
    path = schedules / "negotiators-paris.yaml"
    path.write_text(path.read_text().replace("people: [ana]", "people: [lee]"))
    await log.expect("schedules_reloaded")
    _, who = await get(service, "/v1/oncall", role="negotiator", region="FR-75")
    assert who["on_call"][0]["person"] == "lee"
    _, schedule = await get(service, "/v1/schedules/negotiators-paris")
    assert [e["type"] for e in schedule["timeline"]] == ["schedule_reloaded"]
    # A broken edit is refused: the schedules in force stay.
    seen = len(log.entries)
    path.write_text(path.read_text().replace("people: [lee]", "people: [nobody]"))
    refused = await log.expect("schedules_reload_refused", after=seen)
    assert "nobody" in str(refused["problems"])
    assert "schedules_reloaded" not in [e.get("event") for e in log.entries[seen:]]
    _, who = await get(service, "/v1/oncall", role="negotiator", region="FR-75")
    assert who["on_call"][0]["person"] == "lee"
    _, schedule = await get(service, "/v1/schedules/negotiators-paris")
    assert [e["type"] for e in schedule["timeline"]] == ["schedule_reloaded"]


async def test_a_region_with_nobody_on_call_pages_the_default_team_and_tells_the_manager(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, schedules: Path
) -> None:
    for name in ("negotiators-paris", "negotiators-france", "negotiators-default"):
        (schedules / f"{name}.yaml").unlink()  # negotiators only in India and California now
    service = await start_service(db_url, sim, http, RESPONDER_SCHEDULES_DIR=str(schedules))
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        for person in ("lee", "tom"):  # config/responder.yaml: default_team
            await service.phone_of(person).expect_sms(contains="ACK")
        notice = await service.phone_of("maya").expect_sms(contains="nobody is on call there")
        assert "FR-75" in notice.body
        await service.phone_of("ines").expect_sms(contains="ACK")  # the investigator is on call as usual
        case = await service.case(body["case_id"])
        unstaffed = [e for e in case["timeline"] if e["type"] == "tier_unstaffed"]
        assert unstaffed and unstaffed[0]["detail"]["fallback"] == "default_team"
    finally:
        await stop_service(service)


MONTH_SCHEDULE = """
id: generated
role: negotiator
regions: [ZZ-1]
time_zone: Europe/Paris
layers:
  - {{name: primary, people: [ana, bruno, lee], rotation: 2d, handoff: "08:00", start: 2026-01-05,
     hours: "07:00-23:00"}}
  - {{name: backup, people: [sam], days: [mon, tue, wed, thu, fri]}}
overrides:
  - {{person: lee, start: "{start}", end: "{end}"}}
"""


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The real command in its own process (it configures logging and runs its own event loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "responder",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None and process.returncode < 2, err.decode()
    return process.returncode, out.decode()


async def test_who_gaps_and_the_ical_feed_agree_on_a_generated_month(
    db_url: str,
    sim: PhoneSimulator,
    http: aiohttp.ClientSession,
    schedules: Path,
) -> None:
    month_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    night = (month_start + timedelta(days=3)).replace(hour=21)  # 22:00-01:00 Paris: fills one night gap
    (schedules / "generated.yaml").write_text(
        MONTH_SCHEDULE.format(start=iso(night), end=iso(night + timedelta(hours=3)))
    )
    service = await start_service(db_url, sim, http, RESPONDER_SCHEDULES_DIR=str(schedules))
    try:
        # An override through the API as well: the CLI reads it from the same database.
        day = month_start + timedelta(days=10, hours=5)
        status, _ = await post_override(
            service, {"person": "sam", "start": iso(day), "end": iso(day + timedelta(hours=4))}, "generated"
        )
        assert status == 201
        _, schedule = await get(service, "/v1/schedules/generated")
        async with http.get(schedule["ical_url"]) as answer:
            assert answer.status == 200
            feed = Calendar.from_ical(await answer.read())
    finally:
        await stop_service(service)
    turns = [(e.decoded("dtstart"), e.decoded("dtend"), str(e.get("summary"))) for e in feed.walk("VEVENT")]
    env = environment(db_url, service.url, sim.url, RESPONDER_SCHEDULES_DIR=str(schedules))
    code, out = await run_cli(env, "oncall", "gaps", "--from", iso(month_start), "--days", "30", "--json")
    gap_hours = {g["hour"] for g in json.loads(out)["gaps"] if g["region"] == "ZZ-1"}
    assert code == 1 and gap_hours  # the primary layer leaves 23:00-07:00 Paris uncovered

    names = {
        "ana": "Ana Negotiator",
        "bruno": "Bruno Negotiator",
        "lee": "Lee Negotiator",
        "sam": "Sam Negotiator",
    }
    times = [month_start + timedelta(hours=hour, minutes=30) for hour in range(30 * 24)]
    args = [arg for at in times for arg in ("--at", iso(at))]
    code, out = await run_cli(
        env, "oncall", "who", "--role", "negotiator", "--region", "ZZ-1", "--json", *args
    )
    assert code == 0
    for at, found in zip(times, json.loads(out)["answers"], strict=True):
        answer = found["on_call"]
        own = [o for o in answer if o["region"] == "ZZ-1"]
        in_feed = [s for start, end, s in turns if start <= at < end and "(primary)" in s]
        hour_key = iso(at.replace(minute=0))
        if in_feed:
            assert own and own[0]["layer"] == "primary", (at, answer, in_feed)
            assert in_feed == [
                f"{names[own[0]['person']]} on call: negotiator ZZ-1 (primary)"
                + (" (override)" if own[0]["override"] else "")
            ], (at, answer, in_feed)
            assert hour_key not in gap_hours, at
        else:
            assert all(o["layer"] != "primary" for o in own), (at, answer)
            assert (hour_key in gap_hours) == (not own), (at, answer)
    # Both overrides show: the file's (lee, one night) and the API's (sam, one morning).
    assert any("Lee" in s and "(override)" in s for _, _, s in turns)
    assert any("Sam" in s and "(primary) (override)" in s for _, _, s in turns)


async def test_the_incoming_person_gets_a_hand_off_sms_once(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, schedules: Path
) -> None:
    path = schedules / "negotiators-paris.yaml"
    path.write_text(
        path.read_text().replace("prefer_language: true", "prefer_language: true\nhandoff_sms: true")
    )
    service = await start_service(
        db_url, sim, http, RESPONDER_SCHEDULES_DIR=str(schedules), RESPONDER_SWEEP_INTERVAL_S="0.2"
    )
    try:
        # A turn is texted when a beat sees it start, so it must start after it was made: 2 s ahead.
        start = datetime.now(UTC) + timedelta(seconds=2)
        status, _ = await post_override(
            service, {"person": "bruno", "start": iso(start), "end": iso(start + timedelta(hours=3))}
        )
        assert status == 201
        # Lee takes over a second later (until after Bruno's end: Bruno's turn never starts again).
        later = start + timedelta(seconds=1)
        status, _ = await post_override(
            service, {"person": "lee", "start": iso(later), "end": iso(later + timedelta(hours=4))}
        )
        assert status == 201
        bruno, lee = service.phone_of("bruno"), service.phone_of("lee")
        sms = await bruno.expect_sms(contains="d'astreinte")  # Bruno reads French first
        assert "negotiator FR-75 (primary)" in sms.body and "Europe/Paris" in sms.body
        # Lee's turn starts a second after Bruno's: once Lee has his SMS, the beats after Bruno's have
        # run too, and Bruno still has his one.
        await lee.expect_sms(contains="you are on call")
        assert len([m for m in bruno.messages if "astreinte" in m.body]) == 1
    finally:
        await stop_service(service)


async def test_a_hand_off_sms_twilio_cannot_take_at_first_still_comes_once(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, schedules: Path
) -> None:
    """The hand-off SMS is an outbox row like any notice: Twilio answering 500 at first holds it (it
    used to be sent beside the outbox, once, and lost when that one send failed)."""
    path = schedules / "negotiators-paris.yaml"
    path.write_text(
        path.read_text().replace("prefer_language: true", "prefer_language: true\nhandoff_sms: true")
    )
    service = await start_service(
        db_url, sim, http, RESPONDER_SCHEDULES_DIR=str(schedules), RESPONDER_SWEEP_INTERVAL_S="0.2"
    )
    try:
        bruno = service.phone_of("bruno")
        bruno.behaviour = Behaviour(api_error=500, api_error_count=3)
        start = datetime.now(UTC) + timedelta(seconds=2)  # made before it starts (see above)
        status, _ = await post_override(
            service, {"person": "bruno", "start": iso(start), "end": iso(start + timedelta(hours=3))}
        )
        assert status == 201
        await bruno.expect_api_errors(3)
        sms = await bruno.expect_sms(contains="d'astreinte")
        assert "negotiator FR-75 (primary)" in sms.body
        assert len([m for m in bruno.messages if "astreinte" in m.body]) == 1
    finally:
        await stop_service(service)


async def test_a_tier_can_target_a_named_schedule(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    path = playbooks / "imminent-risk.yaml"
    # The backup tier pages the California schedule's primary, whatever the case's region.
    path.write_text(
        path.read_text().replace(
            "[{role: negotiator, layer: backup}]", "[{schedule: negotiators-california, layer: primary}]"
        )
    )
    service = await start_service(db_url, sim, http, RESPONDER_PLAYBOOKS_DIR=str(playbooks))
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        case = await service.case(body["case_id"])
        await service.phone_of("sam").expect_sms(contains=case["ref"])
        case = await service.case(body["case_id"])
        backup = next(e for e in events(case, "step_fired") if e["detail"]["tier"] == "backup-negotiator")
        assert backup["detail"]["people"] == ["sam"]  # the step fired with its page rows: no Bruno
        assert "bruno" not in [p["person"]["id"] for p in case["pages"]]
    finally:
        await stop_service(service)
