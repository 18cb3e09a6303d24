"""Where a controller's engine runs, and the one way onto its loop from any thread.

:class:`EngineBridge` holds the controller's :class:`~streamfsm._portal.LoopPortal` and the
engine running on it. The sync API opens the portal's own thread on the first command; the async
API hosts the engine in the caller's loop instead. Either way every call reaches the engine on
its loop, directly when the caller is already there (a callback), through the portal otherwise,
with the portal's failures turned into the controller's typed errors.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

from streamfsm._aio.engine import Engine
from streamfsm._aio.loops import LoopFactory
from streamfsm._core.commands import Input
from streamfsm._core.tracking import GapReport
from streamfsm._portal import LoopPortal, PortalClosedError
from streamfsm._validate import require_timeout
from streamfsm.errors import ControllerStoppedError, ShutdownTimeoutError

__all__ = ["EngineBridge", "block_until_signalled"]

_T = TypeVar("_T")


class EngineBridge:
    """The portal a controller's engine runs behind.

    Args:
        name: the loop thread's name.
        make_engine: builds a fresh engine for a new loop.
        command_timeout: how long a call waits for the loop to take it.
        loop_factory: makes the loop of the thread :meth:`open` starts (None: asyncio's).
    """

    def __init__(
        self,
        name: str,
        make_engine: Callable[[], Engine],
        command_timeout: float,
        loop_factory: LoopFactory = None,
    ):
        self.portal = LoopPortal(name)
        self._loop_factory = loop_factory
        self._make_engine = make_engine
        self._command_timeout = command_timeout
        # One thread at a time opens or closes the loop.
        self._opening = threading.RLock()
        #: The engine of the running loop (or of the last one, once closed); None before.
        self.engine: Engine | None = None
        #: The task hosting the engine in the caller's loop (async API); None on our thread.
        self.host: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while a loop runs the engine."""
        return self.engine is not None and self.portal.running

    def on_loop_thread(self) -> bool:
        """True on the engine loop's own thread (inside a callback, or async code on it)."""
        return self.portal.on_loop_thread()

    def open(self, timeout: float | None) -> Engine:
        """The running engine; opens the loop thread with a new engine first when none runs.

        Raises:
            ControllerStoppedError: when the loop thread does not come up within ``timeout``.
            ConfigurationError: when ``timeout`` is neither None nor 0 .. a week of seconds.
        """
        timeout = require_timeout("timeout", timeout)
        engine = self.engine
        if engine is not None and self.portal.running:
            return engine
        with self._opening:
            if self.engine is None or not self.portal.running:
                engine = self._make_engine()
                try:
                    self.portal.open(engine.run, timeout, self._loop_factory)
                except TimeoutError as exc:
                    raise ControllerStoppedError("the controller's loop did not start") from exc
                self.engine = engine
            return self.engine

    async def ahost(self) -> Engine | None:
        """The engine, hosted in the running loop when none runs; None when it runs elsewhere.

        Raises:
            BaseException: why the engine could not start.
        """
        if self.running:
            return self.engine if self.portal.on_loop_thread() else None
        engine = self._make_engine()
        ready = asyncio.Event()
        host = asyncio.get_running_loop().create_task(
            self.portal.host(engine.run, ready.set), name="streamfsm-engine"
        )
        await ready.wait()
        if host.done():
            host.result()
        self.engine, self.host = engine, host
        return engine

    def send(self, event: Input) -> None:
        """The one way a command reaches the core: as a value, on the engine's loop (opened
        first when none runs).

        Raises:
            whatever the core raises for ``event`` (``InvalidTransitionError``...);
            ControllerStoppedError: when the loop does not take it.
        """
        engine = self.open(self._command_timeout)
        self.call(lambda: engine.handle(event))

    def gap_found(self, report: GapReport) -> None:
        """Data resumed for a pair after an outage (the tracker calls it on the loop)."""
        engine = self.engine
        if engine is not None:
            engine.gap_found(report)

    def call(self, action: Callable[[], _T]) -> _T:
        """Run ``action`` on the loop and return its result (directly when on it).

        Raises:
            ControllerStoppedError: when the loop does not take it within the command timeout
                or is closed meanwhile.
        """
        try:
            return self.portal.call(action, timeout=self._command_timeout)
        except TimeoutError as exc:
            raise ControllerStoppedError("the controller's loop did not take the command") from exc
        except PortalClosedError as exc:
            raise ControllerStoppedError("the controller's loop has been closed") from exc

    def wait(
        self,
        make: Callable[[], Coroutine[Any, Any, None]],
        timeout: float | None,
        *,
        stopping: bool,
    ) -> None:
        """Run the coroutine ``make()`` on the loop from another thread and wait for it.

        Raises:
            ShutdownTimeoutError: when ``stopping`` and it has not finished after ``timeout``.
            ControllerStoppedError: when not ``stopping`` and it has not finished after
                ``timeout``, or when the loop is closed meanwhile.
            ConfigurationError: when ``timeout`` is neither None nor 0 .. a week of seconds.
        """
        timeout = require_timeout("timeout", timeout)
        try:
            self.portal.run(make, timeout)
        except TimeoutError as exc:
            if stopping:
                raise ShutdownTimeoutError(timeout) from exc
            raise ControllerStoppedError("the controller's loop did not take the command") from exc
        except PortalClosedError as exc:
            raise ControllerStoppedError("the controller's loop has been closed") from exc

    def close(self, timeout: float | None, stop: Callable[[], None]) -> None:
        """Call ``stop()`` if a loop runs, then end the loop; idempotent.

        Raises:
            ShutdownTimeoutError: when the loop thread still runs after ``timeout``.
            ConfigurationError: when ``timeout`` is neither None nor 0 .. a week of seconds.
        """
        timeout = require_timeout("timeout", timeout)
        with self._opening:
            if self.running:
                stop()
            try:
                self.portal.close(timeout)
            except TimeoutError as exc:
                raise ShutdownTimeoutError(timeout) from exc

    async def aclose(self) -> None:
        """End the engine hosted in this loop and wait for its task."""
        host = self.host
        self.portal.close(None)
        if host is not None:
            await host
        self.host = None


def block_until_signalled(
    wait: Callable[[Callable[[], bool], float | None], bool],
    done: Callable[[], bool],
    wake: Callable[[], None],
) -> bool:
    """Block in ``wait(predicate, None)`` until ``done()`` or SIGINT/SIGTERM arrives.

    On the main thread SIGINT and SIGTERM are caught for the duration (no KeyboardInterrupt) and
    call ``wake()``, which must make ``wait`` check its predicate again; the earlier handlers
    are restored afterwards. Elsewhere signals cannot be caught and only ``done()`` ends it.

    Returns:
        True when a signal ended the wait.
    """
    signalled = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        wait(done, None)
        return False

    def handler(_signum: int, _frame: FrameType | None) -> None:
        signalled.set()
        wake()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        wait(lambda: signalled.is_set() or done(), None)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return signalled.is_set()
