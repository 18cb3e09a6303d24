"""Hands market data to user callbacks, isolated from the stream and bounded in memory.

The socket reader puts whole decoded frames (batches) into a :class:`Dispatcher`; a consumer task
on the same loop delivers them message by message, in order. A callback may be a plain function or
a coroutine function. An exception in a callback is logged with its context and counted; it never
reaches the stream, never changes the state, and the remaining messages of the frame are still
delivered.

When undelivered messages exceed the bound, the overflow policy applies (see
:class:`~streamfsm.config.OverflowPolicy`): with ``conflate``, queued quotes that have a newer quote
of the same symbol behind them are dropped first, then the oldest messages; with ``drop_oldest``,
the oldest messages. Every drop is counted.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from collections.abc import Callable
from typing import Any

from streamfsm.config import OverflowPolicy
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote

__all__ = ["Delivery", "Dispatcher"]

#: How many callback failures are logged in full before only every n-th one is.
LOGGED_FAILURES = 20
#: Callbacks slower than this per batch are a slow consumer: the reader gets a turn after it.
DEFAULT_YIELD_AFTER = 0.001
#: After LOGGED_FAILURES, log one failure in this many.
LOG_EVERY = 1000


class Delivery:
    """One user callback and how to call it.

    Args:
        name: the callback's role, for logs (``on_quote``...).
        callback: the user's function or coroutine function.
        convert: turns a fast struct into what the callback expects; None hands it as it is.
    """

    __slots__ = ("call", "callback", "convert", "is_async", "name")

    def __init__(
        self,
        name: str,
        callback: Callable[[Any], object],
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.callback = callback
        self.convert = convert
        self.is_async = inspect.iscoroutinefunction(callback)
        #: One call per message: the callback itself when there is nothing to convert.
        self.call: Callable[[Any], object] = (
            callback if convert is None else lambda message: callback(convert(message))
        )


class _Batch:
    """One decoded frame's market data and the monotonic time its frame arrived."""

    __slots__ = ("messages", "received_at")

    def __init__(self, messages: list[Any], received_at: float) -> None:
        self.messages = messages
        self.received_at = received_at


class _Notice:
    __slots__ = ("argument", "callback")

    def __init__(self, callback: Callable[[Any], object], argument: object) -> None:
        self.callback = callback
        self.argument = argument


class Dispatcher:
    """A bounded queue of decoded batches and the task that delivers them.

    Args:
        deliveries: fast model type -> the callback for it; other types are not delivered.
        bound: most undelivered messages held before the overflow policy applies.
        overflow: the overflow policy.
        log: the controller's logger.
        yield_after: seconds of callbacks after which the consumer lets the reader run.
    """

    def __init__(
        self,
        deliveries: dict[type, Delivery],
        bound: int,
        overflow: OverflowPolicy,
        log: StreamLogger,
        yield_after: float = DEFAULT_YIELD_AFTER,
    ) -> None:
        self._deliveries = deliveries
        self._yield_after = yield_after
        self._bound = bound
        self._overflow = overflow
        self._log = log
        self._batches: collections.deque[_Batch | _Notice] = collections.deque()
        self._pending = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        #: While a batch is being delivered: the monotonic time its frame arrived, else None.
        self.current_received_at: float | None = None
        self.delivered = 0
        self.dropped = 0
        self.callback_errors = 0

    @property
    def pending(self) -> int:
        """Messages queued and not yet delivered."""
        return self._pending

    def put(self, batch: list[Any], received_at: float) -> None:
        """Queue a decoded frame's market data; never blocks, applies the overflow policy.

        Args:
            batch: the frame's market-data messages, in order.
            received_at: the monotonic time the frame arrived (see ``current_received_at``).
        """
        if self._closed or not batch:
            return
        self._batches.append(_Batch(batch, received_at))
        self._idle.clear()
        self._pending += len(batch)
        if self._pending > self._bound:
            self._shed()
        self._wakeup.set()

    def notify(self, callback: Callable[[Any], object], argument: object) -> None:
        """Queue one call ``callback(argument)`` (errors, gap reports), isolated like data."""
        if self._closed:
            return
        self._batches.append(_Notice(callback, argument))
        self._idle.clear()
        self._wakeup.set()

    async def wait_idle(self) -> None:
        """Wait until everything queued so far has been delivered (or the queue closed)."""
        await self._idle.wait()

    def close(self) -> None:
        """Deliver nothing more: drop what is queued and let the consumer task end."""
        self._closed = True
        self._batches.clear()
        self._pending = 0
        self._idle.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver batches until :meth:`close`; the consumer task's body.

        After a batch whose callbacks took longer than ``yield_after`` seconds, it yields to the
        event loop, so the socket reader drains what arrived meanwhile into the queue and the
        overflow policy, not the server's slow-client disconnect, decides what a slow consumer
        misses.
        """
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not self._batches:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = self._batches.popleft()
            if isinstance(item, _Notice):
                await self._notice(item)
                continue
            self._pending -= len(item.messages)
            started = loop.time()
            self.current_received_at = item.received_at
            try:
                await self._deliver(item.messages)
            finally:
                self.current_received_at = None
            if loop.time() - started > self._yield_after:
                await asyncio.sleep(0)

    async def _notice(self, notice: _Notice) -> None:
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

    async def _deliver(self, batch: list[Any]) -> None:
        deliveries = self._deliveries
        delivered = 0
        for message in batch:
            if self._closed:
                break
            delivery = deliveries.get(type(message))
            if delivery is None:
                continue
            delivered += 1
            try:
                result = delivery.call(message)
                if delivery.is_async:
                    await result  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - a user callback must never kill the stream
                self._callback_failed(delivery, message, exc)
        self.delivered += delivered

    def _callback_failed(self, delivery: Delivery, message: Any, exc: Exception) -> None:
        self.callback_errors += 1
        count = self.callback_errors
        if count <= LOGGED_FAILURES or count % LOG_EVERY == 0:
            self._log.error(
                "callback_failed",
                callback=delivery.name,
                symbol=getattr(message, "symbol", None),
                error_type=type(exc).__name__,
                error=str(exc),
                failures=count,
            )

    def _shed(self) -> None:
        before = self._pending
        if self._overflow is OverflowPolicy.CONFLATE:
            self._conflate_quotes()
        while self._pending > self._bound and self._batches:
            oldest = self._batches[0]
            if isinstance(oldest, _Notice):
                self._batches.rotate(-1)
                continue
            excess = self._pending - self._bound
            if len(oldest.messages) <= excess:
                self._batches.popleft()
                self._pending -= len(oldest.messages)
            else:
                del oldest.messages[:excess]
                self._pending -= excess
        dropped = before - self._pending
        self.dropped += dropped
        self._log.warning(
            "dispatch_overflow", dropped=dropped, dropped_total=self.dropped, bound=self._bound
        )

    def _conflate_quotes(self) -> None:
        """Keep only the newest queued quote of each symbol, newest batches first."""
        newest: set[str] = set()
        for index in range(len(self._batches) - 1, -1, -1):
            item = self._batches[index]
            if isinstance(item, _Notice):
                continue
            batch = item.messages
            kept: list[Any] = []
            for message in reversed(batch):
                if type(message) is Quote:
                    if message.symbol in newest:
                        continue
                    newest.add(message.symbol)
                kept.append(message)
            if len(kept) != len(batch):
                kept.reverse()
                self._pending -= len(batch) - len(kept)
                item.messages = kept
