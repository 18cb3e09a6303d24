"""One connection attempt and, if it succeeds, its stream: the I/O side of ``connecting``.

A :class:`Session` runs as one task in the controller's task group. It opens the socket,
waits for the welcome, authenticates, subscribes, and reports ``session_ready`` to the core;
then it reads frames until the connection ends and reports ``session_ended``. Every wait has a
deadline from the configuration. Market data goes straight from the decoder to the tracker and the
dispatcher: the hot path never touches the state machine.

A session that is cancelled (the core asked to close it) reports nothing: the core has already
moved on. Its socket is closed within ``close_timeout`` in every case.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from streamfsm._aio.dispatch import Dispatcher
from streamfsm._aio.transport import WebSocketTransport
from streamfsm._core.commands import (
    ChangeAcknowledged,
    ChangeRejected,
    Input,
    OpenSession,
    SessionEnded,
    SessionReady,
)
from streamfsm._core.protocol import (
    Authenticated,
    Connected,
    FrameDecoder,
    ServerErrorEvent,
    SubscriptionAck,
    content_type,
    encode_auth,
    encode_subscribe,
    encode_unsubscribe,
)
from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm._core.tracking import DataTracker
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ConnectTimeoutError,
    InternalError,
    RemoteProtocolError,
    ServerError,
    StreamError,
)
from streamfsm.logs import StreamLogger

__all__ = ["Session"]

_E = TypeVar("_E")


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
    ) -> None:
        self.epoch = command.epoch
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
        self._decoder = FrameDecoder(config.encoding)
        self._transport: WebSocketTransport | None = None

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
        if self._transport is None:
            return
        encode = encode_subscribe if action == "subscribe" else encode_unsubscribe
        try:
            await self._transport.send(encode(symbols, self._config.encoding))
        except StreamError as error:
            # The reader sees the same closed socket and reports it; nothing to add here.
            self._log.debug("send_failed", error=str(error))

    # ------------------------------------------------------------ handshake

    async def _open(self) -> None:
        config = self._config
        self._log.debug("session_opening", url=config.endpoint)
        self._transport = await WebSocketTransport.open(
            config.endpoint, config, {"Content-Type": content_type(config.encoding)}
        )
        await self._expect(Connected, "welcome", config.connect_timeout)
        await self._transport.send([encode_auth(self._credentials, config.encoding)])
        await self._expect(Authenticated, "auth", config.auth_timeout)
        ack, rejection = EMPTY, None
        if self._subscription:
            await self._transport.send(encode_subscribe(self._subscription, config.encoding))
            try:
                acked = await self._expect(SubscriptionAck, "subscribe", config.subscribe_timeout)
                ack = acked.subscription
            except ServerError as error:
                if not error.rejects_change:
                    raise
                rejection = error
        self._send(SessionReady(self.epoch, ack, rejection))

    async def _expect(self, kind: type[_E], phase: str, seconds: float) -> _E:
        """Read until a ``kind`` control event arrives; an error message raises its error.

        Raises:
            ConnectTimeoutError: when ``seconds`` pass first.
            ServerError: the typed error for an error message.
            RemoteProtocolError: when a frame is malformed during the handshake.
            ConnectionClosedError: when the socket closes.
        """
        assert self._transport is not None  # opened before any expectation
        try:
            async with asyncio.timeout(seconds):
                while True:
                    decoded = self._decoder.decode(await self._transport.recv())
                    for event in decoded.control:
                        if isinstance(event, ServerErrorEvent):
                            raise event.error()
                        if isinstance(event, kind):
                            return event
        except TimeoutError as exc:
            raise ConnectTimeoutError(phase, seconds) from exc

    # ------------------------------------------------------------ streaming

    async def _stream(self) -> None:
        assert self._transport is not None  # opened by _open
        transport = self._transport
        decoder = self._decoder
        tracker = self._tracker
        dispatcher = self._dispatcher
        clock = self._clock
        while True:
            frame = await transport.recv()
            try:
                decoded = decoder.decode(frame)
            except RemoteProtocolError as error:
                tracker.malformed_frames += 1
                self._log.warning("malformed_frame", error=str(error))
                continue
            if decoded.skipped:
                tracker.skipped_messages += decoded.skipped
            if decoded.data:
                now = clock()
                dispatcher.put(decoded.data, now, tracker.observe(decoded.data, now))
            for event in decoded.control:
                self._control(event)

    def _control(self, event: Any) -> None:
        if isinstance(event, SubscriptionAck):
            self._send(ChangeAcknowledged(self.epoch, event.subscription))
        elif isinstance(event, ServerErrorEvent):
            error = event.error()
            if error.rejects_change:
                self._send(ChangeRejected(self.epoch, error))
            elif error.fatal:
                raise error
            else:
                self._report(error)
