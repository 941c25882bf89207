"""Failure → next page: how fast a failed page brings on the next one (the figure the tests no longer time).

    .venv/bin/python bench/failover_latency.py              # 10 rounds of each scenario, about a minute
    .venv/bin/python bench/failover_latency.py --rounds 30 --json

The behaviour is proved by the tests (tests/test_failover.py, tests/test_escalation.py: the timeline
shows which failure made the page); this measures its speed. Scenarios, one case per round, resolved
before the next:

- `sms-undelivered`: Ana's SMS is undelivered; measured from the simulator setting it undelivered (just
  before its status callback) to the simulator receiving the call to Ana that fails it over.
- `call-<outcome>` (busy, no-answer, failed, machine): the voice step calls Ana and Ines, both calls
  fail; measured from the first call's end (just before its failure callback; for a machine, its
  answer, when the service learns of it) to the simulator receiving the backup negotiator's SMS.

The service runs as `responder serve` on a fresh SQLite database at 1/50 speed (the voice step comes
1.2 s after the alert), with the first tier's ack timeout raised to 30 minutes, so the backup tier is
36 s away unless a failure brings it on; Twilio is the phone simulator, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import shutil
import signal
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from _harness import API_TOKEN, ROOT, SAMPLES, SOCIAL_SECRET, Setup, bench_setup, serving, wait_ready
from _measure import CpuSplit, log_problems, summary_ms

from responder.simulator import Behaviour, SimCall, SimMessage
from responder.simulator.behaviour import CallOutcome
from responder.tools import signed_headers

TIME_SCALE = 0.02
LONG_ACK = "30m"
WAIT_S = 30.0  # a round that takes longer counts as "not brought on" (the backup tier's timer is 36 s)
ANA, INES, BRUNO = "+33639980002", "+33639980001", "+33639980003"
OUTCOMES: tuple[CallOutcome, ...] = ("busy", "no-answer", "failed", "machine")
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def playbooks_with_long_ack(tmp: Path) -> Path:
    playbooks = tmp / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    path = playbooks / "imminent-risk.yaml"
    path.write_text(path.read_text().replace("ack_timeout: 3m", f"ack_timeout: {LONG_ACK}", 1))
    return playbooks


class Rounds:
    """Posts one alert per round to the running service and times what the simulator sees."""

    def __init__(self, setup: Setup, http: aiohttp.ClientSession) -> None:
        self.setup, self.sim, self.http = setup, setup.sim, http
        self.template = json.loads((SAMPLES / "imminent-live-fr.json").read_text())

    async def open_case(self) -> tuple[str, str]:
        alert = {**self.template, "alert_id": f"bench-{uuid.uuid4().hex[:12]}"}
        body = json.dumps(alert)
        async with self.http.post(
            f"{self.setup.url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
        ) as answer:
            assert answer.status == 202, await answer.text()
            case_id: str = (await answer.json())["case_id"]
        case = await self.case(case_id)
        return case_id, case["ref"]

    async def case(self, case_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.setup.url}/v1/cases/{case_id}", headers=AUTH) as answer:
            case: dict[str, Any] = await answer.json()
            return case

    async def close(self, case_id: str) -> None:
        url = f"{self.setup.url}/v1/cases/{case_id}/resolve"
        async with self.http.post(url, json={"outcome": "false_positive"}, headers=AUTH) as answer:
            assert answer.status == 200, await answer.text()

    async def wait(self, found: Any) -> Any:
        return await self.sim.changes.wait_for(found, WAIT_S)

    async def sms_undelivered(self) -> float | None:
        """Undelivered SMS → the call to the same person (seconds), or None if it never came."""
        self.sim.phone(ANA).behaviour = Behaviour(sms="undelivered")
        self.sim.phone(INES).behaviour = Behaviour()
        calls = list(self.sim.phone(ANA).calls)
        case_id, ref = await self.open_case()
        try:
            failed: SimMessage | None = await self.wait(
                lambda: next((m for m in self.sim.phone(ANA).undelivered if ref in m.body), None)
            )
            call: SimCall | None = await self.wait(
                lambda: next((c for c in self.sim.phone(ANA).calls if c not in calls), None)
            )
            case = await self.case(case_id)
            failover = [e for e in case["timeline"] if e["type"] == "channel_failover"]
            if failed is None or call is None or not failover:
                return None
            return (call.created_at - failed.updated_at).total_seconds()
        finally:
            await self.close(case_id)

    async def calls_fail(self, outcome: CallOutcome) -> float | None:
        """Both first-tier calls fail → the backup negotiator's SMS (seconds), or None."""
        self.sim.phone(ANA).behaviour = self.sim.phone(INES).behaviour = Behaviour(call=outcome)
        case_id, ref = await self.open_case()
        try:
            sms: SimMessage | None = await self.wait(
                lambda: next((m for m in self.sim.phone(BRUNO).messages if ref in m.body), None)
            )
            case = await self.case(case_id)
            advanced = [e for e in case["timeline"] if e["type"] == "escalation_advanced"]
            pages = {p["id"] for p in case["pages"] if p["channel"] == "voice"}
            # The service learns of a machine when the call is answered (AnsweredBy, in the TwiML
            # request); of the other failures when the call ends.
            learnt = [
                c.start_time if outcome == "machine" else c.end_time
                for c in self.sim.calls.values()
                if any((c.setup.status_callback or "").endswith(f"/{page}") for page in pages)
            ]
            known = [t for t in learnt if t is not None]
            if sms is None or not advanced or not known:
                return None
            first: datetime = min(known)
            return (sms.created_at - first).total_seconds()
        finally:
            await self.close(case_id)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"command": shlex.join(sys.orig_argv), "rounds": args.rounds}
    async with bench_setup(args.callback_delay) as setup:
        setup.env["RESPONDER_TIME_SCALE"] = str(TIME_SCALE)
        setup.env["RESPONDER_PLAYBOOKS_DIR"] = str(playbooks_with_long_ack(setup.tmp))
        log_path = setup.tmp / "service.log"
        with serving(setup.env, setup.port, log_path) as process:
            await wait_ready(setup.url, process, log_path)
            cpu = CpuSplit.start(process.pid)
            async with aiohttp.ClientSession() as http:
                rounds = Rounds(setup, http)
                scenarios: dict[str, Any] = {"sms-undelivered": rounds.sms_undelivered}
                for outcome in OUTCOMES:
                    scenarios[f"call-{outcome}"] = lambda o=outcome: rounds.calls_fail(o)
                for name, measure in scenarios.items():
                    times = [await measure() for _ in range(args.rounds)]
                    got = [t for t in times if t is not None]
                    results[name] = {
                        **summary_ms(got),
                        "rounds": len(times),
                        "not_brought_on": len(times) - len(got),
                    }
            results["cpu"] = cpu.stop()
        results["log_problems"] = log_problems(log_path)
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"`{results['command']}`",
        "",
        "| scenario | rounds | p50 | p90 | p99 | max | not brought on |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        if not isinstance(row, dict) or "p50_ms" not in row:
            continue
        cells = [
            f"{row[k]:.1f} ms" if row[k] is not None else "-"
            for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")
        ]
        lines.append(f"| {name} | {row['rounds']} | {' | '.join(cells)} | {row['not_brought_on']} |")
    cpu = results["cpu"]
    lines += [
        "",
        f"wall {cpu['wall_s']:.1f} s, service CPU {cpu['service_cpu_s']:.1f} s, "
        f"other CPU {cpu['other_cpu_s']:.1f} s; service log problems: {results['log_problems'] or 'none'}",
    ]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="cases per scenario (default 10)")
    parser.add_argument("--callback-delay", type=float, default=0.01, help="simulator step delay (s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown")
    return parser.parse_args()


async def main_task(args: argparse.Namespace) -> dict[str, Any]:
    """Run, turning SIGTERM into a cancellation so the clean-up runs as it does on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(args)


def main() -> int:
    args = parse_args()
    # The simulator logs through structlog; keep its warnings off the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        results = asyncio.run(main_task(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the service, simulator and temp dir were cleaned up", file=sys.stderr)
        return 130
    print(json.dumps(results, indent=2) if args.json else markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
