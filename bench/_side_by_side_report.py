"""bench/side_by_side.py's runs as one Markdown table: responder, the baseline and their ratio per
measure, each the median of the repeats with their spread (min to max); and whatever went wrong."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from _side_by_side_run import PAGED, SERVICES

Run = dict[str, Any]
# measure, how to read it from one run, unit
Measure = tuple[str, Callable[[Run], float], str]
MEASURES: tuple[Measure, ...] = (
    ("first page p50", lambda r: r["first_page"]["p50_ms"], " ms"),
    ("first page p99", lambda r: r["first_page"]["p99_ms"], " ms"),
    ("CPU per alert", lambda r: r["cpu_ms_per_alert"], " ms"),
    ("first pages/s while sending", lambda r: r["paged_per_s_while_sending"], "/s"),
)


def number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "not paged"
    size = abs(round(value, 2))  # 9.996 is shown as 10.0, not 10.00
    digits = 0 if size >= 100 else 1 if size >= 10 else 2
    return f"{value:.{digits}f}{unit}"


def spread(values: Sequence[float | None], unit: str) -> str:
    """The median, and (min to max) when they differ."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return "n/a"
    middle = number(statistics.median(known), unit)
    low, high = number(min(known), ""), number(max(known), unit)
    return middle if low == number(max(known), "") else f"{middle} ({low} to {high})"


def ratios(pairs: Sequence[tuple[float | None, float | None]]) -> list[float]:
    """First / second of each interleaved pair (responder / baseline; both finite, the second not 0)."""
    return [
        r / b
        for r, b in pairs
        if r is not None and b is not None and math.isfinite(r) and math.isfinite(b) and b > 0
    ]


def ratio_cell(pairs: Sequence[tuple[float | None, float | None]]) -> str:
    found = ratios(pairs)
    if not found:
        return "n/a"
    middle = f"{statistics.median(found):.2f}x"
    low, high = f"{min(found):.2f}", f"{max(found):.2f}"
    return middle if low == high else f"{middle} ({low} to {high})"


