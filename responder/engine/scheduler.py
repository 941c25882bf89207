"""The only module that imports APScheduler: it wakes the engine when the next step is due.

Due times live in the database; the scheduler holds one date job (the earliest due time) plus a
slow safety sweep, so a restart or another replica's work never depends on in-memory timers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

_WAKE_JOB = "engine-wake"
_SWEEP_JOB = "engine-sweep"


class Waker:
    """Calls `callback` at every time asked for (the timer is armed for the earliest one).

    The callback must return at once (it starts the work as a task): a job that is still running
    when the next wake-up is due would make APScheduler skip that wake-up.
    """

    def __init__(
        self,
        callback: Callable[[], None],
        sweep_interval_s: float = 30.0,
        sweep: Callable[[], None] | None = None,
    ) -> None:
        self._callback = callback
        self._sweep_callback = sweep or callback
        self._sweep_interval_s = sweep_interval_s
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._times: list[datetime] = []  # a heap of every wake-up asked for and not yet passed
        self._armed: datetime | None = None

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

    def wake_at(self, when: datetime) -> None:
        """Make sure the engine runs at `when`; every time asked for is kept until it has passed."""
        heapq.heappush(self._times, when)
        if self._armed is None or when < self._armed:
            self._arm(when)

    def _arm(self, when: datetime) -> None:
        self._armed = when
        self._scheduler.add_job(
            self._fire,
            "date",
            run_date=max(when, datetime.now(UTC)),
            id=_WAKE_JOB,
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def _fire(self) -> None:
        # Coroutine jobs run on the event loop; plain functions would go to a thread pool.
        now = datetime.now(UTC)
        while self._times and self._times[0] <= now:
            heapq.heappop(self._times)
        self._armed = None
        if self._times:
            self._arm(self._times[0])
        self._sweep_callback()  # a due time came: re-read the next ones from the database too

    async def _sweep(self) -> None:
        self._sweep_callback()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
