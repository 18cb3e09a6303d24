"""Hands market data to user callbacks, isolated from the stream and bounded in memory.

The socket reader hands each decoded frame to :meth:`Dispatcher.put`. When nothing waits, the
frame's callbacks run right there, in the reader: no queue, no task switch, one time reading
before and after. A frame whose callbacks take longer than ``yield_after`` seconds is interrupted
between two messages; its rest waits in the :class:`~streamfsm._core.backlog.Backlog` (where the
overflow policy applies to it at once) and a consumer task delivers it after the reader has had
its turn, so the policy, not the server's slow-client disconnect, decides what a slow consumer
misses. A callback may be a function, a coroutine function, or any callable whose call returns an
awaitable: every awaitable result is awaited (by the consumer task) before the next message.

An exception in a callback is logged with its context and counted; it never reaches the stream,
never changes the state, and the remaining messages are still delivered.

:meth:`Dispatcher.close` may be called from any thread and from inside a callback. It takes effect
between two messages: once it returns, no callback starts, and everything still waiting is
discarded and counted in :attr:`Dispatcher.discarded` (and in :attr:`Dispatcher.dropped`).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from streamfsm._aio.callbacks import Delivery, Pending, log_callback_failure
from streamfsm._core.backlog import Backlog, Notice
from streamfsm._core.lag import LagHistogram
from streamfsm.config import OverflowPolicy
from streamfsm.logs import StreamLogger

__all__ = ["Delivery", "Dispatcher"]

#: Callbacks slower than this per frame are a slow consumer: the reader gets a turn.
DEFAULT_YIELD_AFTER: Final = 0.001
#: Default bounds of the backlog when the caller gives none (see StreamConfig).
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024


class Dispatcher:
    """Delivers decoded frames to callbacks, inline when it can, from a backlog when it must.

    Args:
        deliveries: fast model type -> the callback for it; other types are not delivered.
        bound: most waiting messages before the overflow policy drops the oldest.
        overflow: the overflow policy.
        log: the controller's logger.
        yield_after: seconds of callbacks after which the reader gets a turn.
        max_bytes: most estimated bytes of waiting messages.
        max_age: seconds a message may wait since its frame arrived; None for no bound.
        clock: the monotonic clock the frames' arrival times come from.
    """

    def __init__(
        self,
        deliveries: dict[type, Delivery],
        bound: int,
        overflow: OverflowPolicy,
        log: StreamLogger,
        yield_after: float = DEFAULT_YIELD_AFTER,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deliveries = deliveries
        #: Each delivery's lag: its frame's arrival to the start of its callbacks.
        self.lag_histogram = LagHistogram()
        self._yield_after = yield_after
        self._log = log
        self._clock = clock
        self._backlog = Backlog(overflow, bound, max_bytes, max_age)
        #: Held while callbacks run and while the backlog changes; close() waits on it.
        self._lock = threading.RLock()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._pending: Pending | None = None
        #: True while the consumer task awaits a callback: new frames must queue behind it.
        self._consumer_busy = False
        #: Seconds per message of the latest slice of callbacks (sizes the next slice).
        self._cost = yield_after
        #: While a frame is being delivered: the monotonic time it arrived, else None.
        self.current_received_at: float | None = None
        self.delivered = 0
        self.callback_errors = 0
        #: Messages let go because close() came while they waited.
        self.discarded = 0

    # ------------------------------------------------------------ reading

    @property
    def pending(self) -> int:
        """Messages waiting and not yet delivered."""
        return self._backlog.pending

    @property
    def dropped(self) -> int:
        """Messages received and never delivered: the overflow policy's drops and discards."""
        return self._backlog.dropped + self.discarded

    @property
    def backlog(self) -> Backlog:
        """The waiting messages and the policy's counters (read-only use)."""
        return self._backlog

    def lag(self, now: float) -> float:
        """Seconds since the oldest undelivered message's frame arrived; 0.0 when none waits."""
        arrived = self.current_received_at
        oldest = self._backlog.oldest_received_at()
        if oldest is not None and (arrived is None or oldest < arrived):
            arrived = oldest
        return max(0.0, now - arrived) if arrived is not None else 0.0

    # ------------------------------------------------------------ input

    def put(self, batch: list[Any], received_at: float, kind: type | None = None) -> None:
        """Deliver a decoded frame's market data now, or queue it behind what waits.

        Never blocks on the consumer; the overflow policy applies to what has to wait.

        Args:
            batch: the frame's market-data messages, in order; the dispatcher owns the list now.
            received_at: the monotonic time the frame arrived (see ``current_received_at``).
            kind: the type of every message of the frame, when it holds one type only.
        """
        if not batch:
            return
        with self._lock:
            if self._closed:
                self.discarded += len(batch)
                return
            if kind is not None and kind not in self._deliveries:
                return  # nobody listens to this channel
            if self._backlog.waiting or self._consumer_busy or self._pending is not None:
                self._backlog.append(batch, received_at, self._clock())
                self._idle.clear()
                self._wakeup.set()
                return
            if not self._deliver(batch, received_at, kind):
                self._idle.clear()
                self._wakeup.set()

    def notify(self, callback: Callable[[Any], object], argument: object) -> None:
        """Queue one call ``callback(argument)`` (errors, gap reports), isolated like data."""
        with self._lock:
            if self._closed:
                return
            self._backlog.add_notice(Notice(callback, argument))
            self._idle.clear()
            self._wakeup.set()

    async def wait_idle(self) -> None:
        """Wait until everything queued so far has been delivered (or the dispatcher closed)."""
        await self._idle.wait()

    def reopen(self) -> None:
        """Deliver again after :meth:`close` (a stopped controller started anew); on the loop.

        The consumer task ended with the close: the caller starts :meth:`run` again.
        """
        with self._lock:
            self._closed = False

    def close(self, timeout: float | None = None) -> bool:
        """Deliver nothing more; callable from any thread and from inside a callback.

        A callback running on another thread's behalf finishes; no callback starts once this
        returns. Waiting messages are discarded and counted in :attr:`discarded`.

        Args:
            timeout: from another thread, how long to wait for a running callback to return;
                None waits as long as it takes.

        Returns:
            False when ``timeout`` passed while a callback was still running (the dispatcher is
            closed all the same: nothing starts after that callback).
        """
        self._closed = True
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            discarded, _notices = self._backlog.clear()
            self.discarded += discarded
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
        finally:
            self._lock.release()
        self._wake_from_any_thread()
        return True

    # ------------------------------------------------------------ the consumer task

    async def run(self) -> None:
        """Deliver what waits until :meth:`close`; the consumer task's body."""
        self._loop = asyncio.get_running_loop()
        while not self._closed:
            pending = self._pending
            if pending is not None:
                self._pending = None
                await self._await(pending)
                continue
            with self._lock:
                item = self._backlog.take(self._clock()) if not self._closed else None
                if item is None:
                    self._idle.set()
                    self._wakeup.clear()
                elif not isinstance(item, Notice):
                    messages, received_at = item
                    started = time.perf_counter()
                    self._deliver(messages, received_at, None)
                    if time.perf_counter() - started <= self._yield_after:
                        continue
            if item is None:
                await self._wakeup.wait()
            elif isinstance(item, Notice):
                await self._notice(item)
            else:
                await asyncio.sleep(0)  # the reader's turn: new frames go through the policy
        self._idle.set()

    # ------------------------------------------------------------ delivering

    def _deliver(self, messages: list[Any], received_at: float, kind: type | None) -> bool:
        """Run callbacks over ``messages`` in slices of about ``yield_after`` seconds.

        Called with the lock held. Returns True when every message was handled; otherwise the
        rest waits in the backlog (or an awaitable in ``_pending``) for the consumer task.
        """
        if self._closed:
            self.discarded += len(messages)
            return True
        self.current_received_at = received_at
        self.lag_histogram.observe(max(0.0, self._clock() - received_at))
        started = began = time.perf_counter()
        todo = messages
        try:
            while todo:
                size = int(self._yield_after / self._cost) if self._cost > 0 else len(todo)
                later: list[Any] = []
                if size < len(todo):  # slow callbacks: a slice of at least one message
                    size = max(size, 1)
                    todo, later = todo[:size], todo[size:]
                rest = iter(todo)
                unheard = self._slice(rest, kind)
                left = list(rest)  # empty unless the slice was interrupted
                ended = time.perf_counter()
                handled = len(todo) - len(left)
                self.delivered += handled - unheard
                self._cost = (ended - began) / (handled or 1)
                left += later
                if self._closed:
                    self.discarded += len(left)
                    return True
                if not left:
                    break
                if self._pending is not None or ended - started > self._yield_after:
                    self._backlog.push_front(left, received_at, self._clock())
                    return False
                todo, began = left, ended
            return self._pending is None
        finally:
            self.current_received_at = None

    def _slice(self, rest: Iterator[Any], kind: type | None) -> int:
        """Deliver from ``rest`` until it ends, the dispatcher closes or a callback returns an
        awaitable; what is left stays in ``rest``. Returns how many messages had no callback."""
        delivery = self._deliveries.get(kind) if kind is not None else None
        if delivery is not None:
            if delivery.convert is None:
                self._slice_plain(rest, delivery)
            else:
                self._slice_converted(rest, delivery, delivery.convert)
            return 0
        deliveries = self._deliveries
        unheard = 0
        for message in rest:
            delivery = deliveries.get(type(message))
            if delivery is None:
                unheard += 1
                continue
            convert = delivery.convert
            try:
                result = delivery.callback(message if convert is None else convert(message))
            except Exception as exc:  # noqa: BLE001 - a user callback must never kill the stream
                self._callback_failed(delivery, message, exc)
                result = None
            if result is not None and inspect.isawaitable(result):
                self._pending = Pending(result, delivery, message)
                return unheard
            if self._closed:
                return unheard
        return unheard

    def _slice_plain(self, rest: Iterator[Any], delivery: Delivery) -> None:
        """:meth:`_slice` for a frame of one type whose callback takes the struct as it is."""
        callback = delivery.callback
        for message in rest:
            try:
                result = callback(message)
            except Exception as exc:  # noqa: BLE001 - a user callback must never kill the stream
                self._callback_failed(delivery, message, exc)
                result = None
            if result is not None and inspect.isawaitable(result):
                self._pending = Pending(result, delivery, message)
                return
            if self._closed:
                return

    def _slice_converted(
        self, rest: Iterator[Any], delivery: Delivery, convert: Callable[[Any], Any]
    ) -> None:
        """:meth:`_slice` for a frame of one type whose callback takes a converted model."""
        callback = delivery.callback
        for message in rest:
            try:
                result = callback(convert(message))
            except Exception as exc:  # noqa: BLE001 - a user callback must never kill the stream
                self._callback_failed(delivery, message, exc)
                result = None
            if result is not None and inspect.isawaitable(result):
                self._pending = Pending(result, delivery, message)
                return
            if self._closed:
                return

    async def _await(self, pending: Pending) -> None:
        if self._closed:
            pending.cancel()
            return
        self._consumer_busy = True
        try:
            await pending.awaitable
        except Exception as exc:  # noqa: BLE001 - a user callback must never kill the stream
            self._callback_failed(pending.delivery, pending.message, exc)
        finally:
            self._consumer_busy = False

    async def _notice(self, notice: Notice) -> None:
        self._consumer_busy = True
        try:
            result = notice.callback(notice.argument)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - a user callback must never kill the stream
            self.callback_errors += 1
            self._log.error(
                "callback_failed",
                callback=getattr(notice.callback, "__name__", "callback"),
                error_type=type(exc).__name__,
                error=str(exc),
            )
        finally:
            self._consumer_busy = False

    def _callback_failed(self, delivery: Delivery, message: Any, exc: Exception) -> None:
        self.callback_errors += 1
        log_callback_failure(self._log, delivery.name, message, exc, self.callback_errors)

    def _wake_from_any_thread(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._idle.set()
            self._wakeup.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._idle.set()
            self._wakeup.set()
        else:
            try:
                loop.call_soon_threadsafe(self._idle.set)
                loop.call_soon_threadsafe(self._wakeup.set)
            except RuntimeError:
                # The loop closed meanwhile: nobody waits on these events any more.
                pass
