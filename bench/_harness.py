"""The service as a subprocess on a fresh SQLite database, paging into a phone simulator in this process.

Use ``async with running_bench() as bench:`` in a benchmark; everything is torn down on exit, even on
Ctrl-C: the service gets SIGTERM then SIGKILL, the simulator stops and the temp dir is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from responder.simulator import ApiRequest, PhoneSimulator

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "samples"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
API_TOKEN = "bench-api-token-0123456789abcdefghi"  # serve wants 32 characters at least
SOCIAL_SECRET = "whsec_" + "c29jaWFsLWV4YW1wbGUtc2VjcmV0LWZvci10ZXN0cw=="
FORUM_SECRET = "whsec_" + "Zm9ydW0tZXhhbXBsZS1zZWNyZXQtZm9yLXRlc3Rz"
SERVICE_NUMBER = "+15005550006"

READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.05  # /readyz is polled: a subprocess offers no event to wait on
STOP_TIMEOUT_S = 5.0  # SIGTERM grace before SIGKILL


class StampedRequests(list[ApiRequest]):
    """``sim.requests`` that also notes when each REST request arrived (``time.perf_counter()`` s)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived_s: list[float] = []
        self._arrival = asyncio.Event()

    def append(self, request: ApiRequest) -> None:
        self.arrived_s.append(time.perf_counter())
        super().append(request)
        self._arrival.set()

    async def wait_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``done()`` holds, re-checking after each arrival; False if ``timeout_s`` passes."""
        try:
            async with asyncio.timeout(timeout_s):
                while not done():
                    self._arrival.clear()
                    await self._arrival.wait()
        except TimeoutError:
            return done()
        return True


@dataclass
class Bench:
    """A running service (``process``, ``url``) and the simulator it pages into."""

    url: str
    sim: PhoneSimulator
    requests: StampedRequests
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def environment(db_url: str, public_url: str, api_base: str, log_level: str = "warning") -> dict[str, str]:
    """The service's environment, like tests/harness.py builds, at real time and warning logs."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "TWILIO_"))}
    return inherited | {
        "RESPONDER_CONFIG": str(ROOT / "config" / "responder.yaml"),
        "RESPONDER_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "RESPONDER_DATABASE_URL": db_url,
        "RESPONDER_PUBLIC_URL": public_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RESPONDER_TWILIO_FROM": SERVICE_NUMBER,
        "RESPONDER_TWILIO_API_BASE": api_base,
        "RESPONDER_API_TOKEN": API_TOKEN,
        "RESPONDER_LINK_SECRET": "bench-link-secret-0123456789abcdefg",
        "RESPONDER_DATA_KEYS": "b1:YmVuY2gtZGF0YS1rZXktMDEyMzQ1Njc4OWFiY2RlZmc=",
        "RESPONDER_PSEUDONYM_KEY": "bench-pseudonym-key-0123456789abcdefg",
        "RESPONDER_SECRET_SOCIAL_EXAMPLE": SOCIAL_SECRET,
        "RESPONDER_SECRET_FORUM_EXAMPLE": FORUM_SECRET,
        "RESPONDER_TIME_SCALE": "1",
        # The benchmarks page the same few people thousands of times: flood protection would turn
        # most of that into fail-overs and measure something else.
        "RESPONDER_PHONE_LIMIT": "0",
        "RESPONDER_LOG_FORMAT": "json",
        "RESPONDER_LOG_LEVEL": log_level,
    }


def responder_command() -> str:
    """The `responder` console script of the interpreter running this benchmark."""
    beside = Path(sys.executable).parent / "responder"
    found = str(beside) if beside.exists() else shutil.which("responder")
    if found is None:
        raise SystemExit("`responder` not found: run .venv/bin/pip install -e '.[dev]'")
    return found


def free_port() -> int:
    """A loopback port free right now (the service binds it itself a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def migrate(env: Mapping[str, str]) -> None:
    """`responder db upgrade` on the benchmark database."""
    done = subprocess.run(
        [responder_command(), "db", "upgrade"], env=dict(env), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"responder db upgrade failed: {done.stderr.decode(errors='replace')[-2000:]}")


@contextmanager
def serving(
    env: Mapping[str, str], port: int, log_path: Path, program: Sequence[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`responder serve` as a subprocess in its own session (Ctrl-C reaches only us); stopped on exit.

    `program`: another command line that takes `responder`'s arguments (a benchmark's baseline)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*(program or [responder_command()]), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=dict(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll /readyz until it answers 200; fail early if the service exits."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
                raise RuntimeError(f"the service exited ({process.returncode}):\n{tail}")
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(READY_POLL_S)
    raise RuntimeError(f"the service was not ready within {READY_TIMEOUT_S} s")


def new_simulator(callback_delay_s: float) -> tuple[PhoneSimulator, StampedRequests]:
    sim = PhoneSimulator(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sms_webhook_url="http://127.0.0.1:9/",  # set once the service's port is known
        service_numbers=[SERVICE_NUMBER],
        callback_delay_s=callback_delay_s,
    )
    sim.requests = requests = StampedRequests()
    return sim, requests


@dataclass
class Setup:
    """A migrated fresh SQLite database and a started simulator; the service is not running yet."""

    tmp: Path
    db_path: Path
    port: int
    url: str
    env: dict[str, str]
    sim: PhoneSimulator
    requests: StampedRequests


@asynccontextmanager
async def bench_setup(callback_delay_s: float = 0.01, log_level: str = "warning") -> AsyncIterator[Setup]:
    """The temp dir, database and simulator, for benchmarks that start (and kill) the service themselves."""
    with tempfile.TemporaryDirectory(prefix="responder-bench-") as tmp:
        sim, requests = new_simulator(callback_delay_s)
        await sim.start()
        try:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            db_path = Path(tmp) / "bench.db"
            env = environment(f"sqlite+aiosqlite:///{db_path}", url, sim.url, log_level)
            sim.sms_webhook_url = f"{url}/twilio/sms"
            await asyncio.to_thread(migrate, env)
            yield Setup(Path(tmp), db_path, port, url, env, sim, requests)
        finally:
            await sim.stop()


@asynccontextmanager
async def running_bench(callback_delay_s: float = 0.01) -> AsyncIterator[Bench]:
    """A migrated fresh database, the simulator started here and the service serving; all gone on exit."""
    async with bench_setup(callback_delay_s) as setup:
        log_path = setup.tmp / "service.log"
        with serving(setup.env, setup.port, log_path) as process:
            await wait_ready(setup.url, process, log_path)
            yield Bench(setup.url, setup.sim, setup.requests, process, log_path)


def bench_main(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, dict[str, Any]], Awaitable[dict[str, Any]]],
    markdown: Callable[[dict[str, Any]], str],
    as_json: Callable[[Any], Any],
) -> int:
    """A bench's entry point: its alert template read, the simulator's logs kept off the table,
    SIGTERM turned into a cancellation (the clean-up runs as on Ctrl-C), the results printed as
    Markdown or, with --json, as JSON."""
    template = json.loads(Path(args.alert).read_text(encoding="utf-8"))
    # The simulator logs through structlog; keep its warnings (counted in the results) off the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    async def main_task() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(args, template)

    try:
        results = asyncio.run(main_task())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the services, simulators and temp dirs were cleaned up", file=sys.stderr)
        return 130
    print(json.dumps(as_json(results), indent=2) if args.json else markdown(results))
    return 0
