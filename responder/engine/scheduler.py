"""The only module that imports APScheduler: it wakes the engine when the next step is due.

Due times live in the database; the waker holds one timer (the earliest due time asked for) plus
APScheduler's slow safety sweep, so a restart or another replica's work never depends on in-memory
timers.

The exact wake-up is an event-loop timer, not an APScheduler date job: a date job re-armed from its own
run is skipped when APScheduler still counts that run as running ("maximum number of running instances
reached"), and a skipped wake-up left no timer at all, so steps waited for the next sweep. A loop timer
cannot be skipped: it fires, takes every time that has passed, and arms the next one.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from responder.clock import Clock, SystemClock

_SWEEP_JOB = "engine-sweep"


class Waker:
    """Calls `sweep` at (or just after) every time asked for, and every `sweep_interval_s` besides.

    The callback must return at once (it starts the work as a task).
    """

    def __init__(
        self,
        callback: Callable[[], None],
        sweep_interval_s: float = 30.0,
        sweep: Callable[[], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._callback = sweep or callback
        self._sweep_interval_s = sweep_interval_s
        self._clock = clock or SystemClock()
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._times: list[datetime] = []  # a heap of every wake-up asked for and not yet passed
        self._timer: asyncio.TimerHandle | None = None
        self._armed: datetime | None = None  # the time the timer is set for
        self._stopped = False

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(
            self._sweep,
            "interval",
            seconds=self._sweep_interval_s,
            id=_SWEEP_JOB,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )

    def every(self, name: str, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` every `interval_s` (a run still going when the next is due is not doubled). A run
        cut short by the service's stop ends quietly: the next start runs it again."""

        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                if not self._stopped:
                    raise

        self._scheduler.add_job(
            run,
            "interval",
            seconds=interval_s,
            id=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )

    def wake_at(self, when: datetime) -> None:
        """Make sure the engine runs at `when`; every time asked for is kept until it has passed."""
        if self._stopped:
            return
        heapq.heappush(self._times, when)
        if self._armed is None or when < self._armed:
            self._arm(when)

    def pending(self) -> list[datetime]:
        """The wake-ups asked for and not yet passed, earliest first (for tests and status)."""
        return sorted(self._times)

    def _arm(self, when: datetime) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay_s = max(0.0, (when - self._clock.now()).total_seconds())
        self._armed = when
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._fire)

    def _fire(self) -> None:
        self._timer = self._armed = None
        now = self._clock.now()
        passed = False
        while self._times and self._times[0] <= now:
            heapq.heappop(self._times)
            passed = True
        if self._times:
            self._arm(self._times[0])  # before the callback: nothing it does can leave us unarmed
        if passed:  # the loop's monotonic timer may fire a hair before the wall clock agrees
            self._callback()

    async def _sweep(self) -> None:
        # Coroutine jobs run on the event loop; plain functions would go to a thread pool.
        self._callback()

    def shutdown(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._armed = None
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
