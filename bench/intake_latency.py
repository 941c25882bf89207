"""Intake benchmark (PRODUCT.md §7): alert received → first Twilio request, and sustained signed intake.

    .venv/bin/python bench/intake_latency.py    # 50 alerts/s for 20 s, then 32 clients for 10 s
    .venv/bin/python bench/intake_latency.py --rate 50 --seconds 30 --json

The service runs as `responder serve` on a fresh SQLite database; Twilio is the phone simulator, in this
process, which notes when each REST request arrives. Both runs share one service, latency first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shlex
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
from _harness import API_TOKEN, SAMPLES, SOCIAL_SECRET, Bench, StampedRequests, bench_main, running_bench
from _measure import CpuSplit, RssSampler, log_problems, read_proc, summary_ms
from _report import json_safe, markdown

from responder.tools import signed_headers

# Every page SMS says "Reply ACK <ref>" (or "Répondez ACK <ref>"): that ties a request to its case.
ACK_REF = re.compile(r"\bACK ([A-Z0-9]+)\b")
START_DELAY_S = 0.1  # the open-loop timetable starts this long after it is drawn up
LOOKUP_CONCURRENCY = 16  # parallel GET /v1/cases/{id} when mapping cases to refs
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Posted:
    """One POST /v1/alerts: when it was sent and answered (perf_counter s), and what came back."""

    sent_s: float
    answered_s: float
    status: int  # 0 when no HTTP answer came
    case_id: str | None
    late_s: float = 0.0  # how far behind its timetable slot the send was (open loop only)
    error: str | None = None


class AlertMaker:
    """Signed bodies of one sample alert, each with a fresh alert_id."""

    def __init__(self, template: dict[str, Any], secret: str) -> None:
        self.template, self.secret = template, secret
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.count = 0

    def next(self) -> tuple[str, dict[str, str]]:
        self.count += 1
        body = json.dumps(self.template | {"alert_id": f"{self.prefix}-{self.count:07d}"})
        return body, signed_headers(self.secret, body)


async def post_alert(http: aiohttp.ClientSession, url: str, maker: AlertMaker, late_s: float = 0.0) -> Posted:
    body, headers = maker.next()
    sent_s = time.perf_counter()
    try:
        async with http.post(f"{url}/v1/alerts", data=body, headers=headers) as response:
            status = response.status
            data = await response.json() if status == 202 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Posted(sent_s, time.perf_counter(), 0, None, late_s, type(exc).__name__)
    error = None if status == 202 else f"HTTP {status}"
    return Posted(sent_s, time.perf_counter(), status, data.get("case_id"), late_s, error)


async def send_on_timetable(
    http: aiohttp.ClientSession, url: str, maker: AlertMaker, rate: float, seconds: float
) -> list[Posted]:
    """Open loop: one POST every 1/rate s on a fixed timetable, never waiting for answers."""
    interval_s = 1 / rate
    start_s = time.perf_counter() + START_DELAY_S
    tasks = []
    for slot in range(round(rate * seconds)):
        due_s = start_s + slot * interval_s
        if (delay_s := due_s - time.perf_counter()) > 0:
            await asyncio.sleep(delay_s)
        late_s = time.perf_counter() - due_s
        tasks.append(asyncio.create_task(post_alert(http, url, maker, late_s)))
    return list(await asyncio.gather(*tasks))


async def fetch_refs(http: aiohttp.ClientSession, url: str, case_ids: list[str]) -> dict[str, str]:
    """case_id → ref, from GET /v1/cases/{case_id}."""
    limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}

    async def ref_of(case_id: str) -> tuple[str, str]:
        async with limit, http.get(f"{url}/v1/cases/{case_id}", headers=auth) as response:
            response.raise_for_status()
            return case_id, str((await response.json())["ref"])

    return dict(await asyncio.gather(*(ref_of(c) for c in case_ids)))


class PageWatch:
    """When the first Twilio create request for each accepted alert's case arrived (by the case ref)."""

    def __init__(self, requests: StampedRequests, posted: list[Posted], refs: dict[str, str]) -> None:
        self.requests, self.refs = requests, refs
        self.sent_s = {refs[p.case_id]: p.sent_s for p in posted if p.case_id is not None}
        self.first_s: dict[str, float] = {}
        self._seen = 0

    def scan(self) -> None:
        for index in range(self._seen, len(self.requests)):
            request = self.requests[index]
            if request.method != "POST" or not request.path.endswith(("/Messages.json", "/Calls.json")):
                continue
            if match := ACK_REF.search(request.form.get("Body", "")):
                self.first_s.setdefault(match.group(1), self.requests.arrived_s[index])
        self._seen = len(self.requests)

    def unpaged(self) -> int:
        self.scan()
        return len(self.sent_s.keys() - self.first_s.keys())

    def latencies_s(self) -> list[float]:
        """Alert sent → first Twilio request, per case; infinite for a case not paged yet."""
        self.scan()
        return [self.first_s.get(ref, math.inf) - sent_s for ref, sent_s in self.sent_s.items()]


