"""The loop portal: one loop on one thread, calls onto it from others, a clean end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from streamfsm._portal import LoopPortal, PortalClosedError

WAIT = 5.0

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


async def idle(ready: Callable[[], None], closing: asyncio.Event) -> None:
    """A main that takes calls until it is told to close."""
    ready()
    await closing.wait()


def test_calls_run_on_the_loop_thread_and_return_their_results() -> None:
    """call() runs a function on the loop's thread; run() a coroutine; results come back."""
    portal = LoopPortal("streamfsm-test-portal")
    portal.open(idle, WAIT)
    try:
        assert portal.running
        caller = threading.get_ident()
        assert portal.call(threading.get_ident, timeout=WAIT) != caller

        async def add(a: int, b: int) -> int:
            await asyncio.sleep(0)
            return a + b

        assert portal.run(lambda: add(2, 3), WAIT) == 5
    finally:
        portal.close(WAIT)
    assert not portal.running


def test_an_exception_in_a_call_reaches_the_caller() -> None:
    """What the function raises on the loop is raised in the calling thread."""
    portal = LoopPortal("streamfsm-test-portal")
    portal.open(idle, WAIT)
    try:

        def fail() -> None:
            raise KeyError("on the loop")

        with pytest.raises(KeyError, match="on the loop"):
            portal.call(fail, timeout=WAIT)
    finally:
        portal.close(WAIT)


def test_on_the_loop_thread_a_call_runs_directly() -> None:
    """From the loop's own thread call() runs at once (it could not wait for itself)."""
    portal = LoopPortal("streamfsm-test-portal")
    portal.open(idle, WAIT)
    try:
        inner = portal.call(lambda: portal.call(lambda: "direct", timeout=WAIT), timeout=WAIT)
        assert inner == "direct"
        with pytest.raises(PortalClosedError):
            portal.call(lambda: portal.run(lambda: asyncio.sleep(0), WAIT), timeout=WAIT)
    finally:
        portal.close(WAIT)


def test_a_closed_portal_refuses_calls_and_can_open_again() -> None:
    """After close() calls fail at once; open() starts a new thread and loop."""
    portal = LoopPortal("streamfsm-test-portal")
    with pytest.raises(PortalClosedError):
        portal.call(lambda: None, timeout=WAIT)
    portal.open(idle, WAIT)
    portal.close(WAIT)
    with pytest.raises(PortalClosedError):
        portal.call(lambda: None, timeout=WAIT)
    portal.open(idle, WAIT)
    try:
        assert portal.call(lambda: 7, timeout=WAIT) == 7
    finally:
        portal.close(WAIT)
    portal.close(WAIT)  # idempotent


def test_a_main_that_fails_before_ready_fails_open() -> None:
    """open() re-raises why the main could not come up, and no thread is left."""

    async def broken(ready: Callable[[], None], closing: asyncio.Event) -> None:
        raise OSError("port in use")

    portal = LoopPortal("streamfsm-test-portal")
    with pytest.raises(OSError, match="port in use"):
        portal.open(broken, WAIT)
    assert not portal.running


def test_a_hosted_main_takes_calls_from_other_threads() -> None:
    """host() serves calls from another thread while the caller's own loop runs the main."""

    async def main() -> int:
        portal = LoopPortal("streamfsm-test-portal")
        ready = asyncio.Event()
        task = asyncio.create_task(portal.host(idle, ready.set))
        await ready.wait()
        result = await asyncio.to_thread(portal.call, lambda: 41 + 1, timeout=WAIT)
        portal.close(WAIT)
        await task
        return result

    assert asyncio.run(main()) == 42
