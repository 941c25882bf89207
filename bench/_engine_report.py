"""bench/engine_load.py's results as Markdown tables, targets beside them."""

from __future__ import annotations

import json
from typing import Any

from _report import fmt

Row = tuple[str, str, str]


def spread_ms(summary: dict[str, float | None]) -> str:
    """p50 / p90 / p99 / max in ms."""
    keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
    return " / ".join(fmt(summary[k], digits=1) for k in keys) + " ms"


def spread_s(summary: dict[str, float | None]) -> str:
    """p50 / p99 / max, from ms to s."""
    values = [summary[k] for k in ("p50_ms", "p99_ms", "max_ms")]
    return " / ".join(fmt(v / 1000 if v is not None else None, digits=2) for v in values) + " s"


def cpu_rows(cpu: dict[str, float], prefix: str = "") -> list[Row]:
    share = cpu["service_cpu_s"] / cpu["wall_s"] if cpu["wall_s"] else 0.0
    return [
        (
            f"{prefix}service CPU",
            f"{cpu['service_cpu_s']:.1f} s in {cpu['wall_s']:.1f} s ({share:.0%} of a core)",
            "",
        ),
        (f"{prefix}CPU of other processes on the machine", f"{cpu['other_cpu_s']:.1f} s", "≈ 0 (quiet)"),
    ]


def lateness_rows(r: dict[str, Any]) -> list[Row]:
    return [
        (
            "open cases / due in the window",
            f"{r['open_cases_seeded']} / {r['due_cases']} over {r['window_s']:g} s",
            "",
        ),
        ("step 0 due → step_fired, p50 / p90 / p99 / max", spread_ms(r["lateness"]), "p99 ≤ 100 ms"),
        (
            "due cases never acted on / acted on twice",
            f"{r['never_acted_on']} / {r['acted_on_twice']}",
            "0 / 0",
        ),
        ("quiet cases (due hours later) acted on", str(r["quiet_cases_fired"]), "0"),
        ("step_fired → first Twilio request", spread_ms(r["step_fired_to_first_twilio"]), ""),
        ("step 0 due → first Twilio request", spread_ms(r["due_to_first_twilio"]), ""),
        ("later steps fired (step: count)", json.dumps(r["later_steps_fired"]), ""),
        ("later steps due → step_fired", spread_ms(r["later_steps_lateness"]), "p99 ≤ 100 ms"),
        ("/metrics responder_step_lateness_seconds", metrics_line(r["metrics"]), ""),
        ("service RSS at ready / peak sampled / VmHWM", memory_line(r), "≤ 200 MB"),
        *cpu_rows(r["cpu"]),
        ("service log warnings/errors", json.dumps(r["log_problems"]) if r["log_problems"] else "none", ""),
    ]


def metrics_line(metrics: dict[str, float]) -> str:
    """Observations at or under 10, 50, 100 and 250 ms, of the total."""
    total = metrics.get("count", 0.0)
    parts = [
        f"≤{int(float(le) * 1000)} ms: {metrics.get(f'le {le}', 0):.0f}"
        for le in ("0.01", "0.05", "0.1", "0.25")
    ]
    return f"{', '.join(parts)} of {total:.0f}"


def memory_line(r: dict[str, Any]) -> str:
    return f"{r['rss_at_ready_mb']:.0f} / {r['peak_rss_sampled_mb']:.0f} / {r['vmhwm_mb']:.0f} MB"


def start_rows(r: dict[str, Any], prefix: str) -> list[Row]:
    listening = r["listening_after_spawn_s"]
    to_last = r["listening_to_last_step_fired_s"]
    return [
        (f"{prefix}spawn → service_listening", fmt(listening, " s", 2), ""),
        (f"{prefix}step_fired after this start (cases)", str(r["fired_after_this_start"]), ""),
        (f"{prefix}spawn → step_fired p50 / p99 / max", spread_s(r["spawn_to_step_fired"]), "≤ 2 s"),
        (f"{prefix}service_listening → last step_fired", fmt(to_last, " s", 2), "≤ 2 s"),
        (
            f"{prefix}spawn → step_fired seen committed (poll)",
            spread_s(r["spawn_to_step_fired_seen_committed"]),
            "",
        ),
        (f"{prefix}paged (first SMS) after this start (cases)", str(r["paged_after_this_start"]), ""),
        (f"{prefix}spawn → first Twilio request p50 / p99 / max", spread_s(r["spawn_to_first_twilio"]), ""),
        (f"{prefix}service VmHWM", f"{r['vmhwm_mb']:.0f} MB", "≤ 200 MB"),
        *cpu_rows(r["cpu"], prefix),
    ]


def check_rows(c: dict[str, Any], prefix: str) -> list[Row]:
    return [
        (
            f"{prefix}step_fired events per case (count: cases)",
            json.dumps(c["step_fired_per_case"]),
            '{"1": all}',
        ),
        (
            f"{prefix}step-0 pages per case (count: cases)",
            json.dumps(c["step0_pages_per_case"]),
            '{"2": all}',
        ),
        (f"{prefix}cases missing a page their step named", str(c["cases_missing_a_page"]), "0"),
        (
            f"{prefix}Twilio creates per step-0 page (count: pages)",
            json.dumps(c["twilio_creates_per_step0_page"]),
            '{"1": all}',
        ),
        (f"{prefix}step-0 page status at the end", json.dumps(c["step0_page_status"]), ""),
        (f"{prefix}quiet cases acted on", str(c["quiet_cases_fired"]), "0"),
    ]


def kill_rows(r: dict[str, Any]) -> list[Row]:
    life = r["first_life"]
    when = f"{life['kill_target']} cases counted by {life['kill_on']}"
    return [
        ("kill -9 when", f"{when}, {life['killed_after_spawn_s']:.2f} s after spawn", ""),
        ("at the kill: step_fired / paged cases", f"{life['fired_at_kill']} / {life['paged_at_kill']}", ""),
        ("at the kill: step-0 page status", json.dumps(life["page_status_at_kill"]), ""),
        ("at the kill: Twilio create requests received", str(life["twilio_creates_at_kill"]), ""),
        *start_rows(r["after_restart"], "restart: "),
        *check_rows(r["check"], "end: "),
        ("simulator status callbacks refused (service down)", str(r["sim_callback_failures"]), ""),
    ]


def table(title: str, rows: list[Row]) -> list[str]:
    return [f"| **{title}** | | |", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]


def markdown(results: dict[str, Any]) -> str:
    lines = [f"`{results['command']}` on {results['service_version']}", "", "| measure | result | target |"]
    lines.append("|---|---|---|")
    if "lateness" in results:
        lines += table("step lateness, 10,000 open cases", lateness_rows(results["lateness"]))
    if "restart" in results:
        restart = results["restart"]
        title = f"start with {restart['overdue']} of {restart['open_cases']} open cases overdue"
        clean = restart["clean_start"]
        lines += table(title, start_rows(clean, "") + check_rows(clean["check"], ""))
        lines += table("kill -9 mid-firing, then restart", kill_rows(restart["kill_restart"]))
    return "\n".join(lines)
