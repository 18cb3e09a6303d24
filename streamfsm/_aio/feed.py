"""The transition feed: where each journal record goes after its transition, and who waits on it.

Every record is kept in the journal (and its file), logged, handed to the listeners and to the
async iterators, and wakes the threads blocked in ``wait_for``/``wait_synced``. The journal file is
open only while the machine runs: a record that ends in ``idle`` or ``stopped`` closes it after
being written, so a stopped controller holds no file, and a transition recorded while stopped
opens it only for its own line.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

from streamfsm._aio.journal import Journal
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._validate import require_timeout
from streamfsm.config import StreamConfig
from streamfsm.logs import StreamLogger, transition_level

__all__ = ["TransitionFeed"]

#: Records ending here close the journal file: nothing is expected until the next start.
_RESTING = frozenset({State.IDLE.value, State.STOPPED.value})

Listener = Callable[[TransitionRecord], object]


class TransitionFeed:
    """Fans each transition record out; ``publish`` runs on the controller's loop thread."""

    def __init__(self, config: StreamConfig, log: StreamLogger, clock: Callable[[], float]) -> None:
        self.journal = Journal(
            config.journal_size,
            config.journal_path,
            fsync=config.journal_fsync,
            fsync_interval=config.journal_fsync_interval,
            clock=clock,
        )
        self._log = log
        self._listeners: list[Listener] = []
        # Async waiters and iterators: each queue with the loop it belongs to.
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[TransitionRecord]]] = []
        self._changed = threading.Condition()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(record)`` after every transition; one that raises is logged."""
        self._listeners.append(listener)

    def publish(self, record: TransitionRecord) -> None:
        """Journal, log and hand ``record`` on; never raises (a transition has happened)."""
        try:
            record = self.journal.append(record)
            if record.dst in _RESTING:
                self.journal.close()
        except OSError as exc:
            # Nothing after a state change may fail: the record stays in memory, the loss is loud.
            self._log.error("journal_write_failed", error_type=type(exc).__name__, error=str(exc))
        self._log.log(
            transition_level(record.dst, record.trigger, record.error),
            "state_changed",
            src=record.src,
            dst=record.dst,
            trigger=record.trigger,
            reason=record.reason,
            error=record.error,
            code=record.code,
            attempt=record.attempt,
            delay=record.delay,
            connection_id=record.connection_id,
            seq=record.seq,
            journal_head=self.journal.head,
        )
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception as exc:  # noqa: BLE001 - a user listener must never break a transition
                self._log.error("listener_failed", error_type=type(exc).__name__, error=str(exc))
        for loop, queue in list(self._queues):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, record)
            except RuntimeError:
                # That loop has closed; its waiter can never read again.
                self._queues.remove((loop, queue))
        self.changed()

    def changed(self) -> None:
        """Wake the threads blocked in :meth:`wait` (after any input, transition or not)."""
        with self._changed:
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` holds; False when ``timeout`` passes first.

        Raises:
            ConfigurationError: when ``timeout`` is neither None nor 0 .. a week of seconds.
        """
        timeout = require_timeout("timeout", timeout)
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait in the running loop until ``predicate()`` holds, checked after each record."""
        queue = self.open_queue()
        try:
            while not predicate():
                await queue.get()
        finally:
            self.close_queue(queue)

    async def records(self) -> AsyncIterator[TransitionRecord]:
        """Every record from now on, in the running loop."""
        queue = self.open_queue()
        try:
            while True:
                yield await queue.get()
        finally:
            self.close_queue(queue)

    def open_queue(self) -> asyncio.Queue[TransitionRecord]:
        """A queue in the running loop that receives every record from now on."""
        queue = asyncio.Queue[TransitionRecord]()
        self._queues.append((asyncio.get_running_loop(), queue))
        return queue

    def close_queue(self, queue: asyncio.Queue[TransitionRecord]) -> None:
        """Stop feeding ``queue``."""
        self._queues = [entry for entry in self._queues if entry[1] is not queue]

    def close(self) -> None:
        """Close the journal file, if open; idempotent and never raises."""
        try:
            self.journal.close()
        except OSError as exc:
            self._log.error("journal_write_failed", error_type=type(exc).__name__, error=str(exc))
