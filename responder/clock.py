"""Time sources: what time it is, and a call back at a given time, on one clock.

The case timeline (intake, engine, outbox, Twilio callbacks) runs on one injected Clock: the system
clock in production, a ScaledClock for the demo (RESPONDER_TIME_SCALE), a ManualClock in tests that
fast-forward. Whoever needs a wake-up asks the clock (`call_at`), so nothing converts a clock time to a
wall delay but the clock itself.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Handle(Protocol):
    """A call back asked for; `cancel()` before it fires and it never does."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Tells the current UTC time, and calls back once that time reaches a given one."""

    def now(self) -> datetime: ...

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Handle:
        """Call `callback` (it must return at once) on the running loop once `now() >= when`."""
        ...


class SystemClock:
    """The wall clock, always UTC-aware."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Handle:
        return loop_call_at(self, when, callback)


class ScaledClock:
    """Time compressed for the demo: from `start` on, clock time runs 1/scale times faster than the wall
    (scale 0.05: a minute of clock time takes 3 s). It reads `start` at the wall instant `start`, so
    processes given the same `start` (replicas, a restart) agree on the time."""

    def __init__(self, scale: float, start: datetime | None = None) -> None:
        if not 0 < scale <= 1:
            raise ValueError("a ScaledClock's scale is more than 0 and at most 1")
        if start is not None and start.tzinfo is None:
            raise ValueError("ScaledClock needs an aware datetime")
        self.scale = scale
        self.start = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.start + (datetime.now(UTC) - self.start) / self.scale

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Handle:
        return loop_call_at(self, when, callback, self.scale)


def loop_call_at(
    clock: Clock, when: datetime, callback: Callable[[], None], wall_s_per_clock_s: float = 1.0
) -> Handle:
    """A loop timer for a clock that follows the wall (`wall_s_per_clock_s` wall seconds pass per
    second of it). The loop's monotonic timer may fire a hair before the clock reads `when`; such an
    early firing waits a hair more, so `call_at`'s promise (`now() >= when`) holds."""
    loop = asyncio.get_running_loop()
    handle = _LoopHandle()

    def fire() -> None:
        left_s = (when - clock.now()).total_seconds()
        if left_s > 0:
            handle.timer = loop.call_later(left_s * wall_s_per_clock_s, fire)
        else:
            callback()

    left_s = max(0.0, (when - clock.now()).total_seconds())
    handle.timer = loop.call_later(left_s * wall_s_per_clock_s, fire)
    return handle


class _LoopHandle:
    timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


@dataclass(order=True)
class _Due:
    when: datetime
    order: int  # ties fire in the order they were asked for
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when told to: tests fast-forward it, and the call backs that fall due
    fire in order, each with the clock reading its own time. Dry runs and pure decisions use it too."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start
        self._due: list[_Due] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Handle:
        due = _Due(when, next(self._order), callback)
        if when <= self._now:  # already due: on the loop, as a timer would, not inside the caller
            asyncio.get_running_loop().call_soon(lambda: None if due.cancelled else callback())
            return due
        heapq.heappush(self._due, due)
        return due

    def advance(self, seconds: float) -> datetime:
        """Move forward `seconds`, firing every call back that falls due on the way; the new time."""
        return self.advance_to(self._now + timedelta(seconds=seconds))

    def advance_to(self, when: datetime) -> datetime:
        """Move forward to `when` (never back), firing every call back due by then, in order."""
        while self._due and self._due[0].when <= when:
            due = heapq.heappop(self._due)
            if due.cancelled:
                continue
            self._now = max(self._now, due.when)
            due.callback()
        self._now = max(self._now, when)
        return self._now

    def pending(self) -> list[datetime]:
        """The times call backs wait for, earliest first."""
        return sorted(d.when for d in self._due if not d.cancelled)


def case_clock(time_scale: float, start: datetime | None = None) -> Clock:
    """The clock of the case timeline for RESPONDER_TIME_SCALE: the system clock at 1, else scaled."""
    return SystemClock() if time_scale == 1 else ScaledClock(time_scale, start)


def utcnow() -> datetime:
    """The current UTC time; prefer an injected Clock where a test needs to control it."""
    return datetime.now(UTC)
