"""responder beside a bare baseline (issue 13, item 7): the same T+0 work, the same Twilio stand-in,
the same load, in the same run; every figure as responder / baseline.

    .venv/bin/python bench/side_by_side.py                      # 10, 20, 50 alerts/s; 10 s; 3 repeats
    .venv/bin/python bench/side_by_side.py --quick              # smoke run: 5 and 10 alerts/s, 2 s, once
    .venv/bin/python bench/side_by_side.py --rates 10,20,30,40,50 --json

The baseline is bench/baseline_service.py: aiohttp and one aiosqlite connection, verifying the
Standard Webhooks signature, committing case + event + 8 tasks + 2 pages, then sending 2 SMS through
the twilio SDK and taking their 4 signed status callbacks. For each rate and repeat, responder runs,
then the baseline (R, B, R, B...), each as its own process on a fresh SQLite database with a fresh
phone simulator in this process. Each run warms the service up with 5 alerts, lets it idle for 2 s,
then posts signed copies of the sample alert (fresh alert_id) open-loop at the rate for --seconds,
and waits until every SMS and callback is done (at most --settle s after the last send). Measured:

- first page: alert POST sent → the simulator receiving the first Messages.json create for that case
  (the SMS names the case ref; refs are read with GET /v1/cases/{id} after the CPU window); an alert
  never paged within --settle counts as infinitely late;
- CPU per alert: the service's CPU time (utime + stime of every thread, /proc/PID/stat) from the first
  send until the last callback was answered, divided by the alerts accepted;
- kept up: every alert answered 202 and had its first page within --drain s of the last send. With
  --seconds S and --drain D a run fails when the service pages less than S/(S+D) of the offered rate;
- sustained: the highest offered rate kept up, with every lower one kept up too.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from _harness import SAMPLES, SOCIAL_SECRET, bench_main
from _side_by_side_report import markdown, number, strict_json
from _side_by_side_run import SERVICES, RunPlan, run_once
from engine_load import service_version
from intake_latency import AlertMaker

# responder's imminent-risk playbook calls the first responders 1 min after T+0 if nobody accepted:
# a run must end before the first alert's call comes due, or responder would do work the baseline
# never does. Margin: the warm-up and the idle time before the load (about 3 s), the reading of refs.
VOICE_STEP_S = 60.0
VOICE_MARGIN_S = 8.0
QUICK = {"rates": [5.0, 10.0], "seconds": 2.0, "repeats": 1, "settle": 10.0}


def progress(run: dict[str, Any], repeat: int, repeats: int) -> None:
    first = run["first_page"]
    print(
        f"{run['rate_per_s']:g}/s, repeat {repeat + 1}/{repeats}, {run['service']}: "
        f"first page p50 {number(first['p50_ms'], ' ms')}, p99 {number(first['p99_ms'], ' ms')}, "
        f"CPU {number(run['cpu_ms_per_alert'], ' ms')}/alert, "
        f"{'kept up' if run['kept_up'] else 'fell behind'}",
        file=sys.stderr,
        flush=True,
    )


async def run(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    maker = AlertMaker(template, SOCIAL_SECRET)  # one maker: alert_ids never repeat across runs
    runs = []
    for rate in args.rates:
        for repeat in range(args.repeats):
            for service in SERVICES:  # interleaved: responder, then the baseline, at each step
                plan = RunPlan(service, rate, args.seconds, args.drain, args.settle, args.callback_delay)
                runs.append(await run_once(plan, maker))
                progress(runs[-1], repeat, args.repeats)
    options = {"rates": args.rates, "seconds": args.seconds, "repeats": args.repeats, "drain_s": args.drain}
    return {
        "command": shlex.join(sys.orig_argv),
        "service_version": service_version(),
        "options": options | {"settle_s": args.settle, "callback_delay_s": args.callback_delay},
        "runs": runs,
    }


def rates(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("positive alerts/s, comma-separated: 10,20,50")
    return sorted(set(values))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--rates", type=rates, default=[10.0, 20.0, 50.0], help="offered alerts/s (default 10,20,50)")
    add("--seconds", type=float, default=10.0, help="how long each run sends (default 10)")
    add("--repeats", type=int, default=3, help="runs of each service at each rate (default 3)")
    add("--drain", type=float, default=1.0, help="kept up: every first page this soon after the last send")
    add("--settle", type=float, default=30.0, help="wait for SMS and callbacks at most this long (s)")
    add("--callback-delay", type=float, default=0.01, help="simulator step delay (s)")
    add("--alert", default=str(SAMPLES / "imminent-live-fr.json"), help="alert JSON template")
    add("--quick", action="store_true", help="smoke run: --rates 5,10 --seconds 2 --repeats 1 --settle 10")
    add("--json", action="store_true", help="print every run as JSON instead of the table")
    return checked_args(parser, QUICK)


def checked_args(parser: argparse.ArgumentParser, quick: dict[str, Any]) -> argparse.Namespace:
    """Parse, apply --quick, and refuse runs that would reach responder's T+1 min call."""
    args = parser.parse_args()
    if args.quick:
        vars(args).update(quick)
    if args.repeats < 1 or args.seconds <= 0 or args.drain < 0:
        parser.error("--repeats must be at least 1, --seconds positive, --drain not negative")
    if args.seconds + args.settle > VOICE_STEP_S - VOICE_MARGIN_S:
        parser.error(
            f"--seconds + --settle must stay under {VOICE_STEP_S - VOICE_MARGIN_S:g} s: at T+"
            f"{VOICE_STEP_S:g} s responder calls, which would add work to the run's figures"
        )
    return args


def main() -> int:
    return bench_main(parse_args(), run, markdown, strict_json)


if __name__ == "__main__":
    sys.exit(main())
