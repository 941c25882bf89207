"""Small measuring tools for benchmarks: percentiles, a process's CPU and memory, its log's problems."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
RSS_SAMPLE_S = 0.1  # how often the memory sampler reads VmRSS


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


@dataclass(frozen=True)
class ProcSample:
    """A process's CPU time used so far and its memory now (resident and peak resident)."""

    cpu_s: float
    rss_mb: float
    hwm_mb: float


def read_proc(pid: int) -> ProcSample:
    """Read /proc/PID/stat (utime + stime) and /proc/PID/status (VmRSS, VmHWM)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces: split after it
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # fields 14 and 15 of proc(5)
    memory_kb = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory_kb[key] = int(value.split()[0])
    return ProcSample(cpu_s, memory_kb["VmRSS"] / 1024, memory_kb["VmHWM"] / 1024)


def system_busy_s() -> float:
    """CPU seconds every process on this machine has used since boot (/proc/stat, idle excluded)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S


@dataclass(frozen=True)
class CpuSplit:
    """Who used the machine's CPU since ``start()``: the service (one process or several), the
    processes named in ``meters``, this process, and everything else."""

    pids: tuple[int, ...]
    service_s: float
    own_s: float
    busy_s: float
    wall_s: float
    # name → a reading of the CPU seconds used so far by other processes of the set-up (a proxy, the
    # database's backends), so that they are not counted as the machine's noise; and their readings.
    meters: Mapping[str, Callable[[], float]] = field(default_factory=dict)
    metered_s: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, *pids: int, meters: Mapping[str, Callable[[], float]] | None = None) -> CpuSplit:
        meters = meters or {}
        return cls(
            pids,
            services_cpu_s(pids),
            time.process_time(),
            system_busy_s(),
            time.perf_counter(),
            meters,
            {name: read() for name, read in meters.items()},
        )

    def stop(self) -> dict[str, float]:
        service_s = services_cpu_s(self.pids) - self.service_s
        own_s = time.process_time() - self.own_s
        metered = {f"{name}_cpu_s": read() - self.metered_s[name] for name, read in self.meters.items()}
        busy_s = system_busy_s() - self.busy_s
        return {
            "wall_s": time.perf_counter() - self.wall_s,
            "service_cpu_s": service_s,
            "bench_process_cpu_s": own_s,
            **metered,
            # Other work sharing the cores (another test run...) skews every figure: show it.
            "other_cpu_s": busy_s - service_s - own_s - sum(metered.values()),
            "machine_cpu_s": busy_s,
        }


def services_cpu_s(pids: Sequence[int]) -> float:
    return sum(read_proc(pid).cpu_s for pid in pids)


class RssSampler:
    """Samples a process's VmRSS every RSS_SAMPLE_S while running; ``peak_mb`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._take()

    def _take(self) -> None:
        self.peak_mb = max(self.peak_mb, read_proc(self.pid).rss_mb)

    async def _sample(self) -> None:
        while True:
            self._take()
            await asyncio.sleep(RSS_SAMPLE_S)


def log_problems(log_path: Path) -> dict[str, int]:
    """Count the service log's warning/error/critical lines by event name (JSON lines; others as 'raw')."""
    counts: Counter[str] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            counts["raw: " + line[:80]] += 1
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            counts[f"{entry['level']}: {entry.get('event')}"] += 1
    return dict(counts.most_common())
