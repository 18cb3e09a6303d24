"""A thread that runs one asyncio loop, and the door that carries calls onto it from other threads.

Modelled on anyio's ``BlockingPortal`` / ``start_blocking_portal``: :meth:`LoopPortal.open` starts
a named daemon thread whose loop runs one *main* coroutine for the portal's whole life;
:meth:`LoopPortal.call` runs a plain function on that loop and :meth:`LoopPortal.run` a coroutine,
each returning the result (or raising the exception) in the calling thread; :meth:`LoopPortal.close`
asks *main* to end and joins the thread. The sync stream controller and the simulator thread share
it.

The portal knows nothing of what *main* does: its own state is only "no thread", "thread running"
and the calls in flight, and a call that the loop can no longer take fails at once instead of
waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopPortal", "Main", "PortalClosedError"]

_T = TypeVar("_T")

#: The body a portal's thread runs: ``main(ready, closing)`` calls ``ready()`` once it can take
#: calls and returns soon after ``closing`` is set.
Main = Callable[[Callable[[], None], asyncio.Event], Coroutine[Any, Any, None]]


def _run(
    main: Coroutine[Any, Any, None], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    """``asyncio.run(main)`` on a loop from ``loop_factory`` (3.11's ``run`` takes no factory)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)


class PortalClosedError(RuntimeError):
    """The portal's loop is not running (never opened, closed, or ending): the call did not run."""


class LoopPortal:
    """One event loop on one named daemon thread, and calls onto it from any other thread.

    Args:
        name: the thread's name (leak checks look for it).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        # Guards the loop handle against the loop's end, so no call is scheduled on a dead loop.
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()

    @property
    def running(self) -> bool:
        """True while the loop takes calls (from ``ready()`` until *main* returns)."""
        return self._loop is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, or None."""
        return self._loop

    def on_loop_thread(self) -> bool:
        """True when called from the portal's own loop thread."""
        return self._thread_id is not None and threading.get_ident() == self._thread_id

    def open(
        self,
        main: Main,
        timeout: float | None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        """Start the thread and run ``main`` on its loop; return once ``main`` called ``ready``.

        The loop is a new one from ``loop_factory`` (uvloop's, for instance), asyncio's default
        when it is None.

        Raises:
            PortalClosedError: when a loop already runs.
            TimeoutError: when ``ready`` is not called within ``timeout`` (the thread is told to
                end).
            BaseException: whatever ``main`` raised before calling ``ready``.
        """
        if self.running or (self._thread is not None and self._thread.is_alive()):
            raise PortalClosedError(f"{self.name} is already open")
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=_run,
            args=(self._serve(main, ready.set, failure), loop_factory),
            name=self.name,
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not ready.wait(timeout):
            self._request_close()
            raise TimeoutError(f"{self.name} did not come up within {timeout} s")
        if failure:
            thread.join(timeout)
            self._thread = None
            raise failure[0]

    async def host(self, main: Main, ready: Callable[[], None]) -> None:
        """Run ``main`` in the running loop, taking calls from other threads while it runs.

        The async twin of :meth:`open`: the caller's loop serves instead of a thread of ours.

        Raises:
            PortalClosedError: when a loop already runs.
            BaseException: whatever ``main`` raised.
        """
        if self.running:
            raise PortalClosedError(f"{self.name} is already open")
        await self._serve(main, ready, None)

    async def _serve(
        self, main: Main, ready: Callable[[], None], failure: list[BaseException] | None
    ) -> None:
        closing = asyncio.Event()
        started = False

        def now_ready() -> None:
            nonlocal started
            with self._lock:
                self._loop = asyncio.get_running_loop()
                self._closing = closing
            started = True
            ready()

        self._thread_id = threading.get_ident()
        try:
            await main(now_ready, closing)
        except BaseException as exc:
            if started or failure is None:
                raise
            failure.append(exc)  # open() re-raises it in the caller's thread
        finally:
            with self._lock:
                self._loop = None
                self._closing = None
                self._thread_id = None
                pending, self._pending = self._pending, set()
            for future in pending:
                if not future.done():
                    future.set_exception(PortalClosedError(f"{self.name} ended"))
            if not started:
                ready()

    def call(self, func: Callable[..., _T], *args: Any, timeout: float | None) -> _T:
        """Run ``func(*args)`` on the loop and return its result; directly when on the loop.

        Raises:
            PortalClosedError: when the loop is not running or ends before running ``func``.
            TimeoutError: when the loop does not finish ``func`` within ``timeout``; a ``func``
                not yet started then never runs.
            BaseException: whatever ``func`` raised.
        """
        if self.on_loop_thread():
            return func(*args)
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller, who re-raises
                future.set_exception(exc)

        self._schedule(future, lambda loop: loop.call_soon_threadsafe(run))
        return self._result(future, timeout)

    def run(self, make: Callable[[], Coroutine[Any, Any, _T]], timeout: float | None) -> _T:
        """Run the coroutine ``make()`` on the loop and return its result.

        Raises:
            PortalClosedError: on the loop's own thread (it would wait for itself), or when the
                loop is not running or ends first.
            TimeoutError: when it does not finish within ``timeout`` (it is then cancelled).
            BaseException: whatever the coroutine raised.
        """
        if self.on_loop_thread():
            raise PortalClosedError(f"{self.name}: await it on its own loop instead")
        holder: list[concurrent.futures.Future[_T]] = []

        def submit(loop: asyncio.AbstractEventLoop) -> None:
            holder.append(asyncio.run_coroutine_threadsafe(make(), loop))

        with self._lock:
            loop = self._loop
            if loop is None:
                raise PortalClosedError(f"{self.name} is not running")
            submit(loop)
            self._pending.add(holder[0])
        return self._result(holder[0], timeout)

    def close(self, timeout: float | None) -> None:
        """Tell *main* to end and wait for the thread; idempotent. On the loop's own thread it
        only tells *main* (the thread ends after the current callback).

        Raises:
            TimeoutError: when the thread still runs after ``timeout``.
        """
        self._request_close()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{self.name} did not end within {timeout} s")
        self._thread = None

    def _request_close(self) -> None:
        with self._lock:
            loop, closing = self._loop, self._closing
            if loop is None or closing is None:
                return
            # RuntimeError: the loop is closing already, which is what was asked.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(closing.set)

    def _schedule(
        self,
        future: concurrent.futures.Future[Any],
        schedule: Callable[[asyncio.AbstractEventLoop], object],
    ) -> None:
        with self._lock:
            loop = self._loop
            if loop is None:
                raise PortalClosedError(f"{self.name} is not running")
            self._pending.add(future)
            schedule(loop)

    def _result(self, future: concurrent.futures.Future[_T], timeout: float | None) -> _T:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise
        finally:
            with self._lock:
                self._pending.discard(future)
