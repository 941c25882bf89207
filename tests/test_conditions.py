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
    new_alert_id,
    patient_phones,
    sample,
    start_service,
    stop_service,
)

SCALE = 0.01  # a playbook minute is 0.6 s: the backup tier is due 1.8 s after the alert
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
BACKUP = "    - id: backup-negotiator"


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    async with patient_phones() as simulator:
        yield simulator


async def service_with(
    condition: str, db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> Service:
    """The real service with the default playbook's backup tier under `condition`."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    path = playbooks / "imminent-risk.yaml"
    path.write_text(path.read_text().replace(BACKUP, f"{BACKUP}\n      {condition}"))
    return await start_service(db_url, sim, http, RESPONDER_PLAYBOOKS_DIR=str(playbooks))


def not_live() -> dict[str, Any]:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["content"] = {**alert["content"], "type": "post", "is_live": False}
    return alert


def skipped(case: dict[str, Any]) -> list[str]:
    return [e["detail"]["reason"] for e in case["timeline"] if e["type"] == "tier_skipped"]


async def test_a_tier_for_live_content_is_skipped_for_a_post_and_the_chain_moves_on(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    service = await service_with("when: {is_live: true}", db_url, sim, http, tmp_path)
    try:
        status, body = await service.post_alert(not_live())
        assert status == 202
        # At T+3 the backup tier does not match a post: the team lead is paged then, not at T+5.
        await service.phone_of("tom").expect_sms(contains="ACK", timeout_s=3 * 60 * SCALE + 1.5)
        await service.phone_of("bruno").expect_no_sms("ACK", timeout_s=0.3)
        case = await service.case(body["case_id"])
        assert skipped(case) == ["its condition does not match the alert"] * 2  # its SMS and voice steps

        status, _ = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202  # live: the backup negotiator is paged as usual
        await service.phone_of("bruno").expect_sms(contains="ACK", timeout_s=3 * 60 * SCALE + 1.5)
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
        bruno = service.phone_of("bruno")
        sms = await bruno.expect_sms(contains="ACK", timeout_s=3 * 60 * SCALE + 1.5)
        second_case = await service.case(second["case_id"])
        assert second_case["ref"] in sms.body
        await bruno.expect_no_sms("ACK", timeout_s=0.5)  # not for the first case: nobody identified that one
        first_case = await service.case(first["case_id"])
        assert skipped(first_case)[:1] == ["task 'identify' is not done"]
        assert skipped(second_case) == []
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
"""


async def test_an_exhausted_chain_pages_all_hands_and_tells_the_manager_until_someone_accepts(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    (playbooks / "imminent-risk.yaml").write_text(SHORT_CHAIN)
    service = await start_service(db_url, sim, http, RESPONDER_PLAYBOOKS_DIR=str(playbooks))
    try:
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        ana, tom, bruno, maya = (service.phone_of(p) for p in ("ana", "tom", "bruno", "maya"))
        # Two passes of ana (T+0, T+2m) and tom (T+1m, T+3m), then all-hands at T+4m: every layer of
        # the Paris negotiators (ana and bruno) and the team lead; the manager gets a notice.
        for _ in range(2):
            await ana.expect_sms(contains="ACK", timeout_s=2)
            await tom.expect_sms(contains="ACK", timeout_s=2)
        await bruno.expect_sms(contains="ACK", timeout_s=4 * 60 * SCALE + 1.5)
        notice = await maya.expect_sms(contains="nobody accepted", timeout_s=1.5)
        assert "FR-75" in notice.body
        # It goes on every 2 minutes until someone accepts: again at T+6m.
        await bruno.expect_sms(contains="ACK", timeout_s=2 * 60 * SCALE + 1.5)
        await bruno.send_sms("ACK")
        await maya.expect_sms(contains="nobody accepted", timeout_s=1.5)  # the second notice, at T+6m
        await bruno.expect_no_sms("ACK", timeout_s=2 * 60 * SCALE + 0.5)  # and nothing after the accept
        case = await service.case(body["case_id"])
        assert case["status"] == "acknowledged" and case["accepted_by"]["id"] == "bruno"
        assert [e["type"] for e in case["timeline"]].count("all_hands_paged") == 2
    finally:
        await stop_service(service)
