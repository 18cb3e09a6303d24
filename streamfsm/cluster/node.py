"""One process's membership of a cluster: the NATS connection, the lease, interest and the bus.

A :class:`ClusterNode` belongs to one controller's engine and lives on its loop. The first bus
session joins: it connects to NATS, opens the buckets, follows the holder's status and the
relayed frames, and enters the election. Winning starts an
:class:`~streamfsm.cluster.upstream.Upstream` (the Alpaca connection); being fenced stops it
before the lease can expire. The controller's own machine always reads the bus through a
:class:`~streamfsm.cluster.bus_session.BusSession`, whatever the role. A stop leaves: the holder
closes Alpaca first, then deletes the lease, then the member's interest, then the connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Final, cast

import attrs
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from streamfsm._aio.engine import SessionContext, SessionLike
from streamfsm._aio.health import BusFigures, ClusterReading
from streamfsm._core.commands import OpenSession
from streamfsm._core.records import TransitionRecord
from streamfsm.cluster.bus_session import BusSession
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.framing import Verdict
from streamfsm.cluster.lease_table import LeaseState
from streamfsm.cluster.names import ClusterNames
from streamfsm.cluster.nats_interest import InterestPublisher
from streamfsm.cluster.nats_lease import NatsLease, StoreError, open_bucket
from streamfsm.cluster.nats_relay import RelaySubscriber, settle
from streamfsm.cluster.status import HolderStatus, decode_status
from streamfsm.cluster.upstream import Upstream
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import BusUnavailableError
from streamfsm.logs import StreamLogger

__all__ = ["LEASE_JOURNAL_SIZE", "ClusterNode"]

#: Lease transition records kept in memory.
LEASE_JOURNAL_SIZE: Final = 200
#: Hex digits of a generated member name.
_MEMBER_DIGITS: Final = 12


class ClusterNode:
    """A controller's membership of one cluster scope (account, market and feed).

    Args:
        cluster: the cluster configuration.
        config: the controller's stream configuration.
        credentials: the account's credentials (the key id names the scope, hashed).
        log: the controller's logger.
        rng: backoff jitter for the upstream connection.
        lease_listeners: called with each lease transition record, on the loop, after it is
            kept in ``lease_journal``; one that raises is logged.
    """

    def __init__(
        self,
        cluster: ClusterConfig,
        *,
        config: StreamConfig,
        credentials: Credentials,
        log: StreamLogger,
        rng: random.Random,
        lease_listeners: Sequence[Callable[[TransitionRecord], object]] = (),
    ) -> None:
        self.cluster = cluster
        self._lease_listeners = lease_listeners
        self.config = config
        self._credentials = credentials
        self.member = cluster.member or f"m-{uuid.uuid4().hex[:_MEMBER_DIGITS]}"
        self.names = ClusterNames.of(
            cluster.name, credentials.key_id, config.market.value, config.feed.value
        )
        self.log = log.bind(member=self.member)
        self._rng = rng
        self.client: Client | None = None
        self.lease: NatsLease | None = None
        self.interest: InterestPublisher | None = None
        self.upstream: Upstream | None = None
        self.status: HolderStatus | None = None
        #: Notified on every status, bus loss and bus return: bus sessions wait on it.
        self.changed = asyncio.Condition()
        self.lease_journal: collections.deque[TransitionRecord] = collections.deque(
            maxlen=LEASE_JOURNAL_SIZE
        )
        self._joining: asyncio.Task[None] | None = None
        self._relay: RelaySubscriber | None = None
        self._session: BusSession | None = None
        self._holding: asyncio.Task[None] | None = None
        self.interest_kv: KeyValue | None = None
        #: Bus figures of earlier joins and tenures.
        self._before = BusFigures()

    # ------------------------------------------------------------ the engine's hooks

    def session(self, command: OpenSession, context: SessionContext) -> SessionLike:
        """The engine's session factory: every epoch of the member's machine reads the bus."""
        return BusSession(self, command, context)

    async def join(self) -> None:
        """Connect and enter the election, once; concurrent callers share the attempt.

        Raises:
            BusUnavailableError: when NATS cannot be reached or refuses the buckets.
        """
        if self.client is not None and self.lease is not None:
            return
        if self._joining is None or self._joining.done():
            self._joining = asyncio.ensure_future(self._join())
        try:
            await asyncio.shield(self._joining)
        except BusUnavailableError:
            self._joining = None
            raise

    async def leave(self) -> None:
        """Leave the cluster: fence and release a lease held, delete the interest, disconnect.

        Idempotent; never raises (a store that is gone lets the lease and interest expire).
        """
        joining = self._joining
        if joining is not None and not joining.done():
            # A join still under way is abandoned, not waited out: a stop must be fast.
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
        lease, interest, client = self.lease, self.interest, self.client
        # From here the disconnect that follows is ours, not a loss (see _disconnected).
        self.lease = self.interest = self.client = None
        if lease is not None:
            await lease.stop()
        if interest is not None:
            await interest.stop()
        self._before = self._figures()
        self._relay = None
        self.status = None
        if client is not None:
            await _abandon(client, self.cluster.request_timeout)
        await self._notify()

    @property
    def connected(self) -> bool:
        """True while joined and the NATS client is connected (not reconnecting)."""
        return self.client is not None and self.client.is_connected

    def attach(self, session: BusSession) -> None:
        """Hand relayed frames to ``session`` from now on."""
        self._session = session

    def detach(self, session: BusSession) -> None:
        """``session`` ended: relayed frames go nowhere until the next one attaches."""
        if self._session is session:
            self._session = None

    def reading(self) -> ClusterReading:
        """Role, tenure, members and bus figures (over every join), now."""
        lease = self.lease
        if lease is None:
            return ClusterReading(role=None, lease_epoch=None, members=(), bus=self._figures())
        holding = lease.core.state is LeaseState.HOLDER
        seen = self.status.epoch if self.status is not None else 0
        epoch = lease.core.epoch if holding else max(lease.core.known_epoch, seen)
        return ClusterReading(
            role="holder" if holding else "follower",
            lease_epoch=epoch or None,
            members=self.status.members if self.status is not None else (),
            bus=self._figures(),
        )

    def _figures(self) -> BusFigures:
        """The bus figures of the current join added to those of earlier ones."""
        relay, upstream, before = self._relay, self.upstream, self._before
        if relay is None:
            return before
        sequencer = relay.sequencer
        return BusFigures(
            frames_received=before.frames_received + relay.received,
            frames_published=before.frames_published
            + (upstream.publisher.published if upstream is not None else 0),
            publish_refused=before.publish_refused
            + (upstream.publisher.refused if upstream is not None else 0),
            gaps=before.gaps + sequencer.gaps,
            missing_frames=before.missing_frames + sequencer.missing,
            handovers=before.handovers + sequencer.handovers,
            stale_frames=before.stale_frames + sequencer.stale,
            malformed_frames=before.malformed_frames + relay.malformed,
        )

    # ------------------------------------------------------------ joining

    async def _join(self) -> None:
        cluster = self.cluster
        client = Client()
        try:
            # Reconnects are retried for ever once joined; the first connect is one attempt
            # bounded by connect_timeout, so an unreachable bus is a failure the machine backs
            # off from.
            async with asyncio.timeout(cluster.connect_timeout):
                await client.connect(
                    cluster.url,
                    name=self.member,
                    # Both annotated int in nats-py, but only ever used as asyncio timeouts and
                    # sleeps, where a fraction of a second is fine.
                    connect_timeout=cast("int", cluster.connect_timeout),
                    reconnect_time_wait=cast("int", cluster.reconnect_wait),
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
        except (OSError, *StoreError) as exc:
            await _abandon(client, cluster.request_timeout)
            raise BusUnavailableError(f"NATS at {cluster.url} unreachable: {exc!r}") from exc
        except asyncio.CancelledError:
            await _abandon(client, cluster.request_timeout)
            raise
        try:
            js = client.jetstream()
            lease_kv = await open_bucket(
                js, self.names.lease_bucket, cluster.lease_ttl, cluster.replicas
            )
            interest_kv = await open_bucket(
                js, self.names.interest_bucket, cluster.interest_ttl, cluster.replicas
            )
            self._relay = RelaySubscriber(
                client,
                self.names.frames_subject,
                on_frame=self._frame,
                on_gap=self._gap,
                log=self.log,
            )
            await self._relay.start()
            await client.subscribe(self.names.status_subject, cb=self._on_status)
            await settle(client, cluster.connect_timeout)
        except (OSError, *StoreError) as exc:
            await _abandon(client, cluster.request_timeout)
            raise BusUnavailableError(f"NATS at {cluster.url} refused the cluster: {exc}") from exc
        except asyncio.CancelledError:
            await _abandon(client, cluster.request_timeout)
            raise
        self.client = client
        self.interest = InterestPublisher(
            interest_kv,
            self.names.interest_key(self.member),
            cluster.interest_ttl,
            self.log,
            timeout=cluster.request_timeout,
        )
        self.lease = NatsLease(
            cluster,
            kv=lease_kv,
            key=self.names.lease_key,
            member=self.member,
            on_hold=self._hold,
            on_fence=self._fence,
            on_record=self._lease_record,
            log=self.log,
        )
        self.interest_kv = interest_kv
        await self.lease.start()
        self.log.info("cluster_joined", scope=self.names.scope)

    # ------------------------------------------------------------ the lease's hooks

    def _hold(self, epoch: int) -> None:
        """Won the election: open Alpaca for the union (in the background)."""
        assert self.client is not None  # the lease runs only while joined
        lease = self.lease
        assert lease is not None
        assert self.interest_kv is not None
        self.upstream = Upstream(
            self.cluster,
            config=self.config,
            credentials=self._credentials,
            client=self.client,
            names=self.names,
            interest=self.interest_kv,
            epoch=epoch,
            member=self.member,
            may_publish=lease.may_publish,
            log=self.log,
            rng=self._rng,
        )
        self._holding = asyncio.ensure_future(self.upstream.start())

    async def _fence(self, _epoch: int) -> None:
        """Must stop publishing: close Alpaca; returns when the socket is closed."""
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return
        holding, self._holding = self._holding, None
        if holding is not None:
            # A start still reading the union is abandoned: the fence must not wait for it.
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
        await upstream.stop()
        self._before = attrs.evolve(
            self._before,
            frames_published=self._before.frames_published + upstream.publisher.published,
            publish_refused=self._before.publish_refused + upstream.publisher.refused,
        )

    def _lease_record(self, record: TransitionRecord) -> None:
        """Keep a lease transition, then hand it to the listeners."""
        self.lease_journal.append(record)
        for listener in list(self._lease_listeners):
            try:
                listener(record)
            except Exception as exc:  # noqa: BLE001 - a user listener must never break the lease
                self.log.log(
                    logging.ERROR, "listener_failed", error_type=type(exc).__name__, error=str(exc)
                )

    # ------------------------------------------------------------ bus traffic

    def _frame(self, frame: bytes) -> None:
        session = self._session
        if session is not None:
            session.frame(frame)

    def _gap(self, verdict: Verdict, epoch: int) -> None:
        session = self._session
        if session is not None:
            session.gap(verdict, epoch)

    async def _on_status(self, message: Msg) -> None:
        try:
            status = decode_status(message.data)
        except ValueError as error:
            self.log.warning("status_malformed", error=str(error))
            return
        if self.status is not None and status.epoch < self.status.epoch:
            return
        if self._relay is not None:
            self._relay.sequencer.raise_floor(status.epoch)
        self.status = status
        await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # ------------------------------------------------------------ NATS connection events

    async def _disconnected(self) -> None:
        if self.lease is None:
            return  # leaving (or not joined yet): nothing is lost
        self.log.warning("bus_disconnected")
        self.lease.store_lost()
        await self._notify()

    async def _reconnected(self) -> None:
        self.log.info("bus_reconnected")
        if self.lease is not None:
            self.lease.store_back()
        await self._notify()

    async def _error(self, error: Exception) -> None:
        self.log.debug("bus_error", error_type=type(error).__name__, error=str(error))


async def _abandon(client: Client, patience: float) -> None:
    """Close ``client`` within ``patience`` seconds: its final flush waits on a server that may be
    gone. A client that never connected has nothing to close."""
    with contextlib.suppress(OSError, *StoreError):
        async with asyncio.timeout(patience):
            await client.close()
