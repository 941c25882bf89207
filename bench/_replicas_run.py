"""One run of bench/replicas.py: one or two `responder serve` processes on one fresh PostgreSQL
database, behind the round-robin proxy (bench/_proxy.py), paging into a fresh phone simulator.

Everything but the set-up is bench/_side_by_side_run.py's: the same environment, warm-up, idle time,
open-loop load and figures (`measure`). The CPU of the service is summed over its processes; the proxy's
and the database backends' are read beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
from _harness import StampedRequests, environment, free_port, migrate, new_simulator, serving, wait_ready
from _measure import log_problems, read_proc
from _side_by_side_run import RunPlan, measure
from intake_latency import AlertMaker

from responder.simulator import PhoneSimulator

BENCH = Path(__file__).resolve().parent
# The set-ups compared, by the name shown in the table (RunPlan.service), and their replicas.
SETUPS = {"2 replicas": 2, "1 replica": 1}
# How often the database backends' CPU is read during a run: a backend that closes between two
# readings (a pool connection recycled) loses at most this much of its CPU from the figure.
BACKEND_SAMPLE_S = 0.5


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (two calls of free_port may return the same one)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A new empty PostgreSQL database, as tests/conftest.py makes: (its SQLAlchemy URL, its name);
    dropped on exit, even with connections left open."""
    name = f"responder_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}", name
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class BackendCpu:
    """CPU seconds used so far by the PostgreSQL backends serving one database, read from /proc
    (the server's children whose title names the database). A backend keeps the last value read
    after it exits. Shared server processes (WAL writer, checkpointer) are not counted."""

    def __init__(self, postmaster_pid: int, database: str) -> None:
        self.children = Path(f"/proc/{postmaster_pid}/task/{postmaster_pid}/children")
        self.database = database
        self.seen_s: dict[int, float] = {}
        self._others: set[int] = set()  # children serving other databases, or none

    @classmethod
    async def find(cls, admin_dsn: str, database: str) -> BackendCpu | None:
        """None when the server is not a process of this machine (/proc shows no such parent)."""
        admin = await asyncpg.connect(admin_dsn)
        try:
            backend_pid: int = await admin.fetchval("SELECT pg_backend_pid()")
        finally:
            await admin.close()
        return cls.beside(backend_pid, database)

    @classmethod
    def beside(cls, backend_pid: int, database: str) -> BackendCpu | None:
        """Found from one backend of the same server: its parent is the server."""
        try:
            stat = Path(f"/proc/{backend_pid}/stat").read_text()
        except OSError:
            return None
        postmaster_pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4 of proc(5): ppid
        found = cls(postmaster_pid, database)
        return found if found.children.exists() else None

    def read(self) -> float:
        for pid in map(int, self.children.read_text().split()):
            if pid in self._others:
                continue
            try:
                if pid not in self.seen_s and not self._serves(pid):
                    self._others.add(pid)
                    continue
                self.seen_s[pid] = read_proc(pid).cpu_s
            except OSError:
                continue  # exited since the listing: its last reading stands
        return sum(self.seen_s.values())

    def _serves(self, pid: int) -> bool:
        # A backend's title: "postgres: 15/main: <user> <database> 127.0.0.1(port) <state>".
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return self.database in title.split()

    async def sample(self) -> None:
        while True:
            self.read()  # a few small /proc files: quicker than a hop to a thread
            await asyncio.sleep(BACKEND_SAMPLE_S)


async def run_once(plan: RunPlan, maker: AlertMaker, admin_dsn: str) -> dict[str, Any]:
    """A fresh simulator and database, the replicas and the proxy; one measured run; all stopped."""
    sim, requests = new_simulator(plan.callback_delay_s)
    await sim.start()
    try:
        async with fresh_database(admin_dsn) as (db_url, name):
            backends = await BackendCpu.find(admin_dsn, name)
            with tempfile.TemporaryDirectory(prefix="responder-replicas-") as tmp:
                result = await serve_and_measure(plan, maker, Path(tmp), db_url, sim, requests, backends)
                result["service_log_problems"] = problems_in(Path(tmp))
    finally:
        await sim.stop()
    return result


async def serve_and_measure(
    plan: RunPlan,
    maker: AlertMaker,
    tmp: Path,
    db_url: str,
    sim: PhoneSimulator,
    requests: StampedRequests,
    backends: BackendCpu | None,
) -> dict[str, Any]:
    *ports, proxy_port = free_ports(SETUPS[plan.service] + 1)
    public = f"http://127.0.0.1:{proxy_port}"
    env = environment(db_url, public, sim.url)  # every replica gives Twilio the proxy's URL
    sim.sms_webhook_url = f"{public}/twilio/sms"
    await asyncio.to_thread(migrate, env)
    with contextlib.ExitStack() as stack:
        # All started before any is waited for, as replicas start.
        replicas = [(port, tmp / f"replica-{port}.log") for port in ports]
        processes = [stack.enter_context(serving(env, port, log)) for port, log in replicas]
        await asyncio.gather(
            *(
                wait_ready(f"http://127.0.0.1:{port}", process, log)
                for (port, log), process in zip(replicas, processes, strict=True)
            )
        )
        proxy_log = tmp / "proxy.log"
        proxy = stack.enter_context(serving(env, proxy_port, proxy_log, proxy_program(ports)))
        await wait_ready(public, proxy, proxy_log)
        meters: dict[str, Callable[[], float]] = {"proxy": lambda: read_proc(proxy.pid).cpu_s}
        sampler = None
        if backends is not None:
            meters["postgres"] = backends.read
            sampler = asyncio.create_task(backends.sample())
        try:
            result = await measure(plan, maker, public, [p.pid for p in processes], sim, requests, meters)
        finally:
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
    return result | {"replicas": len(ports), **per_alert(result, ("proxy", "postgres"))}


def proxy_program(ports: list[int]) -> list[str]:
    backends = [arg for port in ports for arg in ("--backend", f"http://127.0.0.1:{port}")]
    return [sys.executable, str(BENCH / "_proxy.py"), *backends]


def per_alert(result: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    """The metered processes' CPU per accepted alert, as the service's (n/a when unread or cut short)."""
    accepted, cpu = result["accepted"], result["cpu"]
    return {
        f"{name}_cpu_ms_per_alert": cpu[f"{name}_cpu_s"] * 1000 / accepted
        if f"{name}_cpu_s" in cpu and accepted and result["work_done"]
        else math.nan
        for name in names
    }


def problems_in(tmp: Path) -> dict[str, int]:
    """The warnings and errors of every replica's log, summed; any line the proxy printed."""
    counts: Counter[str] = Counter()
    for log in sorted(tmp.glob("replica-*.log")):
        counts.update(log_problems(log))
    counts.update({f"proxy {line[:80]}": 1 for line in (tmp / "proxy.log").read_text().splitlines()})
    return dict(counts.most_common())
