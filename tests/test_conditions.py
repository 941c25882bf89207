"""Tier conditions through the real service: on the alert (`when`) and on the case (`if_done`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
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
    patient_phones,
    sample,
    start_service,
    stop_service,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
BACKUP = "    - id: backup-negotiator"


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    async with patient_phones() as simulator:
        yield simulator


async def service_with(
    condition: str, db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> Service:
    """The real service with the default playbook's backup tier under `condition`, on a clock only the
    test moves (`Service.advance`): each step fires at its exact playbook time."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    path = playbooks / "imminent-risk.yaml"
    path.write_text(path.read_text().replace(BACKUP, f"{BACKUP}\n      {condition}"))
    return await start_service(
        db_url, sim, http, clock=manual_clock(), RESPONDER_PLAYBOOKS_DIR=str(playbooks)
    )


def not_live() -> dict[str, Any]:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["content"] = {**alert["content"], "type": "post", "is_live": False}
    return alert


def skipped(case: dict[str, Any]) -> list[str]:
    return [e["detail"]["reason"] for e in case["timeline"] if e["type"] == "tier_skipped"]


def backup_step(case: dict[str, Any]) -> dict[str, Any]:
    """What the backup tier's SMS step did: its `step_fired` or `tier_skipped` event."""
    found: dict[str, Any] = next(
        e
        for e in case["timeline"]
        if e["type"] in ("step_fired", "tier_skipped")
        and e["detail"].get("tier") == "backup-negotiator"
        and e["detail"]["channel"] == "sms"
    )
    return found


