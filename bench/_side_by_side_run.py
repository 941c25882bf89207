"""One run of bench/side_by_side.py: one service (responder or the baseline) on a fresh SQLite database
and a fresh phone simulator, signed alerts at a fixed rate, and what became of each of them.

Both services get the same environment (`_harness.environment`), the same simulator settings and the
same load generator (`intake_latency.send_on_timetable`); only the program started differs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _engine_common import profiling
from _harness import StampedRequests, environment, free_port, migrate, new_simulator, serving, wait_ready
from _measure import CpuSplit, log_problems, services_cpu_s, summary_ms
from intake_latency import (
    REQUEST_TIMEOUT_S,
    AlertMaker,
    PageWatch,
    Posted,
    fetch_refs,
    post_alert,
    send_on_timetable,
)

from responder.simulator import PhoneSimulator

BENCH = Path(__file__).resolve().parent
SERVICES = ("responder", "baseline")
# Whom responder pages at T+0 for the sample alert (FR-75, imminent, live): ines and ana of
# config/responder.yaml. The baseline is told to page the same two; each run reports whom it paged.
PAGED = ("+33639980001", "+33639980002")
SMS_PER_ALERT = len(PAGED)
CALLBACKS_PER_ALERT = 2 * SMS_PER_ALERT  # "sent" and "delivered" for each SMS
# The simulator's callbacks set no event this process can wait on without scanning every message at
# each one: poll instead. It ends the CPU window at most this late, while the service is idle.
DONE_POLL_S = 0.02
# Before the measured load, alerts that warm the service up (its first connections, statement caches,
# lazy imports), so that one-time costs stay out of the figures; and a bound on their wait.
WARM_UP_ALERTS = 5
WARM_UP_WAIT_S = 10.0
# Then the service's CPU while idle (its timers, its background loops), so that what the
# CPU per alert owes to them shows. Long enough for /proc's 10 ms ticks to read it to 0.5% of a core.
IDLE_S = 2.0
# BENCH_PY_SPY_DIR=dir: `py-spy record` each service over the measured window only (collapsed stacks,
# one file per service and rate), to see where its CPU per alert goes.
PROFILE_DIR = Path(os.environ["BENCH_PY_SPY_DIR"]) if os.environ.get("BENCH_PY_SPY_DIR") else None
# BENCH_DUMP_DIR=dir: each run's (seconds since its first send, first-page latency) per alert, as JSON,
# to see whether the slow first pages cluster in time.
DUMP_DIR = Path(os.environ["BENCH_DUMP_DIR"]) if os.environ.get("BENCH_DUMP_DIR") else None


@dataclass(frozen=True)
class RunPlan:
    service: str  # one of SERVICES
    rate_per_s: float
    seconds: float
    drain_s: float  # the backlog did not grow: every first page came within this of the last send
    settle_s: float  # how long after the last send to wait for every SMS and callback
    callback_delay_s: float  # the simulator's pause between two statuses of an SMS


def program_of(plan: RunPlan, db_path: Path) -> list[str] | None:
    """The command line that takes `serve --host H --port P`; None for `responder` itself."""
    if plan.service == "responder":
        return None
    baseline = BENCH / "baseline_service.py"
    return [sys.executable, str(baseline), "--database", str(db_path), "--to", ",".join(PAGED)]


async def run_once(plan: RunPlan, maker: AlertMaker) -> dict[str, Any]:
    """Start the simulator and the service, measure one run, and stop both."""
    sim, requests = new_simulator(plan.callback_delay_s)
    await sim.start()
    try:
        with tempfile.TemporaryDirectory(prefix="responder-side-by-side-") as tmp:
            port = free_port()
            url, db_path, log_path = f"http://127.0.0.1:{port}", Path(tmp) / "bench.db", Path(tmp) / "log"
            env = environment(f"sqlite+aiosqlite:///{db_path}", url, sim.url)
            sim.sms_webhook_url = f"{url}/twilio/sms"
            if plan.service == "responder":
                await asyncio.to_thread(migrate, env)  # the baseline makes its own tables
            with serving(env, port, log_path, program_of(plan, db_path)) as process:
                await wait_ready(url, process, log_path)
                result = await measure(plan, maker, url, [process.pid], sim, requests)
            result["service_log_problems"] = log_problems(log_path)
    finally:
        await sim.stop()
    return result


def work_done(sim: PhoneSimulator, alerts: int) -> bool:
    """Every alert's SMS reached Twilio and every status callback of theirs was answered (or refused).

    Cheap while the SMS still come in: the callbacks are counted only once they all have."""
    if len(sim.messages) < SMS_PER_ALERT * alerts:  # one message per create: the run sends no other
        return False
    return sum(len(m.reported) + len(m.errors) for m in sim.messages.values()) >= CALLBACKS_PER_ALERT * alerts


async def wait_for_work(sim: PhoneSimulator, alerts: int, until_s: float) -> bool:
    while not work_done(sim, alerts):
        if time.perf_counter() >= until_s:
            return False
        await asyncio.sleep(DONE_POLL_S)
    return True


async def measure(
    plan: RunPlan,
    maker: AlertMaker,
    url: str,
    pids: Sequence[int],
    sim: PhoneSimulator,
    requests: StampedRequests,
    meters: Mapping[str, Callable[[], float]] | None = None,
) -> dict[str, Any]:
    """Warm up, idle, then send on the timetable; the CPU window runs from the first measured send
    until the last callback. ``pids``: the service's processes (their CPU is summed); ``meters``:
    CPU readings of the set-up's other processes (CpuSplit)."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        warm = [await post_alert(http, url, maker) for _ in range(WARM_UP_ALERTS)]
        before = sum(p.status == 202 for p in warm)
        await wait_for_work(sim, before, time.perf_counter() + WARM_UP_WAIT_S)
        idle_from_s = services_cpu_s(pids)
        await asyncio.sleep(IDLE_S)
        idle_cpu_s = services_cpu_s(pids) - idle_from_s
        cpu = CpuSplit.start(*pids, meters=meters)
        with profiling(pids[0], PROFILE_DIR, f"{plan.service}-{plan.rate_per_s:g}"):
            posted = await send_on_timetable(http, url, maker, plan.rate_per_s, plan.seconds)
            accepted = [p for p in posted if p.status == 202 and p.case_id]
            last_sent_s = max((p.sent_s for p in posted), default=time.perf_counter())
            done = await wait_for_work(sim, before + len(accepted), last_sent_s + plan.settle_s)
            work_s = time.perf_counter() - cpu.wall_s
            split = cpu.stop()
        # Read after the window: these lookups are the benchmark's, not the T+0 work measured.
        refs = await fetch_refs(http, url, [p.case_id for p in accepted if p.case_id])
    watch = PageWatch(requests, accepted, refs)
    late = late_after(watch, last_sent_s + plan.drain_s)
    if DUMP_DIR is not None:
        start_s = posted[0].sent_s if posted else 0.0
        first_s = watch.first_s
        rows = sorted(
            (sent_s - start_s, first_s.get(ref, math.inf) - sent_s) for ref, sent_s in watch.sent_s.items()
        )
        (DUMP_DIR / f"{plan.service}-{plan.rate_per_s:g}-{time.time_ns()}.json").write_text(json.dumps(rows))
    return {
        "service": plan.service,
        "rate_per_s": plan.rate_per_s,
        "seconds": plan.seconds,
        "sent": len(posted),
        "accepted": len(accepted),
        "warm_up_accepted": before,  # counted in the simulator's figures below, never in the others
        "errors": dict(Counter(p.error for p in posted if p.error)),
        "first_page": summary_ms(watch.latencies_s()),
        "late_after_drain": late,
        "kept_up": len(accepted) == len(posted) and late == 0,
        "paged_per_s_while_sending": paged_per_s(watch, posted),
        "work_done": done,
        "work_s": work_s,
        # Only a whole alert's work counts: cut short, the CPU per alert would read too low.
        "cpu_ms_per_alert": split["service_cpu_s"] * 1000 / len(accepted) if accepted and done else math.nan,
        "cpu": split,
        "idle_cpu_ms_per_s": idle_cpu_s * 1000 / IDLE_S,
        **simulator_counts(sim, requests),
    }


def late_after(watch: PageWatch, deadline_s: float) -> int:
    """Accepted alerts whose first page had not reached Twilio by ``deadline_s`` (perf_counter s)."""
    watch.scan()
    return sum(watch.first_s.get(ref, math.inf) > deadline_s for ref in watch.sent_s)


def paged_per_s(watch: PageWatch, posted: list[Posted]) -> float:
    """First pages reaching Twilio per second while alerts were being sent: the capacity, once overrun."""
    if len(posted) < 2:
        return math.nan
    start_s, end_s = posted[0].sent_s, posted[-1].sent_s
    return sum(start_s <= first_s <= end_s for first_s in watch.first_s.values()) / (end_s - start_s)


def simulator_counts(sim: PhoneSimulator, requests: StampedRequests) -> dict[str, Any]:
    creates = Counter(r.path.rsplit("/", 1)[-1] for r in requests if r.method == "POST")
    return {
        "sms_creates": creates["Messages.json"],
        "call_creates": creates["Calls.json"],
        "callbacks_answered": sum(len(m.reported) for m in sim.messages.values()),
        "callbacks_refused": sum(len(m.errors) for m in sim.messages.values()),
        "sms_to": sorted({m.to for m in sim.messages.values()}),
    }
