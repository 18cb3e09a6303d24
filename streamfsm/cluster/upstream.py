"""The holder's Alpaca connection: its own connection machine, subscribed to the interest union.

While a process holds the lease it runs an :class:`Upstream`: a
:class:`~streamfsm._core.core.ConnectionCore` with the same transition table as any controller
(backoff, breaker, stale watchdog, resubscription), driven by an
:class:`~streamfsm._aio.engine.Engine` on the member's loop. Its sessions relay every frame
Alpaca sends onto the bus before decoding it (only while the lease allows, checked per frame),
and it delivers nothing itself: every member, the holder included, reads the bus. Its desired set
is the union of every member's published interest, changed only by differences. It publishes a
:class:`~streamfsm.cluster.status.HolderStatus` on every change and with a heartbeat.

A 406 inside the reap window after the takeover is the previous holder's socket, not yet reaped
by Alpaca: it becomes a :class:`~streamfsm.errors.PredecessorStillConnectedError` with its own
doubling, bounded cool-down, which the breaker does not count.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import attrs
from nats.aio.client import Client
from nats.js.kv import KeyValue

from streamfsm._aio.clock import SystemClock
from streamfsm._aio.engine import Engine, SessionContext, SessionLike
from streamfsm._aio.session import Session
from streamfsm._core.commands import Input, OpenSession, SessionEnded, SymbolsRequested
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import DataTracker
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.interest import UnionChange
from streamfsm.cluster.names import ClusterNames
from streamfsm.cluster.nats_interest import InterestWatcher
from streamfsm.cluster.nats_lease import StoreError
from streamfsm.cluster.nats_relay import RelayPublisher
from streamfsm.cluster.status import HolderStatus, encode_status, uncovered
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ConnectionLimitError,
    PredecessorStillConnectedError,
    ServerError,
    StreamError,
)
from streamfsm.logs import StreamLogger

__all__ = ["UPSTREAM_JOURNAL_SIZE", "Upstream"]

#: Upstream transition records kept in memory for ``lease_journal()``-style inspection.
UPSTREAM_JOURNAL_SIZE: Final = 200


class Upstream:
    """One tenure's Alpaca connection on the holder.

    Args:
        cluster: the cluster configuration.
        config: the member's stream configuration (endpoint, market, feed, policies).
        credentials: the account's credentials.
        client: the member's NATS client.
        names: the cluster's NATS names for this account and feed.
        interest: the interest bucket.
        epoch: the tenure (the lease epoch).
        member: this process's member name.
        may_publish: the lease's per-frame check.
        log: the member's logger.
        rng: backoff jitter.
    """

    def __init__(
        self,
        cluster: ClusterConfig,
        *,
        config: StreamConfig,
        credentials: Credentials,
        client: Client,
        names: ClusterNames,
        interest: KeyValue,
        epoch: int,
        member: str,
        may_publish: Callable[[], bool],
        log: StreamLogger,
        rng: random.Random,
    ) -> None:
        self._cluster = cluster
        self._client = client
        self._names = names
        self.epoch = epoch
        self._member = member
        self._log = log.bind(role="holder", lease_epoch=epoch)
        self._loop = asyncio.get_running_loop()
        self._took_over_at = self._loop.time()
        self._predecessor_refusals = 0
        self.journal: collections.deque[TransitionRecord] = collections.deque(
            maxlen=UPSTREAM_JOURNAL_SIZE
        )
        clock = SystemClock()
        # The journal file, if any, belongs to the member's own machine.
        upstream_config = attrs.evolve(config, journal_path=None)
        self.core = ConnectionCore(
            upstream_config,
            clock=clock.monotonic,
            wall=lambda: datetime.now(UTC),
            rng=rng,
            correlation_id=f"{member}-upstream-{epoch}",
            on_record=self._on_record,
        )
        self.publisher = RelayPublisher(client, names.frames_subject, epoch, may_publish)
        self.engine = Engine(
            self.core,
            config=upstream_config,
            credentials=credentials,
            tracker=DataTracker(self.core.activity, lambda _report: None),
            deliveries={},
            clock=clock,
            log=self._log,
            on_error=None,
            on_gap=None,
            on_handled=self._changed,
            session_factory=self._session,
        )
        self.watcher = InterestWatcher(
            interest,
            names.interest_prefix,
            self._union_changed,
            log,
            stop_timeout=cluster.request_timeout,
        )
        self._started = False
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._published: HolderStatus | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Read the union, then connect to Alpaca with it; returns once the machine runs."""
        ready = asyncio.Event()
        self._task = asyncio.ensure_future(self.engine.run(ready.set, self._closing))
        await ready.wait()
        self.watcher.start()
        try:
            async with asyncio.timeout(self._cluster.lease_ttl):
                await self.watcher.ready.wait()
        except TimeoutError:
            self._log.warning("interest_not_read", waited=self._cluster.lease_ttl)
        union = self.watcher.book.union
        if union:
            self.engine.handle(SymbolsRequested(add=union))
        self._started = True
        self.engine.start()
        self._beat()

    async def stop(self) -> None:
        """Close the Alpaca connection and stop; returns when its socket is closed."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._task is not None:
            if self.core.state is not State.STOPPED:
                await self.engine.stop("fenced")
            self._closing.set()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.watcher.stop()
        if self._sending:
            await asyncio.wait(list(self._sending))

    def status(self) -> HolderStatus:
        """The connection as members see it."""
        book = self.core.book
        error = self.core.last_error
        fatal = self.core.state is State.STOPPED and isinstance(error, ServerError)
        return HolderStatus(
            epoch=self.epoch,
            member=self._member,
            state=self.core.state.value,
            confirmed=book.confirmed,
            refused=uncovered(self.watcher.book.union, book.desired),
            members=self.watcher.book.members,
            error_code=error.code if fatal and isinstance(error, ServerError) else None,
            error_message=error.message if fatal and isinstance(error, ServerError) else None,
        )

    # ------------------------------------------------------------ sessions

    def _session(self, command: OpenSession, context: SessionContext) -> SessionLike:
        """An Alpaca session that relays every frame and reads a takeover's 406 for what it is."""

        def send(event: Input) -> None:
            if isinstance(event, SessionEnded):
                event = SessionEnded(event.epoch, self._classify(event.error))
            context.send(event)

        return Session(
            command,
            config=context.config,
            credentials=context.credentials,
            send=send,
            report=context.report,
            tracker=context.tracker,
            dispatcher=context.dispatcher,
            clock=context.clock,
            log=context.log,
            tap=self.publisher.publish,
        )

    def _classify(self, error: StreamError) -> StreamError:
        """A 406 inside the reap window is the predecessor's socket, not a second process."""
        if not isinstance(error, ConnectionLimitError) or isinstance(
            error, PredecessorStillConnectedError
        ):
            return error
        if self._loop.time() - self._took_over_at >= self._cluster.reap_window:
            return error
        retry = min(
            self._cluster.takeover_retry * 2**self._predecessor_refusals,
            self._cluster.takeover_retry_max,
        )
        self._predecessor_refusals += 1
        return PredecessorStillConnectedError.after(error, retry_after=retry)

    # ------------------------------------------------------------ interest and status

    def _union_changed(self, change: UnionChange) -> None:
        """Send Alpaca only the difference; before the start the whole union is read at once."""
        if self._started and self.core.state is not State.STOPPED:
            self.engine.handle(SymbolsRequested(add=change.added, remove=change.removed))
        else:
            self._changed()

    def _changed(self) -> None:
        """After every input: publish the status when members would see a difference."""
        if not self._started:
            return
        status = self.status()
        if status != self._published:
            self._send_status(status)

    def _beat(self) -> None:
        """Publish the status now and every renew interval (late joiners read it from there)."""
        self._send_status(self.status())
        self._heartbeat = self._loop.call_later(self._cluster.renew_interval, self._beat)

    def _send_status(self, status: HolderStatus) -> None:
        self._published = status
        task = asyncio.ensure_future(self._publish_status(status))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish_status(self, status: HolderStatus) -> None:
        try:
            await self._client.publish(self._names.status_subject, encode_status(status))
        except StoreError as exc:
            # The next heartbeat tries again; a holder without NATS is fenced by its lease.
            self._log.debug("status_publish_failed", error_type=type(exc).__name__)

    def _on_record(self, record: TransitionRecord) -> None:
        self.journal.append(record)
        self._log.info(
            "upstream_changed",
            src=record.src,
            dst=record.dst,
            trigger=record.trigger,
            reason=record.reason,
            error=record.error,
            code=record.code,
            delay=record.delay,
        )
