"""A burst of logins while escalation steps fall due (issue 12, item 4): how late the steps are acted on.

    .venv/bin/python bench/login_burst.py                    # four runs, about a minute
    .venv/bin/python bench/login_burst.py --logins 150 --due-steps 16 --json

Four runs side by side, each a fresh `responder serve` on a fresh SQLite database, with `--due-steps`
open cases seeded (on the imminent-risk playbook) so that their step 0 falls due, evenly spread over
`--window` seconds, from `--burst-lead` seconds after the burst starts:

- `quiet`: no burst, the baseline;
- `burst`: `--logins` parallel logins to unknown usernames, as shipped: four logins worked on at once
  (`LOGINS_AT_ONCE`), their scrypt on two threads;
- `burst-ungated`: the same burst with every login worked on at once (scrypt still on its threads), as
  at 65f2b04;
- `burst-on-loop`: ungated, and the password check back on the event loop, as before 65f2b04.

The last two start the service through `bench/_login_baseline.py`, which swaps just those pieces.

Every login of the burst comes from its own address, through `RESPONDER_TRUSTED_PROXIES=127.0.0.1`
and X-Forwarded-For, so the login limit (20 per address) stops none of them and each is hashed, as in
the issue's 150 anonymous logins. Lateness is read from the service's `step_fired` rows against the
seeded due times; "due → first Twilio request" from the simulator's stamped requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shlex
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from _engine_common import TwilioLog, WallClock, seconds, spread, sync_roster, utcnow
from _harness import SAMPLES, Setup, bench_main, bench_setup, serving, wait_ready
from _measure import CpuSplit, log_problems, summary_ms
from _report import json_safe
from _seed import Seeded, read_step_fired, seed_cases, sync_engine

BENCH = Path(__file__).resolve().parent
RUNS = ("quiet", "burst", "burst-ungated", "burst-on-loop")
BASELINE = [sys.executable, str(BENCH / "_login_baseline.py")]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LATE_S = (1.0, 10.0)  # the lateness counts reported (the issue saw 4 of 16 steps over 10 s late)


def client_address(n: int) -> str:
    """The n-th client of the burst, in the documentation ranges (RFC 5737): a header, never a target."""
    return f"{('198.51.100', '203.0.113', '192.0.2')[n // 250 % 3]}.{n % 250 + 1}"


async def login_burst(url: str, logins: int) -> dict[str, Any]:
    """`logins` parallel wrong logins, each from its own client address; statuses and durations."""
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(limit=0)  # all at once: aiohttp would otherwise hold 100 at a time
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as http:
        async with http.get(f"{url}/login") as page:
            found = CSRF.search(await page.text())
        assert found, "no CSRF token on the login page"

        async def one(n: int) -> tuple[int, float]:
            form = {"csrf": found.group(1), "username": f"nobody-{n}", "password": "not the password"}
            headers = {"X-Forwarded-For": client_address(n)}
            async with http.post(f"{url}/login", data=form, headers=headers, allow_redirects=False) as r:
                await r.read()
                return r.status, time.perf_counter()

        started = time.perf_counter()
        answers = await asyncio.gather(*(one(n) for n in range(logins)))
    return {
        "logins": logins,
        "statuses": dict(Counter(status for status, _ in answers)),
        "started_perf_s": started,
        "duration_s": max(at for _, at in answers) - started,
    }


async def run_once(args: argparse.Namespace, name: str, template: dict[str, Any]) -> dict[str, Any]:
    """One service life: seed, serve, (burst), wait for the pages, then read what happened."""
    async with bench_setup(args.callback_delay) as setup:
        setup.env["RESPONDER_TRUSTED_PROXIES"] = "127.0.0.1"
        await sync_roster(setup)
        burst_at = utcnow() + timedelta(seconds=args.lead)
        first_due = burst_at + timedelta(seconds=args.burst_lead)
        due_times = spread(first_due, args.window, args.due_steps)
        seeded = await asyncio.to_thread(seed_cases, setup.db_path, template, due_times)
        clock = WallClock()
        log_path = setup.tmp / "service.log"
        program = [*BASELINE, name.removeprefix("burst-")] if name.startswith("burst-") else None
        with serving(setup.env, setup.port, log_path, program) as process:
            await wait_ready(setup.url, process, log_path)
            if utcnow() > burst_at:
                raise SystemExit(f"{name}: the service was ready after the burst was due: raise --lead")
            cpu = CpuSplit.start(process.pid)
            await asyncio.sleep(seconds(burst_at, utcnow()))
            burst = await login_burst(setup.url, args.logins) if name != "quiet" else None
            refs = {case.ref for case in seeded}
            await setup.requests.wait_until(
                lambda: refs <= set(TwilioLog.read(setup.requests).first_by_ref), args.settle
            )
            cpu_split = cpu.stop()
        return {
            "run": name,
            **figures(setup, seeded, clock, burst),
            "cpu": cpu_split,
            "log_problems": log_problems(log_path),
        }


def figures(
    setup: Setup, seeded: list[Seeded], clock: WallClock, burst: dict[str, Any] | None
) -> dict[str, Any]:
    """Per seeded case: step 0 due → step_fired, and due → its first Twilio request."""
    engine = sync_engine(setup.db_path)
    try:
        fired = read_step_fired(engine)
    finally:
        engine.dispose()
    twilio = TwilioLog.read(setup.requests)
    late_s = [seconds(fired[c.case_id][0], c.due_at) if c.case_id in fired else math.inf for c in seeded]
    to_twilio_s = [
        seconds(clock.at(twilio.first_by_ref[c.ref]), c.due_at)
        for c in seeded
        if c.ref in twilio.first_by_ref
    ]
    result: dict[str, Any] = {
        "due_steps": len(seeded),
        "lateness": summary_ms(late_s),
        **{f"later_than_{limit:g}_s": sum(1 for s in late_s if s > limit) for limit in LATE_S},
        "never_acted_on": sum(1 for s in late_s if math.isinf(s)),
        "due_to_first_twilio": summary_ms(to_twilio_s),
    }
    if burst is not None:
        start_s = burst.pop("started_perf_s")
        began, ended = clock.at(start_s), clock.at(start_s + burst["duration_s"])
        result["burst"] = burst
        result["due_during_burst"] = sum(1 for c in seeded if began <= c.due_at <= ended)
    return result


async def run(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {"command": shlex.join(sys.orig_argv), "runs": []}
    for name in args.runs:
        results["runs"].append(await run_once(args, name, template))
    return results


def ms(summary: dict[str, float | None]) -> str:
    cells = (summary[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
    return " / ".join("n/a" if v is None else "never" if math.isinf(v) else f"{v:.0f}" for v in cells)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"`{results['command']}`",
        "",
        "| run | logins (answers) | burst | steps due in burst "
        "| step due → fired p50 / p90 / p99 / max (ms) | > 1 s late | > 10 s late "
        "| due → first Twilio p50 / p90 / p99 / max (ms) | service CPU | other CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        burst = r.get("burst")
        answers = f"{burst['logins']} ({json.dumps(burst['statuses'])})" if burst else "none"
        took = f"{burst['duration_s']:.2f} s" if burst else "-"
        lines.append(
            f"| {r['run']} | {answers} | {took} | {r.get('due_during_burst', '-')} of {r['due_steps']} "
            f"| {ms(r['lateness'])} | {r['later_than_1_s']} | {r['later_than_10_s']} "
            f"| {ms(r['due_to_first_twilio'])} | {r['cpu']['service_cpu_s']:.1f} s "
            f"| {r['cpu']['other_cpu_s']:.1f} s |"
        )
    problems = {r["run"]: r["log_problems"] for r in results["runs"] if r["log_problems"]}
    lines += ["", f"service log warnings/errors: {json.dumps(problems) if problems else 'none'}"]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="which runs, in order (default all)")
    add("--logins", type=int, default=150, help="parallel logins in the burst (default 150)")
    add("--due-steps", type=int, default=16, help="cases whose step 0 falls due during it (default 16)")
    add("--window", type=float, default=2.5, help="seconds over which those steps fall due (default 2.5)")
    add(
        "--burst-lead", type=float, default=0.5, help="the first step is due this long after the burst starts"
    )
    add("--lead", type=float, default=8.0, help="the burst starts this long after seeding (service start-up)")
    add("--settle", type=float, default=60.0, help="give up waiting for the pages after this long (s)")
    add("--callback-delay", type=float, default=0.01, help="simulator step delay (s)")
    add("--alert", default=str(SAMPLES / "imminent-live-fr.json"), help="alert JSON template of every case")
    add("--json", action="store_true", help="print the results as JSON instead of Markdown")
    return parser.parse_args()


def main() -> int:
    return bench_main(parse_args(), run, markdown, json_safe)


if __name__ == "__main__":
    sys.exit(main())
