"""The dispatch backlog: decoded market data waiting for slow callbacks, bounded three ways.

Only what callbacks could not take at once waits here (see :mod:`streamfsm._aio.dispatch`): a
consumer that keeps up never touches it. A waiting message is bounded by count
(``max_messages``), by estimated bytes (``max_bytes``) and by age (``max_age``, seconds since its
frame arrived). With the ``conflate`` policy a quote that waits is superseded the moment a newer
quote of the same symbol arrives, so a slow consumer always receives the newest price; trades,
bars and statuses are never conflated and keep their order. Every message the backlog lets go is
counted in :attr:`Backlog.dropped`, split by reason.

Superseded messages are replaced by ``None`` in place (a tombstone) and filtered out when their
batch is taken: superseding costs one dictionary lookup per waiting quote, never a list rebuild.

Sans-I/O: the caller passes every time reading (``received_at``, ``now``) in.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterable
from typing import Any, Final

from streamfsm.config import OverflowPolicy
from streamfsm.models import Quote

__all__ = ["Backlog", "Notice", "footprint"]

#: The quote types the conflating policy supersedes by symbol.
CONFLATABLE: Final[frozenset[type]] = frozenset({Quote})


def footprint(message: object) -> int:
    """Estimate the bytes ``message`` holds: the object, its field values and their items.

    Shared interned values (small ints, ``None``) are counted too, so it errs on the high side.
    """
    size = sys.getsizeof(message)
    fields: Iterable[str] = getattr(message, "__struct_fields__", ())
    for name in fields:
        value = getattr(message, name)
        size += sys.getsizeof(value)
        if isinstance(value, list):
            size += sum(map(sys.getsizeof, value))
    return size


class Notice:
    """One queued call ``callback(argument)`` (an error, a gap report), ordered with the data."""

    __slots__ = ("argument", "callback")

    def __init__(self, callback: Callable[[Any], object], argument: object) -> None:
        self.callback = callback
        self.argument = argument


class _Batch:
    """One frame's waiting messages; superseded or dropped ones are ``None``."""

    __slots__ = ("live", "messages", "nbytes", "queued", "received_at", "unit")

    def __init__(self, messages: list[Any], received_at: float, unit: int) -> None:
        self.messages: list[Any] = messages
        self.received_at = received_at
        self.live = len(messages)
        self.unit = unit
        self.nbytes = unit * len(messages)
        #: False once taken out of the backlog: index entries into it are stale then.
        self.queued = True


def _waiting(batch: _Batch, position: int) -> bool:
    """Whether the message at ``position`` of ``batch`` still waits in the backlog."""
    return batch.queued and batch.messages[position] is not None


