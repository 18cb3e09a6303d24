"""The clocks: the fake one moved by hand, the real one on the running loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from streamfsm._aio.clock import SystemClock
from streamfsm._core.clock import FakeClock


def test_fake_timers_fire_in_deadline_order_reading_their_own_deadline() -> None:
    """advance() fires due timers in deadline order, each seeing monotonic() == its deadline."""
    clock = FakeClock(start=10.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: seen.append(("b", clock.monotonic())))
    clock.call_later(1.0, lambda: seen.append(("a", clock.monotonic())))
    clock.call_later(5.0, lambda: seen.append(("late", clock.monotonic())))
    assert clock.advance(3.0) == 2
    assert seen == [("a", 11.0), ("b", 12.0)]
    assert clock.monotonic() == 13.0
    assert clock.next_deadline() == 15.0


def test_a_cancelled_fake_timer_never_fires_and_is_not_pending() -> None:
    """cancel() disarms: the timer neither fires nor counts as pending."""
    clock = FakeClock()
    fired: list[int] = []
    handle = clock.call_later(1.0, lambda: fired.append(1))
    assert clock.pending() == 1
    handle.cancel()
    assert clock.pending() == 0
    assert clock.advance(2.0) == 0
    assert fired == []


def test_a_timer_armed_by_a_timer_fires_in_the_same_advance() -> None:
    """A callback that arms a timer due within the same advance sees it fire."""
    clock = FakeClock()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        clock.call_later(0.5, lambda: order.append("second"))

    clock.call_later(1.0, first)
    clock.advance(2.0)
    assert order == ["first", "second"]


def test_system_clock_reads_time_monotonic() -> None:
    """SystemClock.monotonic() is time.monotonic(), so the core and the loop agree."""
    clock = SystemClock()
    before = time.monotonic()
    now = clock.monotonic()
    assert before <= now <= time.monotonic()


def test_system_clock_arms_timers_on_the_running_loop() -> None:
    """call_later() fires on the running loop; a cancelled one does not."""

    async def main() -> list[str]:
        clock = SystemClock()
        fired: list[str] = []
        done = asyncio.Event()
        clock.call_later(0.0, lambda: (fired.append("due"), done.set()))
        clock.call_later(0.0, lambda: fired.append("cancelled")).cancel()
        await asyncio.wait_for(done.wait(), 5.0)
        return fired

    assert asyncio.run(main()) == ["due"]


def test_system_clock_needs_a_running_loop_for_timers() -> None:
    """Arming a timer outside a loop is an error, not a silent no-op."""
    with pytest.raises(RuntimeError):
        SystemClock().call_later(1.0, lambda: None)