def strict_json(value: Any) -> Any:
    """Results as strict JSON: an infinite latency (never paged) or an undefined figure becomes null."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strict_json(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def grouped(runs: Sequence[Run]) -> dict[tuple[float, str], list[Run]]:
    """(rate, service) → its runs, in the order they ran (repeat 1 first)."""
    cells: dict[tuple[float, str], list[Run]] = {}
    for run in runs:
        cells.setdefault((run["rate_per_s"], run["service"]), []).append(run)
    return cells


def highest_kept_up(
    cells: dict[tuple[float, str], list[Run]], rates: Sequence[float], service: str
) -> list[float | None]:
    """Per repeat, the highest offered rate kept up, with every lower rate kept up too (None: not even
    the lowest)."""
    repeats = min(len(cells[rate, service]) for rate in rates)
    found: list[float | None] = []
    for repeat in range(repeats):
        best = None
        for rate in sorted(rates):
            if not cells[rate, service][repeat]["kept_up"]:
                break
            best = rate
        found.append(best)
    return found


def sustained_text(value: float | None, rates: Sequence[float]) -> str:
    if value is None:
        return f"< {min(rates):g}"
    return f">= {value:g}" if value == max(rates) else f"{value:g}"


def bracket(value: float | None, rates: Sequence[float]) -> tuple[float, float]:
    """The true sustained rate lies between the rate kept up and the next rate of the ladder, which
    was not (0 when not even the lowest was; infinite when the top one was)."""
    ladder = sorted(rates)
    if value is None:
        return 0.0, ladder[0]
    higher = [rate for rate in ladder if rate > value]
    return value, higher[0] if higher else math.inf


def sustained_ratio(ours: float | None, theirs: float | None, rates: Sequence[float]) -> str:
    """The range of responder / baseline that the two brackets allow."""
    our_low, our_high = bracket(ours, rates)
    their_low, their_high = bracket(theirs, rates)
    low = our_low / their_high  # 0 when the baseline kept up at the top rate
    high = our_high / their_low if their_low else math.inf
    if low == 0 and math.isinf(high):
        return "n/a"
    if math.isinf(high):
        return f">= {low:.2f}"
    return f"< {high:.2f}" if low == 0 else f"{low:.2f} to < {high:.2f}"


def rate_rows(
    ours: Sequence[Run], theirs: Sequence[Run], rate: float, drain_s: float, measures: Sequence[Measure]
) -> list[str]:
    rows = []
    for name, read, unit in measures:
        pairs = list(zip(map(read, ours), map(read, theirs), strict=False))
        shown = spread([read(r) for r in ours], unit), spread([read(r) for r in theirs], unit)
        rows.append(f"| {name} | {rate:g}/s | {shown[0]} | {shown[1]} | {ratio_cell(pairs)} |")
    kept = [f"{sum(r['kept_up'] for r in side)} of {len(side)}" for side in (ours, theirs)]
    measure = f"kept up (every first page <= {drain_s:g} s after the last send)"
    rows.append(f"| {measure} | {rate:g}/s | {kept[0]} | {kept[1]} | |")
    return rows


def table(
    runs: Sequence[Run],
    rates: Sequence[float],
    drain_s: float,
    sides: Sequence[str] = SERVICES,
    measures: Sequence[Measure] = MEASURES,
) -> list[str]:
    """One row per measure and rate: ``sides[0]``, ``sides[1]`` and their ratio; then the sustained
    rate, the idle CPU and the machine's noise."""
    cells = grouped(runs)
    first, second = sides
    lines = [f"| measure | offered | {first} | {second} | {first} / {second} |", "|---|---|---|---|---|"]
    for rate in rates:
        lines += rate_rows(cells[rate, first], cells[rate, second], rate, drain_s, measures)
    ours, theirs = (highest_kept_up(cells, rates, service) for service in sides)
    shown = [", ".join(sustained_text(v, rates) for v in side) for side in (ours, theirs)]
    ratio = ", ".join(dict.fromkeys(sustained_ratio(r, b, rates) for r, b in zip(ours, theirs, strict=False)))
    lines.append(f"| sustained alerts/s (highest rate kept up) | | {shown[0]} | {shown[1]} | {ratio} |")
    idle = [spread([r["idle_cpu_ms_per_s"] for r in runs if r["service"] == s], " ms") for s in sides]
    lines.append(f"| CPU per second while idle, before the load | | {idle[0]} | {idle[1]} | |")
    other = [spread([r["cpu"]["other_cpu_s"] for r in runs if r["service"] == s], " s") for s in sides]
    lines.append(f"| other processes' CPU per run (machine noise) | | {other[0]} | {other[1]} | |")
    return lines


def problems(runs: Sequence[Run]) -> list[str]:
    """What would make a run's figures mean less than they say."""
    found = []
    for run in runs:
        name = f"{run['service']} at {run['rate_per_s']:g}/s"
        if run["errors"]:
            found.append(f"{name}: POST errors {run['errors']}")
        if not run["work_done"]:
            found.append(f"{name}: SMS or callbacks still missing when the wait ended")
        if run["call_creates"]:
            found.append(f"{name}: {run['call_creates']} calls placed (a later step came due)")
        if run["callbacks_refused"]:
            found.append(f"{name}: {run['callbacks_refused']} status callbacks refused")
        if run["sms_to"] and run["sms_to"] != sorted(PAGED):
            found.append(f"{name}: paged {run['sms_to']}, not {sorted(PAGED)}")
        if run["service_log_problems"]:
            found.append(f"{name}: service log {run['service_log_problems']}")
    return found


def markdown(results: dict[str, Any]) -> str:
    options = results["options"]
    lines = [
        f"`{results['command']}`",
        "",
        f"{results['service_version']}; {len(results['runs'])} runs of {options['seconds']:g} s, "
        "responder and the baseline interleaved. Each cell: the median of the repeats (min to max).",
        "",
        *table(results["runs"], options["rates"], options["drain_s"]),
    ]
    found = problems(results["runs"])
    lines += ["", "Problems: none" if not found else "Problems:", *(f"- {p}" for p in found)]
    return "\n".join(lines)
