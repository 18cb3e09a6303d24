"""The lease on NATS JetStream KV: the I/O around a :class:`~streamfsm.cluster.lease.LeaseCore`.

The lease key lives in a KV bucket whose ``max_age`` is the lease TTL, so every write (create or
renewal) lives ``lease_ttl`` of the server's time:

* acquire = ``create`` (written only if the key is absent); its revision is the tenure's epoch;
* renew = ``update(last=revision)`` (compare-and-set), several times per TTL;
* release = ``delete(last=revision)``, only after Alpaca is closed;
* a watch on the key tells followers of each renewal (pushing their vacancy timer) and of a
  delete or an expiry (the bucket places an expiry marker), so they try to take over at once.

Every request is bounded by ``request_timeout``; a timeout or a NATS error is a failed request
for the core, which fences on its own deadline. All methods run on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.client import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from streamfsm._core.records import TransitionRecord
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.lease import LeaseCore
from streamfsm.cluster.lease_commands import (
    Acquire,
    ArmLeaseTimer,
    BeginHolding,
    CancelLeaseTimer,
    Fence,
    LeaseTimer,
    Release,
    Renew,
)
from streamfsm.cluster.lease_table import LeaseState
from streamfsm.logs import StreamLogger

__all__ = ["NatsLease", "StoreError", "encode_holder", "open_bucket"]

#: What counts as a failed KV request: our timeout, or any NATS client or server error.
StoreError = (TimeoutError, nats.errors.Error)


def encode_holder(member: str, epoch: int) -> bytes:
    """The lease key's value: the holder and its tenure (0 on the create: the revision is it)."""
    return json.dumps({"member": member, "epoch": epoch}, separators=(",", ":")).encode()


def _decode_holder(value: bytes | None, revision: int) -> tuple[str, int] | None:
    """``(member, epoch)`` from a lease value, or None when it is not one of ours."""
    try:
        data = json.loads(value or b"")
        member, epoch = str(data["member"]), int(data["epoch"])
    except (ValueError, KeyError, TypeError):
        return None
    return member, epoch or revision


