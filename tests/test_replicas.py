"""Two `responder serve` replicas on one PostgreSQL database behind one public URL; one is killed -9.

Both take webhooks and both run the engine; due work is claimed with FOR UPDATE SKIP LOCKED, so no
step fires twice and none is missed. (SQLite is one process by design: these run on PostgreSQL.)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from responder.simulator import PhoneSimulator
from responder.tools import signed_headers
from tests.harness import API_TOKEN, SOCIAL_SECRET, new_alert_id, patient_phones, sample
from tests.process import ServiceProcess
from tests.proxy import RoundRobinProxy

CASES = 6
# 1/50 speed: voice at +1.2 s, backup negotiator at +3.6 s after each alert.
ENV = {"RESPONDER_TIME_SCALE": "0.02", "RESPONDER_SWEEP_INTERVAL_S": "0.5"}


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    async with patient_phones() as simulator:
        yield simulator


@pytest.fixture
async def replicas(
    db_url: str, sim: PhoneSimulator
) -> AsyncIterator[tuple[RoundRobinProxy, list[ServiceProcess]]]:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serves one process by design; replicas share PostgreSQL")
    first = ServiceProcess(db_url, sim, extra_env=ENV)
    second = ServiceProcess(db_url, sim, extra_env=ENV, clock_start=first.clock_start)  # one case time
    proxy = RoundRobinProxy([first.url, second.url])
    first.public_url = second.public_url = proxy.url
    await first.run("db", "upgrade")
    await proxy.start()
    try:
        await asyncio.gather(first.start(), second.start())  # at the same moment, as replicas do
        yield proxy, [first, second]
    finally:
        await asyncio.gather(first.stop(), second.stop())
        await proxy.stop()


async def post(http: aiohttp.ClientSession, url: str) -> str:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    async with http.post(
        f"{url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
    ) as answer:
        assert answer.status == 202
        case_id: str = (await answer.json())["case_id"]
        return case_id


async def test_kill_9_one_replica_the_other_carries_on_without_duplicates(
    replicas: tuple[RoundRobinProxy, list[ServiceProcess]], sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    proxy, (first, second) = replicas
    case_ids = [await post(http, proxy.url) for _ in range(CASES)]
    ana, bruno = sim.phone("+33639980002"), sim.phone("+33639980003")
    for _ in range(CASES):
        await ana.expect_sms(contains="ACK")

    await first.kill9()  # mid-escalation: every case still has its voice and backup steps ahead

    for _ in range(CASES):
        await ana.expect_call()
        await bruno.expect_sms(contains="ACK")
    async with http.get(f"{second.url}/v1/cases", headers={"Authorization": f"Bearer {API_TOKEN}"}) as answer:
        assert answer.status == 200
    fired: Counter[tuple[str, int]] = Counter()
    ana_pages: list[str] = []
    for case_id in case_ids:
        async with http.get(
            f"{second.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as answer:
            case = await answer.json()
        for event in case["timeline"]:
            if event["type"] == "step_fired":
                fired[(case_id, event["detail"]["step"])] += 1
        steps = sorted({step for (cid, step) in fired if cid == case_id})
        assert steps[:3] == [0, 1, 2], (case_id, steps)  # SMS, voice, backup SMS: none missed
        ana_pages += [p["id"] for p in case["pages"] if p["person"]["id"] == "ana" and p["step"] in (0, 1)]
    assert all(count == 1 for count in fired.values()), fired  # and none fired twice
    # Nobody paged twice for one step: one page row each for Ana's SMS and call, each sent once.
    assert len(ana_pages) == 2 * CASES
    callbacks = [m.status_callback for m in ana.messages] + [c.setup.status_callback for c in ana.calls]
    for page_id in ana_pages:
        sent = [url for url in callbacks if url and url.endswith(f"/twilio/status/{page_id}")]
        assert len(sent) == 1, (page_id, sent)
