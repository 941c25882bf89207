"""bench/replicas.py's runs as one Markdown table: two replicas, one, and their ratio per measure
(each the median of the repeats, with their spread); and whatever went wrong. The table is
bench/_side_by_side_report.py's, with the CPU of the proxy and of the database beside the service's."""

from __future__ import annotations

from typing import Any

from _replicas_run import SETUPS
from _side_by_side_report import MEASURES, Measure, Run, problems, table


def machine_cores(run: Run) -> float:
    """The whole machine's CPU over the run's CPU window, in cores: what was left to spare."""
    cpu = run["cpu"]
    return float(cpu["machine_cpu_s"] / cpu["wall_s"]) if cpu["wall_s"] else float("nan")


first_page_p50, first_page_p99, service_cpu, paged_per_s = MEASURES
REPLICA_MEASURES: tuple[Measure, ...] = (
    first_page_p50,
    first_page_p99,
    ("CPU per alert, the replicas summed", service_cpu[1], " ms"),
    ("CPU per alert, PostgreSQL's backends", lambda r: r["postgres_cpu_ms_per_alert"], " ms"),
    ("CPU per alert, the proxy", lambda r: r["proxy_cpu_ms_per_alert"], " ms"),
    paged_per_s,
    ("the whole machine's CPU, in cores", machine_cores, " cores"),
)


def markdown(results: dict[str, Any]) -> str:
    options = results["options"]
    lines = [
        f"`{results['command']}`",
        "",
        f"{results['service_version']}; {len(results['runs'])} runs of {options['seconds']:g} s on "
        "PostgreSQL, two replicas and one interleaved, both behind the proxy. "
        "Each cell: the median of the repeats (min to max).",
        "",
        *table(results["runs"], options["rates"], options["drain_s"], tuple(SETUPS), REPLICA_MEASURES),
    ]
    found = problems(results["runs"])
    lines += ["", "Problems: none" if not found else "Problems:", *(f"- {p}" for p in found)]
    return "\n".join(lines)
