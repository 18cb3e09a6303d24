"""The real clock: ``time.monotonic`` for reading, the running event loop for timers.

One instance is injected everywhere time matters (the core reads it, the runner and the session
arm timers on it), so a test that swaps in :class:`~streamfsm._core.clock.FakeClock` swaps all of
them at once. Timers are armed on the loop that is running when ``call_later`` is called; the
delay is relative, so the loop's own time origin never has to agree with ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from streamfsm._core.clock import TimerHandle

__all__ = ["SystemClock"]


class SystemClock:
    """Monotonic seconds from ``time.monotonic`` and one-shot timers on the running loop."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` once after ``delay`` seconds, on the running loop.

        Raises:
            RuntimeError: when no event loop runs in this thread.
        """
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)
