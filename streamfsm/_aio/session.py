"""One connection attempt and, if it succeeds, its stream: the I/O side of ``connecting``.

A :class:`Session` runs as one task in the engine's task group. It opens the socket and then only
pumps: frames from the socket and the handshake's deadline into the sans-I/O
:class:`~streamfsm._core.handshake.SessionProtocol`, the messages it wants sent back to the
socket, and the events it produces to the core as values (``SessionReady``, ``SessionEnded``,
``ChangeAcknowledged``, ...). Market data goes straight from the protocol to the tracker and the
dispatcher: the hot path never touches the state machine.

A session that is cancelled (the core asked to close it) reports nothing: the core has already
moved on. Its socket is closed within ``close_timeout`` in every case.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable

from streamfsm._aio.dispatch import Dispatcher
from streamfsm._aio.transport import Connection, open_transport
from streamfsm._core.commands import (
    ChangeAcknowledged,
    ChangeRejected,
    Input,
    OpenSession,
    SessionEnded,
    SessionReady,
)
from streamfsm._core.handshake import (
    ChangeAcked,
    ChangeRefused,
    FrameSkipped,
    HandshakeDone,
    ServerWarning,
    SessionFailed,
    SessionProtocol,
)
from streamfsm._core.protocol import content_type
from streamfsm._core.subscriptions import Subscription
from streamfsm._core.tracking import DataTracker
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import InternalError, StreamError
from streamfsm.logs import StreamLogger

__all__ = ["Session"]


class Session:
    """The I/O of one connection epoch."""

    def __init__(
        self,
        command: OpenSession,
        *,
        config: StreamConfig,
        credentials: Credentials,
        send: Callable[[Input], None],
        report: Callable[[StreamError], None],
        tracker: DataTracker,
        dispatcher: Dispatcher,
        clock: Callable[[], float],
        log: StreamLogger,
        raw_frames: bool = False,
        tap: Callable[[bytes | str], Awaitable[object]] | None = None,
    ) -> None:
        self.epoch = command.epoch
        #: Awaited with every frame received while streaming, before it is decoded (a cluster
        #: holder relays frames there); None on the plain path.
        self._tap = tap
        self.connection_id = command.connection_id
        self._subscription = command.subscription
        self._config = config
        self._credentials = credentials
        self._send = send
        self._report = report
        self._tracker = tracker
        self._dispatcher = dispatcher
        self._clock = clock
        self._log = log.bind(
            connection_id=command.connection_id, epoch=command.epoch, attempt=command.attempt
        )
        self._protocol: SessionProtocol | None = None
        #: Raw mode hands out the wire's own dicts (alpaca-py's raw_data=True).
        self._raw_frames = raw_frames
        self._transport: Connection | None = None

    async def run(self) -> None:
        """Connect, handshake, stream; report the outcome to the core. The task's body."""
        try:
            await self._open()
            await self._stream()
        except StreamError as error:
            # Per-attempt detail: the state_changed event that follows says what it means.
            self._log.debug("session_ended", error_type=type(error).__name__, error=str(error))
            self._send(SessionEnded(self.epoch, error))
        except Exception as exc:  # noqa: BLE001 - a defect fails this session, never the controller
            self._log.error(
                "session_crashed",
                error_type=type(exc).__name__,
                error=str(exc),
                traceback="".join(traceback.format_exception(exc)),
            )
            internal = InternalError(f"session failed: {type(exc).__name__}: {exc}")
            internal.__cause__ = exc
            self._send(SessionEnded(self.epoch, internal))
        finally:
            if self._transport is not None:
                await self._transport.close()

    async def send_change(self, action: str, symbols: Subscription) -> None:
        """Send one subscribe or unsubscribe message; a closed socket is the reader's to report."""
        protocol = self._protocol
        if protocol is None or protocol.failed:
            return
        protocol.send_change(action, symbols)
        try:
            await self._flush()
        except StreamError as error:
            # The reader sees the same closed socket and reports it; nothing to add here.
            self._log.debug("send_failed", error=str(error))

    # ------------------------------------------------------------ pumping

    async def _open(self) -> None:
        """Open the socket, then pump the handshake until the protocol streams or fails.

        Raises:
            StreamError: the transport's failure, or the protocol's (a server error, a timeout,
                a malformed frame).
        """
        config = self._config
        self._log.debug("session_opening", url=config.endpoint)
        self._transport = await open_transport(
            config.endpoint, config, {"Content-Type": content_type(config.encoding)}
        )
        protocol = SessionProtocol(
            self._credentials,
            self._subscription,
            config,
            now=self._clock(),
            raw_frames=self._raw_frames,
        )
        self._protocol = protocol
        transport = self._transport
        while (deadline := protocol.deadline) is not None:
            await self._flush()
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    frame = await transport.recv()
            except TimeoutError:
                protocol.timeout(self._clock())
            else:
                protocol.receive_frame(frame, self._clock())
            self._events()

    async def _stream(self) -> None:
        assert self._transport is not None  # set by _open
        assert self._protocol is not None
        recv = self._transport.recv
        receive = self._protocol.receive_frame
        pending = self._protocol.pending
        observe = self._tracker.observe
        put = self._dispatcher.put
        clock = self._clock
        tap = self._tap
        if tap is not None:
            while True:
                frame = await recv()
                await tap(frame)
                now = clock()
                data = receive(frame, now)
                if data:
                    put(data, now, observe(data, now))
                if pending:
                    self._events()
        while True:
            frame = await recv()
            now = clock()
            data = receive(frame, now)
            if data:
                put(data, now, observe(data, now))
            if pending:
                self._events()

    async def _flush(self) -> None:
        assert self._transport is not None  # set by _open
        assert self._protocol is not None
        for message in self._protocol.data_to_send():
            await self._transport.send(message)

    def _events(self) -> None:
        """Carry the protocol's events to the core and the tracker.

        Raises:
            StreamError: the session's failure, when the protocol failed.
        """
        assert self._protocol is not None  # set by _open
        for event in self._protocol.events_received():
            match event:
                case HandshakeDone(ack=ack, rejection=rejection):
                    self._send(SessionReady(self.epoch, ack, rejection))
                case ChangeAcked(subscription=subscription):
                    self._send(ChangeAcknowledged(self.epoch, subscription))
                case ChangeRefused(error=error):
                    self._send(ChangeRejected(self.epoch, error))
                case ServerWarning(error=error):
                    self._report(error)
                case FrameSkipped(error=error, messages=messages):
                    if error is not None:
                        self._tracker.malformed_frames += 1
                        self._log.warning("malformed_frame", error=str(error))
                    self._tracker.skipped_messages += messages
                case SessionFailed(error=error):
                    raise error
