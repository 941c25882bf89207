"""Two replicas against one on PostgreSQL (issue 13): do two `responder serve` processes on one database
take more alerts than one, where the machine has cores to spare?

    .venv/bin/python bench/replicas.py                          # 25, 50, 75, 100 alerts/s; 10 s; 3 repeats
    .venv/bin/python bench/replicas.py --quick                  # smoke run: 5 and 10 alerts/s, 2 s, once
    .venv/bin/python bench/replicas.py --rates 40,80,120,160 --json

For each rate and repeat, two replicas run, then one (2, 1, 2, 1...). Each run has a fresh PostgreSQL
database (created on --pg, dropped after), migrated once, and a fresh phone simulator in this process.
The replicas share the database and sit behind bench/_proxy.py, a round-robin HTTP proxy in its own
process; it is also the public URL they give Twilio, so the status callbacks are shared out too. The
single replica sits behind the same proxy, so that the ratio is the second replica's alone. Then the
run is bench/side_by_side.py's: 5 warm-up alerts, 2 s idle, signed alerts open-loop at the rate for
--seconds, and a wait until every SMS and callback is done (at most --settle s). Measured:

- first page: alert POST sent → the simulator receiving the first Messages.json create for that case;
- kept up: every alert answered 202 and had its first page within --drain s of the last send;
- first pages/s while sending: at a rate a set-up cannot keep up with, its paging capacity;
- CPU per alert: utime + stime (/proc) from the first send until the last callback, divided by the
  alerts accepted, for the replicas summed, for the proxy, and for the PostgreSQL backends serving
  this run's database (not the server's shared WAL writer and checkpointer);
- the whole machine's CPU in cores over that window: how many of its cores were left to spare.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from _harness import SAMPLES, SOCIAL_SECRET, bench_main
from _replicas_report import markdown
from _replicas_run import SETUPS, run_once
from _side_by_side_report import strict_json
from _side_by_side_run import RunPlan
from engine_load import service_version
from intake_latency import AlertMaker
from side_by_side import checked_args, progress, rates

QUICK = {"rates": [5.0, 10.0], "seconds": 2.0, "repeats": 1, "settle": 10.0}
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"  # the tests' default (tests/conftest.py)


async def run(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    maker = AlertMaker(template, SOCIAL_SECRET)  # one maker: alert_ids never repeat across runs
    runs = []
    for rate in args.rates:
        for repeat in range(args.repeats):
            for setup in SETUPS:  # interleaved: two replicas, then one, at each step
                plan = RunPlan(setup, rate, args.seconds, args.drain, args.settle, args.callback_delay)
                runs.append(await run_once(plan, maker, args.pg))
                progress(runs[-1], repeat, args.repeats)
    options = {"rates": args.rates, "seconds": args.seconds, "repeats": args.repeats, "drain_s": args.drain}
    return {
        "command": shlex.join(sys.orig_argv),
        "service_version": service_version(),
        "options": options | {"settle_s": args.settle, "callback_delay_s": args.callback_delay},
        "runs": runs,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--rates", type=rates, default=[25.0, 50.0, 75.0, 100.0], help="offered alerts/s (25,50,75,100)")
    add("--seconds", type=float, default=10.0, help="how long each run sends (default 10)")
    add("--repeats", type=int, default=3, help="runs of each set-up at each rate (default 3)")
    add("--drain", type=float, default=1.0, help="kept up: every first page this soon after the last send")
    add("--settle", type=float, default=30.0, help="wait for SMS and callbacks at most this long (s)")
    add("--callback-delay", type=float, default=0.01, help="simulator step delay (s)")
    add("--alert", default=str(SAMPLES / "imminent-live-fr.json"), help="alert JSON template")
    add(
        "--pg",
        default=os.environ.get("RESPONDER_TEST_PG", PG_ADMIN_DSN),
        help="PostgreSQL admin DSN, to create and drop each run's database (default $RESPONDER_TEST_PG, "
        f"else {PG_ADMIN_DSN})",
    )
    add("--quick", action="store_true", help="smoke run: --rates 5,10 --seconds 2 --repeats 1 --settle 10")
    add("--json", action="store_true", help="print every run as JSON instead of the table")
    return checked_args(parser, QUICK)


def main() -> int:
    return bench_main(parse_args(), run, markdown, strict_json)


if __name__ == "__main__":
    sys.exit(main())
