"""`responder serve` as a real child process, for crash tests (kill -9) and restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime

from responder.simulator import PhoneSimulator
from tests.harness import ROOT, environment

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """One `responder serve`; start() waits for its `service_listening` log line, not a timer."""

    db_url: str
    sim: PhoneSimulator
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    public_url: str | None = None  # a load balancer's URL in front of several replicas
    process: asyncio.subprocess.Process | None = None
    log_lines: list[str] = field(default_factory=list)
    # Where its scaled clock (RESPONDER_TIME_SCALE below 1) starts: every start of this process, and
    # replicas given the same, read the same case time (responder/clock.py:ScaledClock).
    clock_start: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        public = self.public_url or self.url
        base = environment(
            self.db_url,
            public,
            self.sim.url,
            RESPONDER_LOG_LEVEL="info",
            RESPONDER_TIME_SCALE_START=self.clock_start.isoformat(),
            **self.extra_env,
        )
        return {**os.environ, **base}

    async def run(self, *args: str) -> int:
        """Run another responder command with the same environment (e.g. db upgrade)."""
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "responder",
            *args,
            env=self.env(),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await child.communicate()
        assert child.returncode == 0, output.decode()
        return child.returncode

    async def start(self) -> None:
        self.sim.sms_webhook_url = f"{self.public_url or self.url}/twilio/sms"
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "responder",
            "serve",
            "--port",
            str(self.port),
            env=self.env(),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.wait_for(self._until_listening(), STARTUP_TIMEOUT_S)
        except BaseException:
            await self.stop()  # never leave a half-started service behind
            raise

    async def _until_listening(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            text = line.decode(errors="replace").strip()
            self.log_lines.append(text)
            if text.startswith("{") and json.loads(text).get("event") == "service_listening":
                asyncio.get_running_loop().create_task(self._drain())
                return
        raise AssertionError("service exited during start-up:\n" + "\n".join(self.log_lines[-30:]))

    async def _drain(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log_lines.append(line.decode(errors="replace").strip())

    async def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