class NatsLease:
    """One process's lease: a core, its timers, its KV requests and the watch.

    Args:
        config: the cluster configuration.
        kv: the lease bucket (``max_age`` = ``lease_ttl``).
        key: the lease key for this account and feed.
        member: this process's name.
        on_hold: called with the epoch when this process becomes the holder.
        on_fence: awaited with the epoch when the holder must close Alpaca; must not raise.
        on_record: called with each journal record of the lease machine.
        log: the logger.
        on_step: called after every input the core handled (wakes waiters on its state).
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        kv: KeyValue,
        key: str,
        member: str,
        on_hold: Callable[[int], None],
        on_fence: Callable[[int], Awaitable[None]],
        on_record: Callable[[TransitionRecord], None],
        log: StreamLogger,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._kv = kv
        self._key = key
        self._on_hold = on_hold
        self._on_fence = on_fence
        self._on_record = on_record
        self._log = log
        self._on_step = on_step
        self._loop = asyncio.get_running_loop()
        self.core = LeaseCore(
            config,
            member,
            clock=self._loop.time,
            wall=lambda: datetime.now(UTC),
            on_record=self._record,
        )
        self._timers: dict[LeaseTimer, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Watch the key and join the election."""
        self._stopped.clear()
        self._restart_watch()
        self.core.request_join()
        self._run()

    async def stop(self) -> None:
        """Leave: a holder fences (closes Alpaca), then deletes the lease; wait for all of it."""
        self.core.request_stop()
        self._run()
        await self._stopped.wait()
        if self._watch_task is not None:
            self._watch_task.cancel()
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def store_lost(self) -> None:
        """The NATS connection dropped: a holder fences at once."""
        self._log.warning("lease_store_lost", state=self.core.state.value)
        self.core.store_lost()
        self._run()

    def store_back(self) -> None:
        """The NATS connection is back: watch the key again (the old watch may be gone)."""
        if self.core.state is not LeaseState.STOPPED:
            self._restart_watch()

    def may_publish(self) -> bool:
        """True while this process holds the lease and is before its fence deadline."""
        return self.core.may_publish(self._loop.time())

    # ------------------------------------------------------------ commands

    def _run(self) -> None:
        """Carry out what the core asked for, in order."""
        for command in self.core.drain():
            if isinstance(command, ArmLeaseTimer):
                self._cancel_timer(command.timer)
                self._timers[command.timer] = self._loop.call_later(
                    command.delay, self._fire, command.timer, command.token
                )
            elif isinstance(command, CancelLeaseTimer):
                self._cancel_timer(command.timer)
            elif isinstance(command, BeginHolding):
                self._log.info("lease_acquired", epoch=command.epoch)
                self._on_hold(command.epoch)
            elif isinstance(command, Fence):
                self._log.info("lease_fenced", epoch=command.epoch, reason=command.reason)
                self._spawn(self._fence(command))
            elif isinstance(command, Acquire):
                self._spawn(self._acquire(command))
            elif isinstance(command, Renew):
                self._spawn(self._renew(command))
            else:
                self._spawn(self._release(command))
        if self.core.state is LeaseState.STOPPED:
            self._stopped.set()
        if self._on_step is not None:
            self._on_step()

    def _fire(self, timer: LeaseTimer, token: int) -> None:
        self._timers.pop(timer, None)
        self.core.timer_fired(timer, token)
        self._run()

    def _cancel_timer(self, timer: LeaseTimer) -> None:
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, work: Awaitable[int]) -> int:
        async with asyncio.timeout(self._config.request_timeout):
            return await work

    async def _create(self, value: bytes) -> int:
        """Write the key only if it is absent, deleted or expired; its new revision.

        nats-py's ``create`` treats the server's expiry marker (``Nats-Marker-Reason: MaxAge``,
        no value) as a live entry, so a lease that expired could not be created again until
        the marker itself expired (a whole TTL more). A marker is the key's last message: write
        on top of it by revision instead.

        Raises:
            KeyWrongLastSequenceError: when a live holder exists.
        """
        try:
            return await self._kv.create(self._key, value)
        except nats.js.errors.KeyWrongLastSequenceError:
            try:
                entry = await self._kv.get(self._key)
            except nats.js.errors.KeyNotFoundError:
                raise nats.js.errors.KeyWrongLastSequenceError from None
            if entry.value:
                raise
            return await self._kv.update(self._key, value, last=entry.revision)

    async def _acquire(self, command: Acquire) -> None:
        try:
            revision = await self._request(self._create(encode_holder(command.member, 0)))
        except nats.js.errors.KeyWrongLastSequenceError:
            self.core.create_refused(command.token)
        except StoreError as exc:
            self._log.info("lease_create_failed", error_type=type(exc).__name__)
            self.core.create_failed(command.token)
        else:
            self.core.create_answered(command.token, revision)
        self._run()

    async def _renew(self, command: Renew) -> None:
        value = encode_holder(command.member, command.epoch)
        try:
            revision = await self._request(self._kv.update(self._key, value, last=command.revision))
        except nats.js.errors.KeyWrongLastSequenceError:
            self.core.renew_refused(command.token)
        except StoreError as exc:
            self._log.info("lease_renew_failed", error_type=type(exc).__name__)
            self.core.renew_failed(command.token)
        else:
            self.core.renew_answered(command.token, revision)
        self._run()

    async def _release(self, command: Release) -> None:
        try:
            async with asyncio.timeout(self._config.request_timeout):
                await self._kv.delete(self._key, last=command.revision)
        except StoreError as exc:
            # Someone else holds it, or the store is gone: the lease expires on its own.
            self._log.info("lease_release_failed", error_type=type(exc).__name__)
        else:
            self._log.info("lease_released", revision=command.revision)

    async def _fence(self, command: Fence) -> None:
        await self._on_fence(command.epoch)
        self.core.alpaca_closed(command.epoch)
        self._run()

    # ------------------------------------------------------------ watch

    def _restart_watch(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        self._watch_task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Feed what the key does to the core, until cancelled or the connection drops."""
        try:
            watcher = await self._kv.watch(self._key)
        except StoreError as exc:
            self._log.info("lease_watch_failed", error_type=type(exc).__name__)
            return
        seen = False
        try:
            async for entry in watcher:
                # None marks the end of the initial state: the key is absent if nothing came.
                if entry is not None or not seen:
                    self._observe(entry)
                seen = True
        finally:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except StoreError as exc:
                self._log.debug("lease_watch_stop_failed", error_type=type(exc).__name__)

    def _observe(self, entry: Any) -> None:
        if entry is None or entry.operation in (KV_DEL, KV_PURGE):
            self.core.vacated()
        else:
            holder = _decode_holder(entry.value, entry.revision)
            if holder is not None:
                self.core.observed(*holder)
        self._run()

    def _record(self, record: TransitionRecord) -> None:
        self._log.info(
            "lease_changed",
            src=record.src,
            dst=record.dst,
            trigger=record.trigger,
            reason=record.reason,
            epoch=record.epoch,
        )
        self._on_record(record)


async def open_bucket(js: JetStreamContext, name: str, ttl: float, replicas: int) -> KeyValue:
    """Create (or open, when it exists with the same settings) a KV bucket for the cluster.

    Entries live ``ttl`` seconds after their last write; an expiry leaves a marker that watchers
    see (kept ``ttl`` seconds too), so a holder's death is noticed without polling.
    """
    return await js.create_key_value(
        bucket=name, ttl=ttl, history=1, replicas=replicas, limit_marker_ttl=ttl
    )