def sms_creates(requests: StampedRequests, since_s: float, until_s: float) -> int:
    """How many Messages.json creates arrived between two perf_counter times."""
    return sum(
        1
        for request, arrived_s in zip(requests, requests.arrived_s, strict=True)
        if since_s <= arrived_s < until_s and request.path.endswith("/Messages.json")
    )


async def run_latency(
    bench: Bench, http: aiohttp.ClientSession, maker: AlertMaker, args: argparse.Namespace
) -> tuple[dict[str, Any], PageWatch]:
    """Open loop at ``args.rate`` for ``args.seconds``: alert POST sent → first Twilio request."""
    cpu_before_s, start_s = read_proc(bench.pid).cpu_s, time.perf_counter()
    posted = await send_on_timetable(http, bench.url, maker, args.rate, args.seconds)
    sent_until_s = time.perf_counter()
    refs = await fetch_refs(http, bench.url, [p.case_id for p in posted if p.case_id])
    watch = PageWatch(bench.requests, posted, refs)
    await bench.requests.wait_until(lambda: watch.unpaged() == 0, args.grace)
    return {
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "sent": len(posted),
        "accepted": sum(p.status == 202 for p in posted),
        "errors": dict(Counter(p.error for p in posted if p.error)),
        "first_twilio": summary_ms(watch.latencies_s()),
        "grace_s": args.grace,
        "unpaged_after_grace": watch.unpaged(),
        "response": summary_ms([p.answered_s - p.sent_s for p in posted]),
        "max_send_late_ms": max(p.late_s for p in posted) * 1000 if posted else None,
        "sms_creates_while_sending": sms_creates(bench.requests, start_s, sent_until_s),
        "elapsed_s": time.perf_counter() - start_s,
        "service_cpu_s": read_proc(bench.pid).cpu_s - cpu_before_s,
    }, watch


async def closed_loop_client(
    http: aiohttp.ClientSession, url: str, maker: AlertMaker, deadline_s: float, out: list[Posted]
) -> None:
    while time.perf_counter() < deadline_s:
        out.append(await post_alert(http, url, maker))


async def run_throughput(
    bench: Bench, http: aiohttp.ClientSession, maker: AlertMaker, args: argparse.Namespace
) -> dict[str, Any]:
    """Closed loop: ``args.clients`` clients post as fast as answers come, for ``args.throughput_seconds``."""
    posted: list[Posted] = []
    before = read_proc(bench.pid)
    async with RssSampler(bench.pid) as rss:
        start_s = time.perf_counter()
        deadline_s = start_s + args.throughput_seconds
        clients = [
            closed_loop_client(http, bench.url, maker, deadline_s, posted) for _ in range(args.clients)
        ]
        await asyncio.gather(*clients)
        elapsed_s = time.perf_counter() - start_s
    after = read_proc(bench.pid)
    accepted = sum(p.status == 202 for p in posted)
    return {
        "clients": args.clients,
        "seconds": round(elapsed_s, 2),
        "accepted": accepted,
        "accepted_per_s": accepted / elapsed_s,
        "errors": dict(Counter(p.error for p in posted if p.error)),
        "response": summary_ms([p.answered_s - p.sent_s for p in posted]),
        "sms_creates_in_window": sms_creates(bench.requests, start_s, start_s + elapsed_s),
        "service_cpu_s": after.cpu_s - before.cpu_s,
        "service_peak_rss_mb": rss.peak_mb,
        "service_vmhwm_mb": after.hwm_mb,
    }


async def run(args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    maker = AlertMaker(template, SOCIAL_SECRET)
    results: dict[str, Any] = {"command": shlex.join(sys.orig_argv)}
    async with running_bench(args.callback_delay) as bench:
        cpu = CpuSplit.start(bench.pid)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            if args.run in ("both", "latency"):
                results["latency"], watch = await run_latency(bench, http, maker, args)
            if args.run in ("both", "throughput"):
                results["throughput"] = await run_throughput(bench, http, maker, args)
            if args.run == "both":  # late, or lost? the latency run's cases, once more at the end
                results["latency"]["unpaged_at_end"] = watch.unpaged()
        results["cpu"] = cpu.stop()
        results["service_log_problems"] = log_problems(bench.log_path)
        results["sim_callback_failures"] = sum(len(m.errors) for m in bench.sim.messages.values())
        results["sim_rest_requests"] = len(bench.requests)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0, help="open-loop alerts per second (default 50)")
    parser.add_argument("--seconds", type=float, default=20.0, help="open-loop duration (default 20)")
    parser.add_argument("--grace", type=float, default=20.0, help="how long to wait for late pages (s)")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop concurrent clients (default 32)")
    parser.add_argument("--throughput-seconds", type=float, default=10.0, help="closed-loop duration")
    parser.add_argument("--run", choices=["both", "latency", "throughput"], default="both")
    parser.add_argument("--callback-delay", type=float, default=0.01, help="simulator step delay (s)")
    parser.add_argument("--alert", default=str(SAMPLES / "imminent-live-fr.json"), help="alert JSON template")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown")
    return parser.parse_args()


def main() -> int:
    return bench_main(parse_args(), run, markdown, json_safe)


if __name__ == "__main__":
    sys.exit(main())
