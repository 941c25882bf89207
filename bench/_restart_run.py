"""Run 2 of bench/engine_load.py: overdue steps at start-up, then kill -9 mid-firing and restart.

Each scenario has its own fresh database and simulator. Its service logs at info level, because
`service_listening` is an info line.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from _engine_common import (
    RefWatch,
    TwilioLog,
    WallClock,
    logged_at,
    profiling,
    seconds,
    spread,
    sync_roster,
    utcnow,
    wait_for,
)
from _harness import Setup, bench_setup, serving
from _measure import CpuSplit, log_problems, read_proc, summary_ms
from _seed import Seeded, fired_ids, read_pages, read_step_fired, seed_cases, step_people, sync_engine
from sqlalchemy import Engine

UNSENT = ("pending", "claimed")


def overdue_times(args: argparse.Namespace, now: datetime) -> list[datetime]:
    """``overdue`` cases due over the last ``overdue_span`` s; the rest hours later (open but quiet)."""
    overdue = spread(now - timedelta(seconds=args.overdue_span), args.overdue_span - 1.0, args.overdue)
    quiet = spread(now + timedelta(hours=2), 3600.0, args.open_cases - args.overdue)
    return overdue + quiet


@dataclass
class Scenario:
    """A seeded database with its simulator; ``overdue`` are the cases whose step 0 is already due."""

    setup: Setup
    engine: Engine
    overdue: list[Seeded]
    refs: RefWatch
    clock: WallClock
    # When this process first saw each case's step_fired event committed (poll resolution).
    seen_fired: dict[str, datetime] = field(default_factory=dict)

    async def fired(self) -> int:
        ids = await asyncio.to_thread(fired_ids, self.engine)
        now = utcnow()
        for case_id in ids - self.seen_fired.keys():
            self.seen_fired[case_id] = now
        return len(ids)

    async def all_fired(self) -> bool:
        return await self.fired() >= len(self.overdue)

    async def all_sent(self) -> bool:
        pages = await asyncio.to_thread(read_pages, self.engine)
        return not any(p.step == 0 and p.status in UNSENT for p in pages)

    def all_paged(self) -> bool:
        return self.refs.count() >= len(self.overdue)


async def prepare(setup: Setup, args: argparse.Namespace, template: dict[str, Any]) -> Scenario:
    await sync_roster(setup)
    seeded = await asyncio.to_thread(seed_cases, setup.db_path, template, overdue_times(args, utcnow()))
    overdue = seeded[: args.overdue]
    refs = RefWatch(setup.requests, {s.ref for s in overdue})
    return Scenario(setup, sync_engine(setup.db_path), overdue, refs, WallClock())


def timings(scenario: Scenario, spawned: datetime, listening: datetime | None) -> dict[str, Any]:
    """Per overdue case: spawn → step_fired and spawn → first Twilio request (SMS naming its ref)."""
    fired = read_step_fired(scenario.engine)
    first = TwilioLog.read(scenario.setup.requests).first_by_ref
    fire_s = [
        seconds(fired[c.case_id][0], spawned) if c.case_id in fired else math.inf for c in scenario.overdue
    ]
    twilio_s = [
        seconds(scenario.clock.at(first[c.ref]), spawned) if c.ref in first else math.inf
        for c in scenario.overdue
    ]
    seen = scenario.seen_fired
    seen_s = [seconds(seen[c.case_id], spawned) for c in scenario.overdue if c.case_id in seen]
    after = [s for s in fire_s if s >= 0]
    listening_s = seconds(listening, spawned) if listening else None
    return {
        "listening_after_spawn_s": listening_s,
        "listening_to_last_step_fired_s": max(after) - listening_s if after and listening_s else None,
        "spawn_to_step_fired": summary_ms(after),
        "fired_after_this_start": len(after),
        "spawn_to_step_fired_seen_committed": summary_ms([s for s in seen_s if s >= 0]),
        "spawn_to_first_twilio": summary_ms([s for s in twilio_s if s >= 0]),
        "paged_after_this_start": sum(1 for s in twilio_s if s >= 0),
        "never_fired": sum(1 for s in fire_s if math.isinf(s)),
        "never_paged": sum(1 for s in twilio_s if math.isinf(s)),
    }


async def serve_until_done(scenario: Scenario, args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Start the service; wait until every overdue case fired, was paged and its pages were answered."""
    setup = scenario.setup
    log_path = setup.tmp / f"{name}.log"
    spawned = utcnow()
    with serving(setup.env, setup.port, log_path) as process, profiling(process.pid, args.py_spy, name):
        cpu = CpuSplit.start(process.pid)
        fired = await wait_for(scenario.all_fired, args.settle, args.poll)
        paged = await setup.requests.wait_until(scenario.all_paged, args.settle)
        sent = await wait_for(scenario.all_sent, args.settle, args.poll)
        end, cpu_split = read_proc(process.pid), cpu.stop()
    return {
        **timings(scenario, spawned, logged_at(log_path, "service_listening")),
        "all_fired_in_time": fired,
        "all_paged_in_time": paged,
        "all_sent_in_time": sent,
        "vmhwm_mb": end.hwm_mb,
        "cpu": cpu_split,
        "log_problems": log_problems(log_path),
    }


