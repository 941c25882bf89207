"""Engine benchmark (PRODUCT.md §7): due steps with 10,000 open cases, and kill -9 + restart.

    .venv/bin/python bench/engine_load.py                    # both runs, about 3 minutes
    .venv/bin/python bench/engine_load.py --run lateness --due-cases 1000 --window 60
    .venv/bin/python bench/engine_load.py --run restart --overdue 1000 --kill-on twilio --json

Each run seeds a fresh SQLite database directly (Core bulk inserts of rows as `Intake._build` makes
them, on the imminent-risk playbook) before `responder serve` starts on it; Twilio is the phone
simulator in this process. Lateness and firing times are read from the service's own `case_event` rows.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from _engine_report import markdown
from _harness import ROOT, SAMPLES, bench_main
from _lateness_run import run_lateness
from _report import json_safe
from _restart_run import run_restart


def service_version() -> str:
    """The commit under test, and whether responder/ has uncommitted changes (others edit it meanwhile)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "responder"], capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes in responder/" if dirty.stdout.strip() else "")


async def run(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {"command": shlex.join(sys.orig_argv), "service_version": service_version()}
    if args.run in ("both", "lateness"):
        results["lateness"] = await run_lateness(args, template)
    if args.run in ("both", "restart"):
        results["restart"] = await run_restart(args, template)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--run", choices=["both", "lateness", "restart"], default="both")
    add("--open-cases", type=int, default=10_000, help="open cases in the database (default 10000)")
    add("--due-cases", type=int, default=1000, help="lateness: cases whose step 0 falls due in the window")
    add("--window", type=float, default=60.0, help="lateness: seconds over which they fall due (default 60)")
    add("--lead", type=float, default=15.0, help="lateness: first due time, s after seeding starts")
    add("--grace", type=float, default=5.0, help="lateness: service keeps running this long after the window")
    add("--overdue", type=int, default=1000, help="restart: cases already due when the service starts")
    add("--overdue-span", type=float, default=30.0, help="restart: they fell due over the last N s")
    add(
        "--kill-on",
        choices=["step_fired", "twilio"],
        default="step_fired",
        help="restart: what --kill-at counts",
    )
    add(
        "--kill-at",
        type=float,
        default=0.5,
        help="restart: kill -9 once this share of overdue cases is there",
    )
    add("--settle", type=float, default=60.0, help="restart: give up waiting for firing/paging after N s")
    add("--poll", type=float, default=0.05, help="restart: database poll interval (s)")
    add("--kill-poll", type=float, default=0.01, help="restart: poll interval while waiting to kill (s)")
    add("--callback-delay", type=float, default=0.01, help="simulator step delay (s)")
    add("--alert", default=str(SAMPLES / "imminent-live-fr.json"), help="alert JSON template of every case")
    add("--py-spy", type=Path, default=None, help="py-spy profiles of the service go here")
    add("--json", action="store_true", help="print the results as JSON instead of Markdown")
    args = parser.parse_args()
    if not 0 <= args.due_cases <= args.open_cases or not 0 <= args.overdue <= args.open_cases:
        parser.error("--due-cases and --overdue must be between 0 and --open-cases")
    return args


def main() -> int:
    return bench_main(parse_args(), run, markdown, json_safe)


if __name__ == "__main__":
    sys.exit(main())
