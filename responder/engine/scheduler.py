"""The only module that imports APScheduler: it wakes the engine when the next step is due.

Due times live in the database; the waker holds one timer (the earliest due time asked for) plus
APScheduler's slow safety sweep, so a restart or another replica's work never depends on in-memory
timers.

The exact wake-up is a call back of the injected clock (`Clock.call_at`: a loop timer on the system or
the demo's scaled clock, a fast-forward in tests), not an APScheduler date job: a date job re-armed from
its own run is skipped when APScheduler still counts that run as running ("maximum number of running
instances reached"), and a skipped wake-up left no timer at all, so steps waited for the next sweep. A
clock call back cannot be skipped: it fires, takes every time that has passed, and arms the next one.
Due times are case-clock times; the waker never turns them into wall delays itself.

The periodic jobs (the sweep, the outbox's lease, housekeeping) are APScheduler interval jobs in wall
seconds: they guard liveness and pick up outside changes, which happen in real time whatever the case
clock does. Under a test's ManualClock they still run, and find nothing due that the clock has not
reached.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from responder.clock import Clock, Handle, SystemClock

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
        self._timer: Handle | None = None
        self._armed: datetime | None = None  # the time the timer is set for
        self._stopped = False
        self._sweep_timer: Handle | None = None  # the earliest sweep asked for on another clock
        self._sweep_armed: datetime | None = None

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

    def sweep_at(self, clock: Clock, when: datetime) -> None:
        """Run the sweep once `clock` reads `when`: for times kept on a clock of their own (the outbox
        leases are wall time, see paging/outbox.py). Only the earliest such time is kept."""
        if self._stopped or (self._sweep_armed is not None and self._sweep_armed <= when):
            return
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()

        def fire() -> None:
            self._sweep_timer = self._sweep_armed = None
            self._callback()

        self._sweep_armed, self._sweep_timer = when, clock.call_at(when, fire)

    def pending(self) -> list[datetime]:
        """The wake-ups asked for and not yet passed, earliest first (for tests and status)."""
        return sorted(self._times)

    def _arm(self, when: datetime) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = when
        self._timer = self._clock.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = self._armed = None
        now = self._clock.now()
        passed = False
        while self._times and self._times[0] <= now:
            heapq.heappop(self._times)
            passed = True
        if self._times:
            self._arm(self._times[0])  # before the callback: nothing it does can leave us unarmed
        if passed:  # always (a clock calls back at its time or after); never a wake-up before it
            self._callback()

    async def _sweep(self) -> None:
        # Coroutine jobs run on the event loop; plain functions would go to a thread pool.
        self._callback()

    def shutdown(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._armed = None
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = self._sweep_armed = None
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
