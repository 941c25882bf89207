"""Pieces both engine benchmark runs share: due times, clocks, the roster sync, Twilio requests, /metrics."""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from _harness import Setup, StampedRequests, serving, wait_ready

# Every page SMS says "Reply ACK <ref>" (or "Répondez ACK <ref>"): that ties a request to its case.
ACK_REF = re.compile(r"\bACK ([A-Z0-9]+)\b")
# The outbox gives Twilio a status callback URL ending in the page id: that ties a request to its page.
PAGE_ID = re.compile(r"/twilio/status/([0-9a-f]+)$")
CREATES = ("/Messages.json", "/Calls.json")
PY_SPY_STOP_S = 10.0  # how long py-spy may take to write its profile


def utcnow() -> datetime:
    return datetime.now(UTC)


def spread(start: datetime, span_s: float, count: int) -> list[datetime]:
    """``count`` moments evenly spaced over ``span_s`` seconds from ``start``."""
    step_s = span_s / count if count else 0.0
    return [start + timedelta(seconds=i * step_s) for i in range(count)]


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


class WallClock:
    """Turns ``time.perf_counter()`` stamps (the simulator's) into UTC datetimes (the database's)."""

    def __init__(self) -> None:
        self.offset_s = time.time() - time.perf_counter()

    def at(self, perf_s: float) -> datetime:
        return datetime.fromtimestamp(perf_s + self.offset_s, UTC)


async def sync_roster(setup: Setup) -> None:
    """Start the service once and stop it: it writes the integration and person rows from the config."""
    log_path = setup.tmp / "sync.log"
    with serving(setup.env, setup.port, log_path) as process:
        await wait_ready(setup.url, process, log_path)


@dataclass
class TwilioLog:
    """The simulator's create requests (SMS and calls), by case ref and by page id."""

    first_by_ref: dict[str, float]  # perf_counter s of the first create whose SMS body names the ref
    creates_by_page: Counter[str]  # page id → how many create requests named it

    @classmethod
    def read(cls, requests: StampedRequests, until_index: int | None = None) -> TwilioLog:
        first: dict[str, float] = {}
        by_page: Counter[str] = Counter()
        for request, arrived_s in list(zip(requests, requests.arrived_s, strict=True))[:until_index]:
            if request.method != "POST" or not request.path.endswith(CREATES):
                continue
            if match := ACK_REF.search(request.form.get("Body", "")):
                first.setdefault(match.group(1), arrived_s)
            if match := PAGE_ID.search(request.form.get("StatusCallback", "")):
                by_page[match.group(1)] += 1
        return cls(first, by_page)


class RefWatch:
    """Which of ``refs`` have had an SMS create so far; each call scans only the requests new since."""

    def __init__(self, requests: StampedRequests, refs: set[str]) -> None:
        self.requests, self.refs = requests, refs
        self.paged: set[str] = set()
        self._seen = 0

    def count(self) -> int:
        for request in self.requests[self._seen :]:
            is_create = request.method == "POST" and request.path.endswith(CREATES)
            if is_create and (match := ACK_REF.search(request.form.get("Body", ""))):
                self.paged.add(match.group(1))
        self._seen = len(self.requests)
        return len(self.refs & self.paged)


async def scrape_lateness(url: str) -> dict[str, float]:
    """The cumulative buckets of ``responder_step_lateness_seconds`` from GET /metrics (plus count, sum)."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("responder_step_lateness_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            found[f"le {le}"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(
            ("responder_step_lateness_seconds_count", "responder_step_lateness_seconds_sum")
        ):
            name, value = line.rsplit(" ", 1)
            found[name.removeprefix("responder_step_lateness_seconds_")] = float(value)
    return found


def logged_at(log_path: Path, event: str) -> datetime | None:
    """When the service logged ``event`` (its JSON line's timestamp), or None."""
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event and "timestamp" in entry:
            return datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))
    return None


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isinf(v)]


@contextmanager
def profiling(pid: int, out_dir: Path | None, name: str) -> Iterator[None]:
    """`py-spy record` the service while inside, into ``out_dir/name.txt`` (collapsed stacks); or nothing."""
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / command[0]),
            *command[1:],
            "--output",
            str(out_dir / f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(PY_SPY_STOP_S)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, interval_s: float) -> bool:
    """Poll ``check()`` every ``interval_s`` until it holds; False if ``timeout_s`` passes first.

    The database offers no event to wait on from another process, so the benchmark polls it.
    """
    deadline_s = time.perf_counter() + timeout_s
    while not await check():
        if time.perf_counter() >= deadline_s:
            return False
        await asyncio.sleep(interval_s)
    return True
