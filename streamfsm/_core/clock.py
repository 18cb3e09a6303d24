"""The clock protocol: monotonic time plus one-shot timers; and a fake one moved by hand.

One clock is injected into a controller: the core reads its ``monotonic()``, the runner arms the
core's timers on it, the session and the dispatcher date frames by it. The real one is
:class:`streamfsm._aio.clock.SystemClock`.
:class:`FakeClock` moves only when a test calls :meth:`FakeClock.advance`, firing every due timer
in deadline order, so timeout logic is tested instantly and exactly.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FakeClock", "TimerHandle"]


class TimerHandle(Protocol):
    """A timer that can be disarmed."""

    def cancel(self) -> None:
        """Disarm; a no-op when it already fired or was cancelled."""


class Clock(Protocol):
    """Monotonic seconds and one-shot timers."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` once, ``delay`` seconds from now (at once when ``delay <= 0``)."""


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that tests advance by hand.

    Timers fire inside :meth:`advance`, in deadline order (ties in the order they were armed),
    with ``monotonic()`` reading exactly their deadline while they run. A timer armed by a
    callback fires in the same ``advance`` call if its deadline falls within it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        """The current fake time."""
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Arm a timer ``delay`` seconds after the current fake time."""
        timer = _FakeTimer(self._now + max(0.0, delay), callback)
        heapq.heappush(self._heap, (timer.deadline, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, firing due timers; returns how many fired."""
        target = self._now + max(0.0, seconds)
        fired = 0
        while self._heap and self._heap[0][0] <= target:
            deadline, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, deadline)
            timer.cancelled = True
            timer.callback()
            fired += 1
        self._now = target
        return fired

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or None when nothing is armed."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pending(self) -> int:
        """How many timers are armed."""
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)
