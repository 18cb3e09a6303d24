"""A member's session in cluster mode: the shared connection, read from the bus.

To the member's connection machine a :class:`BusSession` is what a
:class:`~streamfsm._aio.session.Session` is in single-process mode, and it reports the same
facts: it is ready (``subscribed``) once the holder's connection serves or has refused every
pair the member published as its interest; a subscribe is acknowledged once the holder's status
shows it served, and rejected (:class:`~streamfsm.errors.SymbolLimitError`, all of it, as Alpaca
refuses a whole message) when part of it was refused. Relayed frames are decoded with the same
decoder as a direct session, filtered to the member's own symbols, tracked and dispatched; a
sequence jump or a new tenure opens gaps (``bus_gap``, ``handover``) that the next message of
each pair closes with a :class:`~streamfsm._core.tracking.GapReport`.

It ends with :class:`~streamfsm.errors.BusUnavailableError` when NATS is gone while it waits,
and with the holder's fatal Alpaca error when the shared connection stopped on one.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamfsm._aio.engine import SessionContext
from streamfsm._core.commands import (
    ChangeAcknowledged,
    ChangeRejected,
    OpenSession,
    SessionEnded,
    SessionReady,
)
from streamfsm._core.decoder import FrameDecoder
from streamfsm._core.subscriptions import SUBSCRIBE, Subscription
from streamfsm._core.tracking import GAP_BUS, GAP_HANDOVER
from streamfsm.cluster.framing import Verdict
from streamfsm.cluster.status import HolderStatus, MemberFilter, uncovered
from streamfsm.errors import (
    BusUnavailableError,
    InternalError,
    RemoteProtocolError,
    StreamError,
    SymbolLimitError,
    server_error,
)
from streamfsm.markets import Encoding

if TYPE_CHECKING:
    from streamfsm.cluster.node import ClusterNode

__all__ = ["BusSession"]

#: The first byte of a JSON frame (an array, or a bare object); never a msgpack array's.
_JSON_BYTES = frozenset(bytes([byte]) for byte in b"[{ \t\r\n")


class BusSession:
    """One epoch of a member's machine, served by the cluster's shared connection."""

    def __init__(self, node: ClusterNode, command: OpenSession, context: SessionContext) -> None:
        self.epoch = command.epoch
        self._node = node
        self._context = context
        self._wanted = command.subscription
        #: What the member's machine holds as acknowledged (the last ack it was sent).
        self._acked = Subscription()
        self._filter = MemberFilter(self._wanted)
        self._log = context.log.bind(epoch=command.epoch, connection_id=command.connection_id)
        raw = context.raw_frames
        self._decoders = {
            Encoding.JSON: FrameDecoder(Encoding.JSON, raw=raw),
            Encoding.MSGPACK: FrameDecoder(Encoding.MSGPACK, raw=raw),
        }

    async def run(self) -> None:
        """Join, publish the interest, wait until it is served, then follow the bus."""
        node = self._node
        send = self._context.send
        try:
            await node.join()
            await self._publish(self._wanted)
            status = await self._until(lambda s: s.settles(self._wanted))
            ack = self._served(status, self._wanted)
            rejection = None
            if self._wanted - ack:
                # Alpaca refuses a whole subscribe message, the opening one included: so does
                # the cluster, and the member's machine drops the set as it would alone.
                rejection = SymbolLimitError()
                ack = self._wanted = Subscription()
                await self._publish(ack)
            self._acked = ack
            self._filter = MemberFilter(self._wanted)
            node.attach(self)
            send(SessionReady(self.epoch, ack, rejection))
            # From here a lost bus is a gap, not an end: frames resume after the reconnect (a
            # longer silence is the stale watchdog's). Only a fatal stop upstream ends it.
            await self._until(lambda _status: False, bus_needed=False)
        except StreamError as error:
            self._log.debug("bus_session_ended", error_type=type(error).__name__, error=str(error))
            send(SessionEnded(self.epoch, error))
        except Exception as exc:  # noqa: BLE001 - a defect fails this session, never the controller
            self._log.error(
                "session_crashed",
                error_type=type(exc).__name__,
                error=str(exc),
                traceback="".join(traceback.format_exception(exc)),
            )
            internal = InternalError(f"bus session failed: {type(exc).__name__}: {exc}")
            internal.__cause__ = exc
            send(SessionEnded(self.epoch, internal))
        finally:
            node.detach(self)

    async def send_change(self, action: str, symbols: Subscription) -> None:
        """Publish the member's new interest; answer once the holder's status settles it."""
        before = self._wanted
        wanted = before | symbols if action == SUBSCRIBE else before - symbols
        self._wanted = wanted
        self._filter = MemberFilter(wanted)
        try:
            await self._publish(wanted)
            status = await self._until(lambda s: s.settles(wanted), bus_needed=False)
        except StreamError as error:
            # The run loop sees the same loss and ends the session; nothing to answer here.
            self._log.debug("change_unanswered", error=str(error))
            return
        served = self._served(status, wanted)
        if action == SUBSCRIBE and symbols - served:
            # Alpaca refuses a whole subscribe message; so does the cluster.
            self._wanted = before
            self._filter = MemberFilter(before)
            await self._publish(before)
            self._context.send(ChangeRejected(self.epoch, SymbolLimitError()))
            return
        self._acked = served
        self._context.send(ChangeAcknowledged(self.epoch, served))

    # ------------------------------------------------------------ the node's hand-offs

    def frame(self, frame: bytes) -> None:
        """One relayed frame: decode, keep the member's own symbols, track and dispatch."""
        decoder = self._decoders[Encoding.JSON if frame[:1] in _JSON_BYTES else Encoding.MSGPACK]
        try:
            decoded = decoder.decode(frame)
        except RemoteProtocolError as error:
            self._context.tracker.malformed_frames += 1
            self._log.warning("malformed_frame", error=str(error))
            return
        tracker = self._context.tracker
        if decoded.skipped:
            tracker.skipped_messages += decoded.skipped
        data: list[Any] = self._filter.keep(decoded.data) if decoded.data else decoded.data
        if data:
            now = self._context.clock()
            self._context.dispatcher.put(data, now, tracker.observe(data, now))

    def gap(self, verdict: Verdict, epoch: int) -> None:
        """Frames were lost on the bus, or the connection changed hands: open the gaps."""
        reason = GAP_HANDOVER if verdict is Verdict.HANDOVER else GAP_BUS
        self._context.tracker.open_gaps(self._acked, datetime.now(UTC), epoch, reason)

    # ------------------------------------------------------------ helpers

    async def _publish(self, wanted: Subscription) -> None:
        interest = self._node.interest
        if interest is None:
            raise BusUnavailableError("the member has left the cluster")
        await interest.publish(wanted)

    async def _until(
        self, settled: Callable[[HolderStatus], bool], *, bus_needed: bool = True
    ) -> HolderStatus:
        """Wait for a status for which ``settled(status)`` holds.

        Raises:
            BusUnavailableError: when NATS is lost while waiting and ``bus_needed``, or when
                the member left the cluster.
            ServerError: the holder's fatal Alpaca error, when the shared connection stopped.
        """
        node = self._node
        async with node.changed:
            while True:
                status = node.status
                if node.interest is None or (bus_needed and not node.connected):
                    raise BusUnavailableError("the cluster bus was lost")
                if status is not None and status.error_code is not None:
                    raise server_error(status.error_code, status.error_message)
                if status is not None and settled(status):
                    return status
                await node.changed.wait()

    @staticmethod
    def _served(status: HolderStatus, wanted: Subscription) -> Subscription:
        """The part of ``wanted`` the holder's connection serves."""
        return wanted - uncovered(wanted, status.confirmed)
