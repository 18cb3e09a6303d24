"""One Alpaca session's protocol state, sans I/O: frames and time in, events and frames out.

Modelled on websockets' ``ClientProtocol``: :class:`SessionProtocol` knows the order of the
handshake (welcome, auth, subscribe) and what each server message means in each phase; the
asyncio session (:mod:`streamfsm._aio.session`) only pumps frames and a timer through it::

    protocol = SessionProtocol(credentials, subscription, config, now=clock())
    while True:
        send(protocol.data_to_send())           # auth, subscribe, ...
        deadline = protocol.deadline            # None once streaming
        frame = await recv(until=deadline)      # or protocol.timeout(now) when it passes
        data = protocol.receive_frame(frame, now)
        for event in protocol.events_received(): ...

Per-phase classification of a server error message:

* during the handshake it ends the session (:class:`SessionFailed`): the core decides from the
  error whether that is fatal or worth a retry; except that in the subscribe phase an error that
  *rejects a change* (405 symbol limit) is not a failure: the session is ready with the part the
  server did not refuse (:class:`HandshakeDone` with ``rejection``);
* while streaming an error that rejects a change refuses the change in flight
  (:class:`ChangeRefused`), a fatal one ends the session, and any other one (407 slow client,
  500) is only reported (:class:`ServerWarning`).

A malformed frame ends the session during the handshake and is counted and skipped while
streaming. A phase that does not complete before its deadline ends the session with
:class:`~streamfsm.errors.ConnectTimeoutError`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import attrs

from streamfsm._core.protocol import (
    Authenticated,
    Connected,
    FrameDecoder,
    ServerErrorEvent,
    SubscriptionAck,
    encode_auth,
    encode_subscribe,
    encode_unsubscribe,
)
from streamfsm._core.subscriptions import EMPTY, SUBSCRIBE, Subscription
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ConnectTimeoutError,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    StreamError,
)

__all__ = [
    "ChangeAcked",
    "ChangeRefused",
    "FrameSkipped",
    "HandshakeDone",
    "Phase",
    "ServerWarning",
    "SessionEvent",
    "SessionFailed",
    "SessionProtocol",
]

Outgoing = Sequence[bytes | str]


class Phase(enum.Enum):
    """Where a session is in its life."""

    WELCOME = "welcome"
    AUTH = "auth"
    SUBSCRIBE = "subscribe"
    STREAMING = "streaming"
    FAILED = "failed"


@attrs.frozen
class HandshakeDone:
    """Authenticated and subscribed: ``ack`` is what the server confirmed.

    ``rejection`` is set when the server refused part of the initial subscription (405).
    """

    ack: Subscription
    rejection: ServerError | None = None


@attrs.frozen
class ChangeAcked:
    """The server acknowledged a change; ``subscription`` is its whole current set."""

    subscription: Subscription


@attrs.frozen
class ChangeRefused:
    """The server refused the change in flight; its set is as before."""

    error: ServerError


@attrs.frozen
class ServerWarning:
    """A server error that neither ends the session nor refuses a change: only reported."""

    error: ServerError


@attrs.frozen
class FrameSkipped:
    """While streaming: a frame that could not be decoded (``error``) or held ``messages`` of
    types nobody subscribes to; the stream goes on."""

    error: RemoteProtocolError | None = None
    messages: int = 0


@attrs.frozen
class SessionFailed:
    """The session is over with ``error``; nothing more is read or sent."""

    error: StreamError


SessionEvent = (
    HandshakeDone | ChangeAcked | ChangeRefused | ServerWarning | FrameSkipped | SessionFailed
)


class SessionProtocol:
    """The client side of one Alpaca market-data session, without I/O.

    Args:
        credentials: sent in the auth message once the server says it is connected.
        subscription: subscribed right after auth; nothing is subscribed when empty.
        config: the encoding and the per-phase timeouts.
        now: the monotonic time the socket opened (the welcome deadline counts from it).

    Attributes:
        phase: the current :class:`Phase`.
        deadline: when the current handshake phase times out; None once streaming.
    """

    def __init__(
        self,
        credentials: Credentials,
        subscription: Subscription,
        config: StreamConfig,
        *,
        now: float,
        raw_frames: bool = False,
    ) -> None:
        self._credentials = credentials
        self._subscription = subscription
        self._config = config
        #: With ``raw_frames`` market data comes out as the wire's dicts (the ``raw`` mode).
        self._decode = FrameDecoder(config.encoding, raw=raw_frames).decode
        self._outgoing: list[Outgoing] = []
        #: Events not yet taken by :meth:`events_received`; the list object never changes, so a
        #: pump may keep it and test it per frame.
        self.pending: list[SessionEvent] = []
        self.phase = Phase.WELCOME
        self._timeout = config.connect_timeout
        self.deadline: float | None = now + self._timeout

    # ------------------------------------------------------------ output

    def data_to_send(self) -> list[Outgoing]:
        """The messages to send, oldest first, each as its fragments; empties the queue."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def events_received(self) -> list[SessionEvent]:
        """What happened since the last call, oldest first; empties the list."""
        events = self.pending[:]
        self.pending.clear()
        return events

    @property
    def failed(self) -> bool:
        """True once the session is over."""
        return self.phase is Phase.FAILED

    # ------------------------------------------------------------ input

    def receive_frame(self, frame: bytes | str, now: float) -> list[Any]:
        """Take one whole frame; return its market data (only while streaming), in order.

        Control messages become events and, during the handshake, outgoing messages. While
        streaming this is the hot path: one decode, and work per control message only.

        Raises:
            LocalProtocolError: when the session has already failed.
        """
        if self.phase is not Phase.STREAMING:
            self._receive_handshake(frame, now)
            return []
        try:
            decoded = self._decode(frame)
        except RemoteProtocolError as error:
            self.pending.append(FrameSkipped(error=error))
            return []
        if decoded.skipped:
            self.pending.append(FrameSkipped(messages=decoded.skipped))
        if decoded.control:
            for event in decoded.control:
                self._streaming(event)
        return decoded.data

    def _receive_handshake(self, frame: bytes | str, now: float) -> None:
        if self.phase is Phase.FAILED:
            raise LocalProtocolError("the session has failed; it reads nothing more")
        try:
            decoded = self._decode(frame)
        except RemoteProtocolError as error:
            self._fail(error)
            return
        for event in decoded.control:
            self._handshake(event, now)
            if self.failed:
                return

    def timeout(self, now: float) -> None:
        """Time has come to ``now``: a phase past its deadline fails the session."""
        if self.deadline is not None and now >= self.deadline:
            self._fail(ConnectTimeoutError(self.phase.value, self._timeout))

    def send_change(self, action: str, symbols: Subscription) -> None:
        """Queue one subscribe or unsubscribe message (while streaming).

        Raises:
            LocalProtocolError: before the handshake is done or after the session failed.
        """
        if self.phase is not Phase.STREAMING:
            raise LocalProtocolError(f"a subscription change in phase {self.phase.value}")
        encode = encode_subscribe if action == SUBSCRIBE else encode_unsubscribe
        self._outgoing.append(encode(symbols, self._config.encoding))

    # ------------------------------------------------------------ phases

    def _handshake(self, event: object, now: float) -> None:
        if isinstance(event, ServerErrorEvent):
            error = event.error()
            if self.phase is Phase.SUBSCRIBE and error.rejects_change:
                self._ready(EMPTY, error)
            else:
                self._fail(error)
        elif self.phase is Phase.WELCOME and isinstance(event, Connected):
            self._outgoing.append([encode_auth(self._credentials, self._config.encoding)])
            self._enter(Phase.AUTH, self._config.auth_timeout, now)
        elif self.phase is Phase.AUTH and isinstance(event, Authenticated):
            if not self._subscription:
                self._ready(EMPTY, None)
                return
            self._outgoing.append(encode_subscribe(self._subscription, self._config.encoding))
            self._enter(Phase.SUBSCRIBE, self._config.subscribe_timeout, now)
        elif self.phase is Phase.SUBSCRIBE and isinstance(event, SubscriptionAck):
            self._ready(event.subscription, None)

    def _streaming(self, event: object) -> None:
        if isinstance(event, SubscriptionAck):
            self.pending.append(ChangeAcked(event.subscription))
        elif isinstance(event, ServerErrorEvent):
            error = event.error()
            if error.rejects_change:
                self.pending.append(ChangeRefused(error))
            elif error.fatal:
                self._fail(error)
            else:
                self.pending.append(ServerWarning(error))

    def _enter(self, phase: Phase, timeout: float, now: float) -> None:
        self.phase = phase
        self._timeout = timeout
        self.deadline = now + timeout

    def _ready(self, ack: Subscription, rejection: ServerError | None) -> None:
        self.phase = Phase.STREAMING
        self.deadline = None
        self.pending.append(HandshakeDone(ack, rejection))

    def _fail(self, error: StreamError) -> None:
        self.phase = Phase.FAILED
        self.deadline = None
        self._outgoing.clear()
        self.pending.append(SessionFailed(error))
