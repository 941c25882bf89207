"""Faults, timed: what a slow Twilio, a Twilio outage and a locked database cost (the figures in
docs/operations.md; the behaviour is proved by tests/test_faults.py).

    .venv/bin/python bench/faults.py            # about two minutes
    .venv/bin/python bench/faults.py --json

Each scenario runs `responder serve` on a fresh SQLite database at full speed (the playbook's next step
is a minute away), paging the phone simulator in this process:

- `slow-twilio`: Twilio answers every create after 2.5 s and sends no callbacks, with a 3 s deadline;
  30 alerts at once (60 SMS). Reports the time until every SMS arrived and how many arrived twice.
- `outage`: Twilio answers 500 to every create for 20 s, then works again; 10 alerts during it. Reports
  the time from Twilio's return until every first responder's SMS arrived.
- `locked-db`: another writer holds the SQLite lock; reports the answer an alert gets and after how
  long, with the default deadline (5 s) and with 1 s.

To compare with another version of the service, put its checkout first: `PYTHONPATH=../other
.venv/bin/python bench/faults.py` (the service is started from the `responder` package found first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
from _harness import SAMPLES, SOCIAL_SECRET, bench_setup, serving, wait_ready

from responder.simulator import Behaviour, PhoneSimulator
from responder.tools import signed_headers

INES, ANA = "+33639980001", "+33639980002"
ROSTER = (INES, ANA, "+33639980003", "+33639980004", "+33639980005", "+33639980006")


def alert_body() -> str:
    alert = json.loads((SAMPLES / "imminent-live-fr.json").read_text())
    alert["alert_id"] = f"bench-{uuid.uuid4().hex}"
    return json.dumps(alert)


async def post(http: aiohttp.ClientSession, url: str) -> int:
    body = alert_body()
    async with http.post(f"{url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)) as r:
        return r.status


def page_counts(sim: PhoneSimulator) -> Counter[str]:
    counts: Counter[str] = Counter()
    for number in (INES, ANA):
        for message in sim.phone(number).messages:
            if "/a/" in message.body:
                counts[message.body.split("/a/")[1].split(".")[0]] += 1
    return counts


async def until(check: Any, timeout_s: float) -> bool:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 (inboxes of several phones; 20 ms is the figure's resolution)
            await asyncio.sleep(0.02)
    return True


async def slow_twilio() -> dict[str, Any]:
    async with bench_setup() as setup:
        setup.env["RESPONDER_TWILIO_TIMEOUT_S"] = "3"
        for number in (INES, ANA):
            setup.sim.phone(number).behaviour = Behaviour(api_delay_s=2.5, callbacks=False)
        with serving(setup.env, setup.port, setup.tmp / "service.log") as process:
            await wait_ready(setup.url, process, setup.tmp / "service.log")
            async with aiohttp.ClientSession() as http:
                started = time.perf_counter()
                statuses = await asyncio.gather(*(post(http, setup.url) for _ in range(30)))
                with contextlib.suppress(TimeoutError):
                    await until(lambda: len(page_counts(setup.sim)) == 60, 120)
                all_in_s = time.perf_counter() - started
                await asyncio.sleep(10)  # the old outbox re-sent live claims after 6 s: give it the chance
                counts = page_counts(setup.sim)
    return {
        "alerts_202": statuses.count(202),
        "pages": len(counts),
        "all_arrived_s": round(all_in_s, 2),
        "sent_twice_or_more": sum(1 for n in counts.values() if n > 1),
    }


async def outage() -> dict[str, Any]:
    async with bench_setup() as setup:
        for number in ROSTER:
            setup.sim.phone(number).behaviour = Behaviour(api_error=500, api_error_count=10**6)
        with serving(setup.env, setup.port, setup.tmp / "service.log") as process:
            await wait_ready(setup.url, process, setup.tmp / "service.log")
            async with aiohttp.ClientSession() as http:
                for _ in range(10):
                    await post(http, setup.url)
                await asyncio.sleep(20)  # the outage
                back = time.perf_counter()
                for number in ROSTER:
                    setup.sim.phone(number).behaviour = Behaviour()
                try:
                    await until(lambda: len(page_counts(setup.sim)) == 20, 60)
                except TimeoutError:
                    return {
                        "first_responders_paged_after_return_s": None,
                        "paged": len(page_counts(setup.sim)),
                    }
                return {
                    "first_responders_paged_after_return_s": round(time.perf_counter() - back, 2),
                    "paged": 20,
                }


async def locked_db(deadline_s: str | None) -> dict[str, Any]:
    async with bench_setup() as setup:
        if deadline_s is not None:
            setup.env["RESPONDER_DB_DEADLINE_S"] = deadline_s
        with serving(setup.env, setup.port, setup.tmp / "service.log") as process:
            await wait_ready(setup.url, process, setup.tmp / "service.log")
            other = sqlite3.connect(setup.db_path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                async with aiohttp.ClientSession() as http:
                    started = time.perf_counter()
                    status = await post(http, setup.url)
                    waited = time.perf_counter() - started
            finally:
                other.execute("ROLLBACK")
                other.close()
            return {"status": status, "answered_after_s": round(waited, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = {
        "slow-twilio": await slow_twilio(),
        "outage": await outage(),
        "locked-db": {"default_deadline": await locked_db(None), "deadline_1s": await locked_db("1")},
    }
    print(json.dumps(figures, indent=None if args.json else 2))


if __name__ == "__main__":
    asyncio.run(main())
