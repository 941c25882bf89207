"""The intake benchmark's results as a Markdown table (targets beside them) or as strict JSON."""

from __future__ import annotations

import json
import math
from typing import Any


def json_safe(value: Any) -> Any:
    """Results as strict JSON: an infinite latency (a case not paged) becomes null."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    return None if isinstance(value, float) and math.isinf(value) else value


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or math.isinf(value):
        return "n/a" if value is None else "not paged"
    return f"{value:.{digits}f}{unit}"


def cpu_share(cpu_s: float, wall_s: float) -> str:
    """CPU seconds, and as a share of one core over the wall time."""
    return f"{cpu_s:.1f} s in {wall_s:.1f} s ({cpu_s / wall_s:.0%} of a core)"


def latency_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    first, response = result["first_twilio"], result["response"]
    return [
        ("alerts sent / 202", f"{result['sent']} / {result['accepted']}", ""),
        ("alert → first Twilio request p50", fmt(first["p50_ms"], " ms"), ""),
        ("alert → first Twilio request p90", fmt(first["p90_ms"], " ms"), ""),
        ("alert → first Twilio request p99", fmt(first["p99_ms"], " ms"), "≤ 50 ms at 50 alerts/s"),
        ("alert → first Twilio request max", fmt(first["max_ms"], " ms"), ""),
        (
            f"alerts not paged {result['grace_s']:g} s after the last send",
            str(result["unpaged_after_grace"]),
            "0",
        ),
        ("… still not paged after the closed-loop run", str(result.get("unpaged_at_end", "n/a")), "0"),
        ("SMS creates reaching Twilio while sending", str(result["sms_creates_while_sending"]), ""),
        ("POST errors", json.dumps(result["errors"]) if result["errors"] else "0", "0"),
        ("POST response p50 / p99", f"{fmt(response['p50_ms'])} / {fmt(response['p99_ms'], ' ms')}", ""),
        ("latest send vs timetable", fmt(result["max_send_late_ms"], " ms"), ""),
        (
            "service CPU (sending + waiting for pages)",
            cpu_share(result["service_cpu_s"], result["elapsed_s"]),
            "",
        ),
    ]


def throughput_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    response = result["response"]
    return [
        ("accepted alerts/s (202)", fmt(result["accepted_per_s"], "/s"), "≥ 500/s on 2 cores"),
        ("alerts accepted in window", f"{result['accepted']} in {result['seconds']} s", ""),
        ("errors", json.dumps(result["errors"]) if result["errors"] else "0", "0"),
        ("response p50 / p99", f"{fmt(response['p50_ms'])} / {fmt(response['p99_ms'], ' ms')}", ""),
        ("SMS creates reaching Twilio in window", str(result["sms_creates_in_window"]), ""),
        ("service CPU", cpu_share(result["service_cpu_s"], result["seconds"]), ""),
        (
            "service peak RSS (sampled / VmHWM)",
            f"{result['service_peak_rss_mb']:.0f} / {result['service_vmhwm_mb']:.0f} MB",
            "≤ 200 MB",
        ),
    ]


def markdown(results: dict[str, Any]) -> str:
    lines = [f"`{results['command']}`", "", "| measure | result | target |", "|---|---|---|"]
    if "latency" in results:
        lat = results["latency"]
        lines.append(f"| **open loop, {lat['rate_per_s']:g} alerts/s for {lat['seconds']:g} s** | | |")
        lines += [f"| {a} | {b} | {c} |" for a, b, c in latency_rows(lat)]
    if "throughput" in results:
        lines.append(f"| **closed loop, {results['throughput']['clients']} clients** | | |")
        lines += [f"| {a} | {b} | {c} |" for a, b, c in throughput_rows(results["throughput"])]
    problems = results["service_log_problems"]
    lines.append(f"| service log warnings/errors | {json.dumps(problems) if problems else 'none'} | |")
    lines.append(f"| simulator status callbacks refused | {results['sim_callback_failures']} | 0 |")
    cpu = results["cpu"]
    lines.append(f"| CPU while measuring ({cpu['wall_s']:.0f} s): service | {cpu['service_cpu_s']:.1f} s | |")
    lines.append(f"| CPU: this process (load + simulator) | {cpu['bench_process_cpu_s']:.1f} s | |")
    lines.append(
        f"| CPU: other processes on the machine | {cpu['other_cpu_s']:.1f} s | ≈ 0 (quiet machine) |"
    )
    return "\n".join(lines)
