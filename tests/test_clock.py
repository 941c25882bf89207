"""The clocks: a ManualClock fires its call backs in order, each reading its own time; the Waker arms
its wake-ups through whichever clock it is given; a ScaledClock's call back never comes early."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from responder.clock import ManualClock, ScaledClock
from responder.engine.scheduler import Waker

START = datetime(2026, 11, 28, 2, 14, tzinfo=UTC)


def test_advance_fires_what_falls_due_in_order_at_its_own_time() -> None:
    clock, seen = ManualClock(START), list[tuple[int, datetime]]()

    def note(offset_s: int) -> Callable[[], None]:
        return lambda: seen.append((offset_s, clock.now()))

    for offset_s in (30, 10, 20, 10, 90):
        clock.call_at(START + timedelta(seconds=offset_s), note(offset_s))
    assert clock.advance(29) == START + timedelta(seconds=29)
    assert seen == [(10, START + timedelta(seconds=10))] * 2 + [(20, START + timedelta(seconds=20))]
    clock.advance_to(START + timedelta(seconds=60))
    assert [o for o, _ in seen] == [10, 10, 20, 30]
    assert clock.pending() == [START + timedelta(seconds=90)]


def test_a_cancelled_call_back_never_fires_and_time_never_goes_back() -> None:
    clock, seen = ManualClock(START), list[str]()
    clock.call_at(START + timedelta(seconds=5), lambda: seen.append("cancelled")).cancel()
    clock.advance(10)
    clock.advance_to(START)
    assert seen == [] and clock.now() == START + timedelta(seconds=10) and clock.pending() == []


async def test_the_waker_wakes_at_exactly_the_times_asked_for_on_a_manual_clock() -> None:
    clock, woken = ManualClock(START), list[datetime]()
    waker = Waker(lambda: woken.append(clock.now()), sweep_interval_s=3600, clock=clock)
    waker.start()
    try:
        for offset_s in (180, 60, 60, 90):
            waker.wake_at(START + timedelta(seconds=offset_s))
        clock.advance(59)
        assert woken == []  # nothing before its time, however long the wall clock runs
        clock.advance(200)
        assert woken == [START + timedelta(seconds=s) for s in (60, 90, 180)]
        assert waker.pending() == []
    finally:
        waker.shutdown()


@pytest.mark.parametrize("scale", [1.0, 0.05, 0.001])
async def test_a_scaled_clock_calls_back_once_its_time_has_come(scale: float) -> None:
    clock = ScaledClock(scale)
    when, fired = clock.now() + timedelta(seconds=2), asyncio.get_running_loop().create_future()
    clock.call_at(when, lambda: fired.set_result(clock.now()))
    assert await asyncio.wait_for(fired, 30) >= when


def test_a_scaled_clock_reads_its_start_at_that_wall_instant() -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    assert ScaledClock(0.5, start).now() - start >= timedelta(seconds=2)  # twice as fast since
    with pytest.raises(ValueError, match="scale"):
        ScaledClock(2.0)