async def serve_until_kill(scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    """Start the service and kill -9 it once ``kill_at`` of the overdue cases fired (or were paged)."""
    setup = scenario.setup
    target: int = math.ceil(args.kill_at * len(scenario.overdue))
    log_path = setup.tmp / "service-1.log"
    spawned = utcnow()
    with serving(setup.env, setup.port, log_path) as process:
        if args.kill_on == "step_fired":

            async def reached() -> bool:
                return await scenario.fired() >= target

            hit = await wait_for(reached, args.settle, args.kill_poll)
        else:
            hit = await setup.requests.wait_until(lambda: scenario.refs.count() >= target, args.settle)
        process.kill()
        process.wait()
        killed = utcnow()
    pages = await asyncio.to_thread(read_pages, scenario.engine)
    return {
        "kill_on": args.kill_on,
        "kill_target": target,
        "target_reached": hit,
        "killed_after_spawn_s": seconds(killed, spawned),
        "fired_at_kill": await scenario.fired(),
        "paged_at_kill": scenario.refs.count(),
        "page_status_at_kill": dict(Counter(p.status for p in pages if p.step == 0)),
        "twilio_creates_at_kill": len(setup.requests),
    }


def verify(scenario: Scenario) -> dict[str, Any]:
    """Nothing lost, nothing twice: one step_fired per case, its pages all written, each sent once."""
    fired = read_step_fired(scenario.engine)
    people = step_people(scenario.engine)
    pages = [p for p in read_pages(scenario.engine) if p.step == 0]
    creates = TwilioLog.read(scenario.setup.requests).creates_by_page
    paged_people: dict[str, set[str]] = {}
    for page in pages:
        assert page.case_id is not None
        paged_people.setdefault(page.case_id, set()).add(page.person_id)
    ids = [c.case_id for c in scenario.overdue]
    return {
        "step_fired_per_case": dict(Counter(len(fired.get(i, [])) for i in ids)),
        "step0_pages_per_case": dict(Counter(len(paged_people.get(i, set())) for i in ids)),
        "cases_missing_a_page": sum(1 for i in ids if people.get(i, set()) - paged_people.get(i, set())),
        "step0_page_status": dict(Counter(p.status for p in pages)),
        "twilio_creates_per_step0_page": dict(Counter(creates.get(p.page_id, 0) for p in pages)),
        "quiet_cases_fired": len(fired.keys() - set(ids)),
    }


async def run_clean_start(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    async with bench_setup(args.callback_delay, log_level="info") as setup:
        scenario = await prepare(setup, args, template)
        try:
            return {**await serve_until_done(scenario, args, "service"), "check": verify(scenario)}
        finally:
            scenario.engine.dispose()


async def run_kill_restart(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    async with bench_setup(args.callback_delay, log_level="info") as setup:
        scenario = await prepare(setup, args, template)
        try:
            killed = await serve_until_kill(scenario, args)
            restarted = await serve_until_done(scenario, args, "service-2")
            return {
                "first_life": killed,
                "after_restart": restarted,
                "check": verify(scenario),
                "sim_callback_failures": sum(len(m.errors) for m in setup.sim.messages.values()),
            }
        finally:
            scenario.engine.dispose()


async def run_restart(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "open_cases": args.open_cases,
        "overdue": args.overdue,
        "overdue_span_s": args.overdue_span,
        "clean_start": await run_clean_start(args, template),
        "kill_restart": await run_kill_restart(args, template),
    }
