"""The engine's wake-up on its own: every time asked for is followed by a wake-up at or after it, whatever
the pattern (bursts, times in the past, earlier and later ones, asks made from inside a wake-up).

The old waker re-armed an APScheduler date job from inside its own run; when APScheduler skipped a run
("maximum number of running instances reached") it was never armed again, so a burst of 20 wake-ups 2 ms
apart fired 3 of them and a later one 0.3 s ahead never fired."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from responder.engine.scheduler import Waker
from responder.simulator import PhoneSimulator
from tests.harness import new_alert_id, sample, start_service, stop_service

# A bound on waiting for a wake-up that must come: only a broken waker reaches it.
MUST_COME_S = 20.0


class Recorder:
    """Counts wake-ups and remembers when each came; asks for more from inside one when told to."""

    def __init__(self) -> None:
        self.woken: list[datetime] = []
        self.changed = asyncio.Event()
        self.then: list[float] = []  # offsets to ask for from inside the first wake-up
        self.waker: Waker | None = None

    def __call__(self) -> None:
        now = datetime.now(UTC)
        self.woken.append(now)
        if self.then and self.waker is not None:
            for offset_s in self.then:
                self.waker.wake_at(now + timedelta(seconds=offset_s))
            self.then = []
        self.changed.set()

    async def until_covered(self, wanted: list[datetime]) -> None:
        """Wait until every wanted time has a wake-up at or after it."""

        async def covered() -> None:
            while not all(any(w >= t for w in self.woken) for t in wanted):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(covered(), MUST_COME_S)


@pytest.mark.parametrize(
    ("label", "offsets_s", "then_s"),
    [
        ("one wake-up ahead", [0.3], []),
        ("a burst of 20, 2 ms apart", [0.05 + 0.002 * i for i in range(20)], []),
        ("a burst, then a later one 0.3 s ahead", [0.002 * i for i in range(20)] + [0.3], []),
        ("a time already passed", [-5.0], []),
        ("a later one first, then an earlier one", [0.4, 0.1], []),
        ("the same time many times", [0.1] * 10, []),
        ("asks made from inside a wake-up", [0.05], [0.0, 0.1, 0.3]),
        ("many asks from inside a wake-up, all at once", [0.0], [0.001 * i for i in range(50)]),
    ],
)
async def test_every_time_asked_for_is_followed_by_a_wake_up(
    label: str, offsets_s: list[float], then_s: list[float]
) -> None:
    recorder = Recorder()
    waker = Waker(recorder, sweep_interval_s=3600)  # no sweep: only the timer can wake it
    recorder.waker, recorder.then = waker, list(then_s)
    waker.start()
    try:
        start = datetime.now(UTC)
        wanted = [start + timedelta(seconds=s) for s in offsets_s]
        for when in wanted:
            waker.wake_at(when)
        await recorder.until_covered(wanted)
        first = recorder.woken[0]
        await recorder.until_covered([first + timedelta(seconds=s) for s in then_s])
        assert waker.pending() == [], label  # nothing left waiting for a wake-up that will not come
    finally:
        waker.shutdown()


async def test_a_wake_up_is_never_early() -> None:
    recorder = Recorder()
    waker = Waker(recorder, sweep_interval_s=3600)
    waker.start()
    try:
        when = datetime.now(UTC) + timedelta(seconds=0.2)
        waker.wake_at(when)
        await recorder.until_covered([when])
        assert all(w >= when for w in recorder.woken)
    finally:
        waker.shutdown()


async def test_after_shutdown_nothing_wakes() -> None:
    recorder = Recorder()
    waker = Waker(recorder, sweep_interval_s=3600)
    waker.start()
    waker.shutdown()
    waker.wake_at(datetime.now(UTC))
    assert waker.pending() == [] and recorder.woken == []


async def test_many_cases_due_together_all_fire_without_the_sweep(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    """20 cases whose voice steps fall due together, and no sweep for five minutes: only the waker can
    fire them, and it must fire every one."""
    service = await start_service(db_url, sim, http, RESPONDER_SWEEP_INTERVAL_S="300")
    try:
        case_ids = []
        for _ in range(20):
            status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
            assert status == 202
            case_ids.append(body["case_id"])
        ana = service.phone_of("ana")
        for _ in case_ids:  # one call per case: each case's voice step fired
            await ana.expect_call(timeout_s=MUST_COME_S)
        for case_id in case_ids:
            case = await service.case(case_id)
            assert {p["channel"] for p in case["pages"] if p["person"]["id"] == "ana"} >= {"sms", "voice"}
    finally:
        await stop_service(service)
