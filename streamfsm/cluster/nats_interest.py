"""Interest on NATS JetStream KV: each process publishes its set, the holder watches the union.

Each process keeps one key, ``<prefix>.<member>``, in a bucket whose ``max_age`` is the interest
TTL: :class:`InterestPublisher` writes the whole desired set on every change and again every
third of the TTL (the heartbeat), and deletes the key when it leaves. A process that dies stops
writing and the server expires its key, leaving a marker. :class:`InterestWatcher`, run by the
holder, turns what the keys do into an :class:`~streamfsm.cluster.interest.InterestBook` and
reports each change of the union, so Alpaca is sent only differences.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from streamfsm._core.subscriptions import Subscription
from streamfsm.cluster.interest import (
    InterestBook,
    UnionChange,
    decode_interest,
    encode_interest,
)
from streamfsm.cluster.nats_lease import StoreError
from streamfsm.errors import InvalidSymbolError
from streamfsm.logs import StreamLogger

__all__ = ["HEARTBEATS_PER_TTL", "InterestPublisher", "InterestWatcher"]

#: Heartbeats per interest TTL: two may be lost before the interest expires.
HEARTBEATS_PER_TTL: Final = 3
#: How long stopping a watch may take by default: ``ClusterConfig.request_timeout``'s default.
DEFAULT_STOP_TIMEOUT: Final = 0.4


class InterestPublisher:
    """One process's interest: written on change and on every heartbeat, deleted on leave.

    Args:
        kv: the interest bucket (``max_age`` = the interest TTL).
        key: this process's key.
        ttl: the interest TTL, seconds.
        log: the logger.
        timeout: how long one write or the delete may take before it counts as failed.
    """

    def __init__(
        self,
        kv: KeyValue,
        key: str,
        ttl: float,
        log: StreamLogger,
        timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        self._kv = kv
        self._timeout = timeout
        self._key = key
        self._interval = ttl / HEARTBEATS_PER_TTL
        self._log = log
        self._loop = asyncio.get_running_loop()
        self.desired = Subscription()
        self.writes = 0
        #: Set after every successful write (heartbeats included).
        self.written = asyncio.Event()
        self._heartbeat: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    async def publish(self, desired: Subscription) -> None:
        """Publish ``desired`` now (the whole set) and keep it alive with heartbeats."""
        self.desired = desired
        await self._write()

    async def stop(self) -> None:
        """Stop the heartbeat and delete the key, so the holder forgets this process at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._writing is not None:
            # A heartbeat under way is abandoned: the delete below supersedes it.
            self._writing.cancel()
            await asyncio.gather(self._writing, return_exceptions=True)
        try:
            async with asyncio.timeout(self._timeout):
                await self._kv.delete(self._key)
        except StoreError as exc:
            self._log.info("interest_delete_failed", error_type=type(exc).__name__)

    async def _write(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._heartbeat = self._loop.call_later(self._interval, self._beat)
        try:
            async with asyncio.timeout(self._timeout):
                await self._kv.put(self._key, encode_interest(self.desired))
            self.writes += 1
            self.written.set()
        except StoreError as exc:
            # The next heartbeat tries again; until the TTL ends the old set stands.
            self._log.info("interest_write_failed", error_type=type(exc).__name__)

    def _beat(self) -> None:
        self._heartbeat = None
        self._writing = asyncio.ensure_future(self._write())


class InterestWatcher:
    """The holder's view of every live process's interest.

    Args:
        kv: the interest bucket.
        prefix: the keys' common prefix (``<prefix>.<member>``).
        on_change: called with each change of the union (never with an empty change).
        log: the logger.
        stop_timeout: how long :meth:`stop` waits for the watch to end. nats-py's watcher
            stop unsubscribes by waiting for its pending callbacks, which can wait on the
            watch's own setup; a stop (a fence) must never hang on it.
    """

    def __init__(
        self,
        kv: KeyValue,
        prefix: str,
        on_change: Callable[[UnionChange], None],
        log: StreamLogger,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        self._kv = kv
        self._stop_timeout = stop_timeout
        self._prefix = prefix
        self._on_change = on_change
        self._log = log
        self.book = InterestBook()
        self._task: asyncio.Task[None] | None = None
        #: Set once the live keys have all been read (the book is complete).
        self.ready = asyncio.Event()
        #: Set after every key update the watcher applied, whether or not the union changed.
        self.updated = asyncio.Event()

    def start(self) -> None:
        """Start watching (again, after a reconnect: the book is rebuilt from the live keys)."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        """Stop watching; idempotent. Returns within ``stop_timeout`` whatever nats-py does."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            _done, pending = await asyncio.wait({task}, timeout=self._stop_timeout)
            if pending:
                self._log.info("interest_watch_stop_slow", waited=self._stop_timeout)

    async def _watch(self) -> None:
        try:
            watcher = await self._kv.watch(f"{self._prefix}.>")
        except StoreError as exc:
            self._log.info("interest_watch_failed", error_type=type(exc).__name__)
            return
        try:
            async for entry in watcher:
                if entry is None:
                    self.ready.set()
                else:
                    self._apply(entry)
        finally:
            try:
                async with asyncio.timeout(self._stop_timeout):
                    await watcher.stop()  # type: ignore[no-untyped-call]
            except StoreError as exc:
                self._log.debug("interest_watch_stop_failed", error_type=type(exc).__name__)

    def _apply(self, entry: Any) -> None:
        member = str(entry.key)[len(self._prefix) + 1 :]
        if entry.operation in (KV_DEL, KV_PURGE):
            change = self.book.remove(member)
        else:
            try:
                desired = decode_interest(entry.value or b"")
            except (ValueError, TypeError, InvalidSymbolError) as error:
                self._log.warning("interest_malformed", member=member, error=str(error))
                self.updated.set()
                return
            change = self.book.set(member, desired)
        self.updated.set()
        if change:
            self._on_change(change)