class Backlog:
    """Waiting batches and notices in arrival order, with the overflow policy applied at once.

    Args:
        policy: ``conflate`` (newest quote per symbol wins at once, then the oldest go) or
            ``drop_oldest``.
        max_messages: most waiting messages.
        max_bytes: most estimated bytes of waiting messages (see :func:`footprint`).
        max_age: seconds a message may wait since its frame arrived; None for no age bound.
    """

    def __init__(
        self,
        policy: OverflowPolicy,
        max_messages: int,
        max_bytes: int,
        max_age: float | None,
    ) -> None:
        self._conflate = OverflowPolicy(policy) is OverflowPolicy.CONFLATE
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._items: collections.deque[_Batch | Notice] = collections.deque()
        #: The same deque, for a truth test without a method call on the hot path (read-only).
        self.waiting = self._items
        #: symbol -> where its newest waiting quote is (batch, position).
        self._newest: dict[str, tuple[_Batch, int]] = {}
        self._units: dict[type, int] = {}
        self.pending = 0
        self.bytes = 0
        #: Messages let go, by reason.
        self.superseded = 0
        self.expired = 0
        self.overflowed = 0

    @property
    def dropped(self) -> int:
        """Every message the backlog let go (superseded, expired, over a bound)."""
        return self.superseded + self.expired + self.overflowed

    def __bool__(self) -> bool:
        return bool(self._items)

    def oldest_received_at(self) -> float | None:
        """When the frame of the oldest waiting message arrived; None when nothing waits."""
        for item in self._items:
            if isinstance(item, _Batch) and item.live:
                return item.received_at
        return None

    def add_notice(self, notice: Notice) -> None:
        """Queue a notice behind everything waiting."""
        self._items.append(notice)

    def append(self, messages: list[Any], received_at: float, now: float) -> None:
        """Queue a frame's messages behind everything waiting, then apply the policy."""
        batch = self._batch(messages, received_at)
        self._items.append(batch)
        if self._conflate:
            self._supersede_with(batch)
        self._enforce(now)

    def push_front(self, messages: list[Any], received_at: float, now: float) -> None:
        """Queue the rest of a frame whose delivery was interrupted: older than all that waits."""
        batch = self._batch(messages, received_at)
        self._items.appendleft(batch)
        if self._conflate:
            self._supersede_older(batch)
        self._enforce(now)

    def take(self, now: float) -> tuple[list[Any], float] | Notice | None:
        """The next item to deliver: a frame's live messages and arrival time, or a notice.

        Batches that waited longer than ``max_age`` are dropped (counted) on the way.
        """
        items = self._items
        cutoff = None if self.max_age is None else now - self.max_age
        while items:
            item = items.popleft()
            if isinstance(item, Notice):
                return item
            item.queued = False
            if not item.live:
                continue
            self.pending -= item.live
            self.bytes -= item.nbytes
            if cutoff is not None and item.received_at < cutoff:
                self.expired += item.live
                continue
            messages = item.messages
            if item.live != len(messages):
                messages = [message for message in messages if message is not None]
            if not items:
                self._newest.clear()
            return messages, item.received_at
        self._newest.clear()
        return None

    def clear(self) -> tuple[int, list[Notice]]:
        """Let everything go; return how many messages were waiting, and the notices."""
        discarded = self.pending
        notices = [item for item in self._items if isinstance(item, Notice)]
        for item in self._items:
            if isinstance(item, _Batch):
                item.queued = False
        self._items.clear()
        self._newest.clear()
        self.pending = 0
        self.bytes = 0
        return discarded, notices

    # ------------------------------------------------------------ internals

    def _batch(self, messages: list[Any], received_at: float) -> _Batch:
        kind = type(messages[0])
        unit = self._units.get(kind)
        if unit is None:
            unit = self._units[kind] = footprint(messages[0])
        batch = _Batch(messages, received_at, unit)
        self.pending += batch.live
        self.bytes += batch.nbytes
        return batch

    def _drop(self, batch: _Batch, position: int) -> None:
        batch.messages[position] = None
        batch.live -= 1
        batch.nbytes -= batch.unit
        self.pending -= 1
        self.bytes -= batch.unit

    def _supersede_with(self, batch: _Batch) -> None:
        """The newest batch: each of its quotes supersedes the waiting one of its symbol."""
        newest = self._newest
        for position, message in enumerate(batch.messages):
            if type(message) in CONFLATABLE:
                symbol = message.symbol
                older = newest.get(symbol)
                if older is not None and _waiting(*older):
                    self._drop(*older)
                    self.superseded += 1
                newest[symbol] = (batch, position)

    def _supersede_older(self, batch: _Batch) -> None:
        """The oldest batch: its quotes go when a newer one of their symbol waits."""
        newest = self._newest
        messages = batch.messages
        for position in range(len(messages) - 1, -1, -1):
            message = messages[position]
            if type(message) in CONFLATABLE:
                symbol = message.symbol
                newer = newest.get(symbol)
                if (
                    newer is not None
                    and newer[0].queued
                    and newer[0].messages[newer[1]] is not None
                ):
                    self._drop(batch, position)
                    self.superseded += 1
                    continue
                newest[symbol] = (batch, position)

    def _enforce(self, now: float) -> None:
        """Apply the age bound, then the count and byte bounds (the oldest messages go)."""
        if self.max_age is not None:
            self._expire(now - self.max_age)
        if self.pending <= self.max_messages and self.bytes <= self.max_bytes:
            return
        for item in self._items:
            if not isinstance(item, _Batch) or not item.live:
                continue
            messages = item.messages
            for position, message in enumerate(messages):
                if message is not None:
                    self._drop(item, position)
                    self.overflowed += 1
                    if self.pending <= self.max_messages and self.bytes <= self.max_bytes:
                        return

    def _expire(self, cutoff: float) -> None:
        items = self._items
        notices: list[Notice] = []
        while items:
            head = items[0]
            if isinstance(head, Notice):
                notices.append(head)
                items.popleft()
                continue
            if head.received_at >= cutoff:
                break
            items.popleft()
            head.queued = False
            self.expired += head.live
            self.pending -= head.live
            self.bytes -= head.nbytes
        items.extendleft(reversed(notices))