async def test_a_tier_for_live_content_is_skipped_for_a_post_and_the_chain_moves_on(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    service = await service_with("when: {is_live: true}", db_url, sim, http, tmp_path)
    try:
        status, body = await service.post_alert(not_live())
        assert status == 202
        case = await service.case(body["case_id"])
        await service.phone_of("ana").expect_sms(contains=case["ref"])
        # At T+3 the backup tier does not match a post: the team lead is paged then, not at T+5.
        await service.advance(minutes=3)
        await service.phone_of("tom").expect_sms(contains=case["ref"])
        case = await service.case(body["case_id"])
        assert skipped(case) == ["its condition does not match the alert"] * 2  # its SMS and voice steps
        # The team lead was paged by the engine pass that skipped the tier, at the backup tier's time:
        # the skip moved the chain on, not the timer.
        lead = next(e for e in events(case, "step_fired") if e["detail"]["tier"] == "team-lead")
        assert {at(e["at"]) for e in events(case, "tier_skipped")} == {at(lead["at"])} == {due(case, 3)}
        assert [p for p in case["pages"] if p["person"]["id"] == "bruno"] == []  # the tier is behind

        status, live = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202  # live: the backup negotiator is paged as usual, at its T+3
        live_case = await service.case(live["case_id"])
        await service.advance(minutes=3)
        await service.phone_of("bruno").expect_sms(contains=live_case["ref"])
        live_case = await service.case(live["case_id"])
        assert skipped(live_case) == []
        backup = next(
            e for e in events(live_case, "step_fired") if e["detail"]["tier"] == "backup-negotiator"
        )
        assert backup["detail"]["people"] == ["bruno"] and at(backup["at"]) == due(live_case, 3)
    finally:
        await stop_service(service)


async def test_a_tier_waiting_for_a_task_is_paged_only_once_it_is_done(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    service = await service_with("if_done: identify", db_url, sim, http, tmp_path)
    try:
        status, first = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        status, second = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        # The investigator identifies the person of the second case before anyone accepts.
        done_url = f"{service.url}/v1/cases/{second['case_id']}/tasks/identify/done"
        async with service.http.post(done_url, headers=AUTH) as answer:
            assert answer.status == 200
        bruno, tom = service.phone_of("bruno"), service.phone_of("tom")
        first_case, second_case = [await service.case(c["case_id"]) for c in (first, second)]
        # At T+3 the second case's backup tier goes by the task as it stands then: done, so Bruno.
        await service.advance(minutes=3)
        await bruno.expect_sms(contains=second_case["ref"])
        second_case = await service.case(second["case_id"])
        backup = backup_step(second_case)
        assert (backup["type"], backup["detail"]["people"]) == ("step_fired", ["bruno"])
        assert at(backup["at"]) == due(second_case, 3)
        assert skipped(second_case) == []
        # Not for the first case: nobody identified that one. Its backup tier was skipped and its team
        # lead paged at once instead, at the same T+3.
        await tom.expect_sms(contains=first_case["ref"])
        first_case = await service.case(first["case_id"])
        assert skipped(first_case) == ["task 'identify' is not done"] * 2
        assert backup_step(first_case)["type"] == "tier_skipped"
        lead = next(e for e in events(first_case, "step_fired") if e["detail"]["tier"] == "team-lead")
        assert at(lead["at"]) == due(first_case, 3)
        assert [p for p in first_case["pages"] if p["person"]["id"] == "bruno"] == []
        assert not [m for m in bruno.messages if first_case["ref"] in m.body]
        assert not [m for m in tom.messages if second_case["ref"] in m.body]
    finally:
        await stop_service(service)


SHORT_CHAIN = """
name: imminent-risk
default: true
paging:
  tiers:
    - id: first
      targets: [{role: negotiator}]
      channels: [{channel: sms}]
      ack_timeout: 1m
    - id: lead
      targets: [{role: team_lead}]
      channels: [{channel: sms}]
      ack_timeout: 1m
  repeat: 1
  exhausted:
    page_all: [negotiator, team_lead]
    notify: [manager]
    channels: [sms]
    every: 2m
reescalate: {quiet_for: 3m}
"""


async def test_an_exhausted_chain_pages_all_hands_and_tells_the_manager_until_someone_accepts(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    (playbooks / "imminent-risk.yaml").write_text(SHORT_CHAIN)
    service = await start_service(
        db_url, sim, http, clock=manual_clock(), RESPONDER_PLAYBOOKS_DIR=str(playbooks)
    )
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        ana, tom, bruno, maya = (service.phone_of(p) for p in ("ana", "tom", "bruno", "maya"))
        # Two passes of ana (T+0, T+2m) and tom (T+1m, T+3m), then all-hands at T+4m: every layer of
        # the Paris negotiators (ana and bruno) and the team lead; the manager gets a notice.
        await ana.expect_sms(contains="ACK")
        for person in (tom, ana, tom):
            await service.advance(minutes=1)
            await person.expect_sms(contains="ACK")
        assert bruno.messages == [] and maya.messages == []
        await service.advance(minutes=1)
        await bruno.expect_sms(contains="ACK")
        notice = await maya.expect_sms(contains="nobody accepted")
        assert "FR-75" in notice.body
        # It goes on every 2 minutes until someone accepts: again at T+6m.
        await service.advance(minutes=2)
        await bruno.expect_sms(contains="ACK")
        await maya.expect_sms(contains="nobody accepted")
        await bruno.send_sms("ACK")
        # Three quiet minutes after the accept Bruno is nudged: the next all-hands (T+8m) fell due on
        # the way, and paged nobody.
        await service.advance(minutes=3)
        await bruno.expect_sms(contains="aucune activité")
        case = await service.case(body["case_id"])
        assert case["status"] == "acknowledged" and case["accepted_by"]["id"] == "bruno"
        assert at(case["accepted_at"]) == due(case, 6)
        assert [at(e["at"]) for e in events(case, "all_hands_paged")] == [due(case, 4), due(case, 6)]
        assert max(at(p["created_at"]) for p in case["pages"] if p["purpose"] == "page") == due(case, 6)
        paged = [p for p in case["pages"] if p["person"]["id"] == "bruno" and p["purpose"] == "page"]
        assert len([m for m in bruno.messages if "ACK" in m.body]) == len(paged) == 2
        assert len([m for m in maya.messages if "nobody accepted" in m.body]) == 2
    finally:
        await stop_service(service)
