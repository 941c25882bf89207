"""Run 1 of bench/engine_load.py: how late due steps are acted on with 10,000 open cases."""

from __future__ import annotations

import argparse
import asyncio
import math
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from _engine_common import (
    TwilioLog,
    WallClock,
    profiling,
    scrape_lateness,
    seconds,
    spread,
    sync_roster,
    utcnow,
)
from _harness import Setup, bench_setup, serving, wait_ready
from _measure import CpuSplit, RssSampler, log_problems, read_proc, summary_ms
from _seed import Seeded, count_open, read_later_steps, read_pages, read_step_fired, seed_cases, sync_engine

from responder.engine.plan import compile_plan
from responder.engine.playbook import load_playbooks

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
PLAYBOOK = "imminent-risk"  # the default playbook, which the sample alert gets


def due_times(args: argparse.Namespace, now: datetime) -> list[datetime]:
    """``due_cases`` spread over the window from ``lead`` s on; the rest hours later (open but quiet)."""
    due = spread(now + timedelta(seconds=args.lead), args.window, args.due_cases)
    quiet = spread(now + timedelta(hours=2), 3600.0, args.open_cases - args.due_cases)
    return due + quiet


async def serve_window(setup: Setup, seeded: list[Seeded], args: argparse.Namespace) -> dict[str, Any]:
    """Start the service, let the due window and the grace pass, read /metrics and /proc, stop it."""
    log_path = setup.tmp / "service.log"
    last_due = max(s.due_at for s in seeded[: args.due_cases])
    with serving(setup.env, setup.port, log_path) as process:
        await wait_ready(setup.url, process, log_path)
        ready_at, at_ready = utcnow(), read_proc(process.pid)
        cpu = CpuSplit.start(process.pid)
        with profiling(process.pid, args.py_spy, "lateness"):
            async with RssSampler(process.pid) as rss:
                await asyncio.sleep(max(0.0, seconds(last_due, utcnow()) + args.grace))
        metrics = await scrape_lateness(setup.url)
        end = read_proc(process.pid)
        cpu_split = cpu.stop()
    return {
        "ready_before_first_due_s": seconds(seeded[0].due_at, ready_at),
        "rss_at_ready_mb": at_ready.rss_mb,
        "peak_rss_sampled_mb": rss.peak_mb,
        "vmhwm_mb": end.hwm_mb,
        "service_cpu_total_s": end.cpu_s,
        "cpu": cpu_split,
        "metrics": metrics,
        "log_problems": log_problems(log_path),
    }


def later_lateness_s(later: list[tuple[str, int, datetime]], due_at: dict[str, datetime]) -> list[float]:
    """How late steps after step 0 were acted on (due at the chain start plus the step's offset)."""
    plan = compile_plan(next(p for p in load_playbooks(PLAYBOOKS) if p.name == PLAYBOOK))
    return [
        seconds(at, due_at[case_id] + timedelta(seconds=plan.step(step).offset_s))
        for case_id, step, at in later
        if case_id in due_at
    ]


def lateness_figures(setup: Setup, seeded: list[Seeded], due_count: int, clock: WallClock) -> dict[str, Any]:
    """From the stopped service's database and the simulator's requests: per due case, how late."""
    engine = sync_engine(setup.db_path)
    try:
        fired, pages, still_open = read_step_fired(engine), read_pages(engine), count_open(engine)
        later = read_later_steps(engine)
    finally:
        engine.dispose()
    due, quiet = seeded[:due_count], seeded[due_count:]
    twilio = TwilioLog.read(setup.requests)
    late_s, to_twilio_s, due_to_twilio_s = [], [], []
    for case in due:
        times = fired.get(case.case_id)
        late_s.append(seconds(times[0], case.due_at) if times else math.inf)
        first = twilio.first_by_ref.get(case.ref)
        if first is not None:
            due_to_twilio_s.append(seconds(clock.at(first), case.due_at))
            if times:
                to_twilio_s.append(seconds(clock.at(first), times[0]))
    return {
        "due_cases": len(due),
        "open_cases_seeded": len(seeded),
        "lateness": summary_ms(late_s),
        "early": sum(1 for s in late_s if s < 0),
        "never_acted_on": sum(1 for s in late_s if math.isinf(s)),
        "acted_on_twice": sum(1 for c in due if len(fired.get(c.case_id, [])) > 1),
        "quiet_cases_fired": sum(1 for c in quiet if c.case_id in fired),
        "step_fired_to_first_twilio": summary_ms(to_twilio_s),
        "due_to_first_twilio": summary_ms(due_to_twilio_s),
        "due_cases_without_twilio_request": len(due) - len(due_to_twilio_s),
        "pages_written": len(pages),
        "later_steps_fired": dict(Counter(step for _, step, _ in later)),
        "later_steps_lateness": summary_ms(later_lateness_s(later, {c.case_id: c.due_at for c in due})),
        "open_cases_at_end": still_open,
    }


async def run_lateness(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    """Seed, serve through the window, then measure from the database, the simulator and /metrics."""
    async with bench_setup(args.callback_delay) as setup:
        await sync_roster(setup)
        seed_started = utcnow()
        seeded = await asyncio.to_thread(seed_cases, setup.db_path, template, due_times(args, seed_started))
        seed_s, clock = seconds(utcnow(), seed_started), WallClock()
        served = await serve_window(setup, seeded, args)
        figures = lateness_figures(setup, seeded, args.due_cases, clock)
        return {
            "window_s": args.window,
            "grace_s": args.grace,
            "seed_s": seed_s,
            **figures,
            **served,
            "sim_callback_failures": sum(len(m.errors) for m in setup.sim.messages.values()),
        }
