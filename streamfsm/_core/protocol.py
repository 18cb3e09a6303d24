"""The Alpaca market-data stream protocol without I/O: frames in, events out, and back.

Theory of operation
-------------------
Every server frame is an array of messages, each an object tagged by ``T``. Control messages
(``success``, ``error``, ``subscription``) come alone in their frame; market data (``q``, ``t``,
``b``, ``u``, ``d``, ``s``, ...) comes many to a frame. :class:`FrameDecoder` turns one frame
into a :class:`DecodedFrame`: the control events, the market data as the typed structs of
:mod:`streamfsm.models` in frame order, and how many messages it skipped.

The fast path is one typed msgspec decode of the whole frame as market data. A frame that holds
anything else (a control message, a trade correction) is decoded again against every message
type. Typed decoding is all or nothing, so when that fails too the frame is split into its
elements and each is decoded on its own: good messages are kept, a bad or unknown market-data
message is skipped and counted. A control message is never skipped silently (the handshake
would wait for it): a malformed one raises :class:`~streamfsm.errors.RemoteProtocolError`, as
does a frame that is not an array at all.

The module knows nothing of time, sockets or state. The handshake
(:mod:`streamfsm._core.handshake`) waits for :class:`Connected`, sends :func:`encode_auth`, waits
for :class:`Authenticated`, sends :func:`encode_subscribe` and waits for the
:class:`SubscriptionAck`, whose set is the server's whole current subscription. A
:class:`ServerErrorEvent` can come at any point; :func:`is_fatal` on its
:meth:`~ServerErrorEvent.error` says whether retrying can help, from the one table in
:mod:`streamfsm.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias, TypeVar

import attrs
import msgspec

from streamfsm._core.subscriptions import Subscription
from streamfsm.config import MAX_SUBSCRIBE_FRAGMENT, Encoding
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    SERVER_ERRORS,
    InvalidSymbolError,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    ServerErrorSpec,
    StreamError,
    server_error,
)
from streamfsm.models import (
    Bar,
    DailyBar,
    MarketData,
    Quote,
    Trade,
    TradingStatus,
    UpdatedBar,
)

__all__ = [
    "Authenticated",
    "Connected",
    "ControlEvent",
    "DecodedFrame",
    "FrameDecoder",
    "ServerErrorEvent",
    "SubscriptionAck",
    "auth_headers",
    "classify",
    "content_type",
    "encode_auth",
    "encode_subscribe",
    "encode_unsubscribe",
    "is_fatal",
]

# ---------------------------------------------------------------- control events


@attrs.frozen
class Connected:
    """The server accepted the WebSocket: ``{"T": "success", "msg": "connected"}``."""


@attrs.frozen
class Authenticated:
    """The server accepted the credentials: ``{"T": "success", "msg": "authenticated"}``."""


@attrs.frozen
class SubscriptionAck:
    """The server's subscription after a change: ``{"T": "subscription", "trades": [...], ...}``.

    Attributes:
        subscription: the server's entire current set on the channels streamfsm uses (trades,
            quotes, bars), not the change just made. Other channels the ack lists are ignored.
    """

    subscription: Subscription


@attrs.frozen
class ServerErrorEvent:
    """An error message from the server: ``{"T": "error", "code": 402, "msg": "auth failed"}``.

    Attributes:
        code: Alpaca's error code.
        message: the server's text, empty when it sent none.
    """

    code: int
    message: str

    def error(self) -> ServerError:
        """Return the typed error for this code (the documented text when ``message`` is empty)."""
        return server_error(self.code, self.message or None)


#: Everything a frame can carry besides market data.
ControlEvent: TypeAlias = Connected | Authenticated | SubscriptionAck | ServerErrorEvent

# ---------------------------------------------------------------- wire structs


class _Success(msgspec.Struct, frozen=True, tag_field="T", tag="success"):
    msg: str


class _Error(msgspec.Struct, frozen=True, tag_field="T", tag="error"):
    code: int
    msg: str = ""


class _Subscription(msgspec.Struct, frozen=True, tag_field="T", tag="subscription"):
    trades: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    bars: tuple[str, ...] = ()


class _Unsupported(msgspec.Struct, frozen=True, tag_field="T"):
    """Market data Alpaca documents but streamfsm does not deliver; decoded, counted, dropped.

    Listing these types in the union keeps their frames off the element-by-element path.
    """


class _Luld(_Unsupported, frozen=True, tag="l"):
    pass


class _Correction(_Unsupported, frozen=True, tag="c"):
    pass


class _CancelError(_Unsupported, frozen=True, tag="x"):
    pass


class _Orderbook(_Unsupported, frozen=True, tag="o"):
    pass


class _News(_Unsupported, frozen=True, tag="n"):
    pass


class _Envelope(msgspec.Struct, frozen=True):
    """Just the tag of a message, read when the message itself failed to decode."""

    kind: str = msgspec.field(name="T")


#: Every market-data type, subclasses spelled out: msgspec wants each tag in the union.
_MarketData: TypeAlias = Quote | Trade | Bar | UpdatedBar | DailyBar | TradingStatus
_Message: TypeAlias = (
    _MarketData
    | _Success
    | _Error
    | _Subscription
    | _Luld
    | _Correction
    | _CancelError
    | _Orderbook
    | _News
)

_CONTROL_TAGS: Final = frozenset({"success", "error", "subscription"})
#: What msgspec raises on bad input: malformed or mistyped data (``ValidationError`` is a
#: ``DecodeError``), nesting deeper than the interpreter's recursion limit, strings that are not
#: UTF-8 (``UnicodeDecodeError``) and ``str`` frames with lone surrogates (``UnicodeEncodeError``).
_DECODE_FAILURES: Final = (msgspec.DecodeError, RecursionError, UnicodeError)

# ---------------------------------------------------------------- decoding


class DecodedFrame(msgspec.Struct, frozen=True, gc=False):
    """What one frame carried, in frame order.

    A msgspec struct rather than an attrs class because one is built per frame: it costs a
    seventh of a frozen attrs instance.

    Attributes:
        control: connection events (at most one per frame from a conforming server).
        data: quotes, trades, bars (minute, updated, daily) and trading statuses.
        skipped: messages dropped: types streamfsm does not deliver, unknown types, malformed
            market data, and ``success`` messages other than connected and authenticated.
    """

    control: list[ControlEvent]
    data: list[MarketData]
    skipped: int = 0


@attrs.frozen
class _Decoders:
    """The prebuilt decoders of one encoding, as bound ``decode`` methods.

    The frame decoders take ``Any``: msgpack's take bytes-like only, JSON's also ``str``;
    :meth:`FrameDecoder.decode` turns text away from a msgpack stream before calling them.
    """

    data: Callable[[Any], list[MarketData]]
    frame: Callable[[Any], list[_Message]]
    elements: Callable[[Any], list[msgspec.Raw]]
    element: Callable[[msgspec.Raw], _Message]
    envelope: Callable[[msgspec.Raw], _Envelope]


_DECODERS: Final = {
    Encoding.MSGPACK: _Decoders(
        data=msgspec.msgpack.Decoder(list[_MarketData]).decode,
        frame=msgspec.msgpack.Decoder(list[_Message]).decode,
        elements=msgspec.msgpack.Decoder(list[msgspec.Raw]).decode,
        element=msgspec.msgpack.Decoder(_Message).decode,
        envelope=msgspec.msgpack.Decoder(_Envelope).decode,
    ),
    Encoding.JSON: _Decoders(
        data=msgspec.json.Decoder(list[_MarketData]).decode,
        frame=msgspec.json.Decoder(list[_Message]).decode,
        elements=msgspec.json.Decoder(list[msgspec.Raw]).decode,
        element=msgspec.json.Decoder(_Message).decode,
        envelope=msgspec.json.Decoder(_Envelope).decode,
    ),
}

_SUCCESS_EVENTS: Final[dict[str, ControlEvent]] = {
    "connected": Connected(),
    "authenticated": Authenticated(),
}


class FrameDecoder:
    """Decodes server frames of one encoding into :class:`DecodedFrame` values.

    Holds no state between frames; one instance can serve every connection of that encoding.
    """

    __slots__ = ("_decoders", "encoding")

    def __init__(self, encoding: Encoding) -> None:
        """Prepare for frames of ``encoding`` (the ``Content-Type`` the connection asked for).

        Raises:
            ValueError: when ``encoding`` is not an :class:`~streamfsm.config.Encoding` value.
        """
        self.encoding = Encoding(encoding)
        self._decoders = _DECODERS[self.encoding]

    def decode(self, frame: bytes | str) -> DecodedFrame:
        """Decode one WebSocket message.

        Args:
            frame: the message as received: ``bytes`` for msgpack, ``str`` (or UTF-8 ``bytes``)
                for JSON.

        Returns:
            The frame's control events and market data, in order, and the count of skipped
            messages.

        Raises:
            RemoteProtocolError: when the frame is not an array of messages (garbage, truncated,
                a bare object, a text frame on a msgpack stream), or when a control message in
                it is malformed. Nothing else escapes.
        """
        if isinstance(frame, str) and self.encoding is Encoding.MSGPACK:
            raise RemoteProtocolError("a text frame arrived on a msgpack stream")
        try:
            data = self._decoders.data(frame)
        except _DECODE_FAILURES:
            return self._decode_mixed(frame)
        return DecodedFrame([], data)

    def _decode_mixed(self, frame: bytes | str) -> DecodedFrame:
        """The frame holds more than market data: decode it against every message type."""
        try:
            messages = self._decoders.frame(frame)
        except _DECODE_FAILURES:
            return self._decode_each(frame)
        return _sort(messages, 0)

    def _decode_each(self, frame: bytes | str) -> DecodedFrame:
        """The slow path: decode element by element, skipping bad market data."""
        try:
            elements = self._decoders.elements(frame)
        except _DECODE_FAILURES as exc:
            raise RemoteProtocolError(f"{self.encoding} frame is not an array: {exc}") from exc
        messages: list[_Message] = []
        skipped = 0
        for element in elements:
            try:
                messages.append(self._decoders.element(element))
            except _DECODE_FAILURES as exc:
                kind = self._kind(element)
                if kind in _CONTROL_TAGS:
                    raise RemoteProtocolError(f"malformed {kind!r} message: {exc}") from exc
                skipped += 1
        return _sort(messages, skipped)

    def _kind(self, element: msgspec.Raw) -> str | None:
        try:
            return self._decoders.envelope(element).kind
        except _DECODE_FAILURES:
            return None


def _sort(messages: list[_Message], skipped: int) -> DecodedFrame:
    """Split decoded messages into control events and market data, counting what is dropped."""
    control: list[ControlEvent] = []
    data: list[MarketData] = []
    for message in messages:
        if isinstance(message, Quote | Trade | Bar | TradingStatus):
            data.append(message)
            continue
        event = None if isinstance(message, _Unsupported) else _control_event(message)
        if event is None:
            skipped += 1
        else:
            control.append(event)
    return DecodedFrame(control, data, skipped)


def _control_event(message: _Success | _Error | _Subscription) -> ControlEvent | None:
    """The event for a control message; None for a ``success`` that is not one streamfsm knows.

    Raises:
        RemoteProtocolError: when a subscription ack lists a symbol that is not valid.
    """
    if isinstance(message, _Success):
        return _SUCCESS_EVENTS.get(message.msg)
    if isinstance(message, _Error):
        return ServerErrorEvent(message.code, message.msg)
    try:
        subscription = Subscription(trades=message.trades, quotes=message.quotes, bars=message.bars)
    except InvalidSymbolError as exc:
        raise RemoteProtocolError(f"subscription ack lists an invalid symbol: {exc}") from exc
    return SubscriptionAck(subscription)


# ---------------------------------------------------------------- encoding

_MSGPACK_ENCODER: Final = msgspec.msgpack.Encoder()
_JSON_ENCODER: Final = msgspec.json.Encoder()
_CONTENT_TYPES: Final = {
    Encoding.MSGPACK: "application/msgpack",
    Encoding.JSON: "application/json",
}
#: Header names for authenticating during the WebSocket handshake.
_KEY_ID_HEADER: Final = "APCA-API-KEY-ID"
_SECRET_HEADER: Final = "APCA-API-SECRET-KEY"

_Payload = TypeVar("_Payload", bytes, str)


def _fragments(payload: _Payload) -> list[_Payload]:
    step = MAX_SUBSCRIBE_FRAGMENT
    return [payload[start : start + step] for start in range(0, len(payload), step)]


def encode_auth(credentials: Credentials, encoding: Encoding) -> bytes | str:
    """Encode ``{"action": "auth", "key": ..., "secret": ...}``.

    The result holds the secret in clear: hand it to the socket and drop it; never log it.

    Returns:
        ``bytes`` for msgpack (a binary frame), ``str`` for JSON (a text frame).
    """
    message = {"action": "auth", "key": credentials.key_id, "secret": credentials.reveal()}
    if Encoding(encoding) is Encoding.MSGPACK:
        return _MSGPACK_ENCODER.encode(message)
    return _JSON_ENCODER.encode(message).decode()


def _encode_action(
    action: str, subscription: Subscription, encoding: Encoding
) -> list[bytes] | list[str]:
    if not subscription:
        raise LocalProtocolError(f"nothing to {action}: the subscription is empty")
    message = {"action": action, **subscription.to_wire()}
    if Encoding(encoding) is Encoding.MSGPACK:
        return _fragments(_MSGPACK_ENCODER.encode(message))
    return _fragments(_JSON_ENCODER.encode(message).decode())


def encode_subscribe(subscription: Subscription, encoding: Encoding) -> list[bytes] | list[str]:
    """Encode ``{"action": "subscribe", "trades": [...], "quotes": [...], "bars": [...]}``.

    Subscribing is additive on the server: pass only what to add. Channels without symbols are
    left out, symbols are sorted.

    Returns:
        The fragments of one WebSocket message, each at most ``MAX_SUBSCRIBE_FRAGMENT`` bytes,
        as alpaca-py sends them; pass the list to ``websockets``' ``send``, which sends an
        iterable as one fragmented message. JSON fragments are ``str`` cut at characters, which
        are bytes here: symbols are ASCII.

    Raises:
        LocalProtocolError: when ``subscription`` is empty.
    """
    return _encode_action("subscribe", subscription, encoding)


def encode_unsubscribe(subscription: Subscription, encoding: Encoding) -> list[bytes] | list[str]:
    """Encode ``{"action": "unsubscribe", ...}``, fragmented as :func:`encode_subscribe` does.

    Raises:
        LocalProtocolError: when ``subscription`` is empty.
    """
    return _encode_action("unsubscribe", subscription, encoding)


class _AuthHeaders(dict[str, str]):
    """Handshake headers whose repr (and so str) masks the secret."""

    def __repr__(self) -> str:
        shown = {name: "***" if name == _SECRET_HEADER else value for name, value in self.items()}
        return repr(shown)

    __str__ = __repr__


def auth_headers(credentials: Credentials) -> dict[str, str]:
    """Return the headers that authenticate during the WebSocket handshake.

    The values hold the secret in clear; the mapping's ``repr`` does not show it.
    """
    return _AuthHeaders({_KEY_ID_HEADER: credentials.key_id, _SECRET_HEADER: credentials.reveal()})


def content_type(encoding: Encoding) -> str:
    """Return the ``Content-Type`` header that asks the server for ``encoding`` frames."""
    return _CONTENT_TYPES[Encoding(encoding)]


def classify(code: int) -> ServerErrorSpec | None:
    """Return the row of :data:`streamfsm.errors.SERVER_ERRORS` for ``code``.

    Returns:
        The class, documented message and classification (``fatal``, ``rejects_change``) of a
        documented code; None for a code Alpaca has not documented, which streamfsm treats as a
        transient :class:`~streamfsm.errors.ServerError`.
    """
    return SERVER_ERRORS.get(code)


def is_fatal(error: BaseException) -> bool:
    """Say whether ``error`` ends the lifecycle (True) or is worth another attempt (False).

    A streamfsm error says so itself (``StreamError.fatal``, from the error table for server
    codes). ``OSError`` (which includes ``TimeoutError`` and connection resets) and ``EOFError``
    from below the transport are transient. Anything else is an unexpected failure, a bug: it is
    fatal so it surfaces instead of being retried forever, the rule websockets' reconnecting
    client applies too.
    """
    if isinstance(error, StreamError):
        return error.fatal
    return not isinstance(error, OSError | EOFError)
