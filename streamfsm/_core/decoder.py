"""Server frames in, control events and market data out: the decoding half of the protocol.

Theory of operation
-------------------
Every server frame is an array of messages, each an object tagged by ``T``. Control messages
(``success``, ``error``, ``subscription``) come alone in their frame; market data (``q``, ``t``,
``b``, ``u``, ``d``, ``s``, ``l``, ``c``, ``x``, ``o``, ``n``) comes many to a frame. The tags mean
the same on every market's stream, so one decoder serves stocks, crypto, options and news.
:class:`FrameDecoder` turns one frame into a :class:`DecodedFrame`: the control events, the market
data in frame order, and how many messages it skipped.

The fast path is one typed msgspec decode of the whole frame as market data, into the structs of
:mod:`streamfsm.models`. A frame that holds anything else (a control message) is decoded again
against every message type. Typed decoding is all or nothing, so when that fails too the frame is
split into its elements and each is decoded on its own: good messages are kept, a bad or unknown
market-data message is skipped and counted. A control message is never skipped silently (the
handshake would wait for it): a malformed one raises :class:`~streamfsm.errors.RemoteProtocolError`,
as does a frame that is not an array at all.

With ``raw=True`` the market data is what alpaca-py hands out with ``raw_data=True``: the dicts
``msgpack.unpackb`` makes of the frame, untouched (``t`` a ``msgpack.Timestamp``, sizes as the
wire has them, every key the server sent). On a JSON stream they are the JSON objects (``t`` the
RFC 3339 string). Only messages with a known market-data tag (and a symbol, but for news) are
kept; control frames go through the typed path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias

import attrs
import msgpack
import msgspec

from streamfsm._core.events import (
    Authenticated,
    Connected,
    ControlEvent,
    ServerErrorEvent,
    SubscriptionAck,
)
from streamfsm._core.subscriptions import Subscription
from streamfsm.errors import InvalidSymbolError, RemoteProtocolError
from streamfsm.markets import WIRE_NAMES, Encoding
from streamfsm.models import (
    Bar,
    DailyBar,
    Luld,
    MarketData,
    News,
    Orderbook,
    Quote,
    Trade,
    TradeCancel,
    TradeCorrection,
    TradingStatus,
    UpdatedBar,
)

__all__ = ["DATA_TAGS", "DecodedFrame", "FrameDecoder"]

# ---------------------------------------------------------------- wire structs


class _Success(msgspec.Struct, frozen=True, tag_field="T", tag="success"):
    msg: str


class _Error(msgspec.Struct, frozen=True, tag_field="T", tag="error"):
    code: int
    msg: str = ""


class _Subscription(
    msgspec.Struct, frozen=True, tag_field="T", tag="subscription", rename=dict(WIRE_NAMES)
):
    trades: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    bars: tuple[str, ...] = ()
    updated_bars: tuple[str, ...] = ()
    daily_bars: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    lulds: tuple[str, ...] = ()
    orderbooks: tuple[str, ...] = ()
    news: tuple[str, ...] = ()


class _Envelope(msgspec.Struct, frozen=True):
    """Just the tag of a message, read when the message itself failed to decode."""

    kind: str = msgspec.field(name="T")


#: Every market-data type, subclasses spelled out: msgspec wants each tag in the union.
_MarketData: TypeAlias = (
    Quote
    | Trade
    | Bar
    | UpdatedBar
    | DailyBar
    | TradingStatus
    | Luld
    | TradeCorrection
    | TradeCancel
    | Orderbook
    | News
)
_Message: TypeAlias = _MarketData | _Success | _Error | _Subscription

_CONTROL_TAGS: Final = frozenset({"success", "error", "subscription"})
#: The ``T`` of every market-data message.
DATA_TAGS: Final = frozenset({"q", "t", "b", "u", "d", "s", "l", "c", "x", "o", "n"})
_NEWS_TAG: Final = "n"
#: What msgspec raises on bad input: malformed or mistyped data (``ValidationError`` is a
#: ``DecodeError``), nesting deeper than the interpreter's recursion limit, strings that are not
#: UTF-8 (``UnicodeDecodeError``) and ``str`` frames with lone surrogates (``UnicodeEncodeError``).
_DECODE_FAILURES: Final = (msgspec.DecodeError, RecursionError, UnicodeError)
#: What ``msgpack.unpackb`` raises on bad input (``ExtraData`` and ``FormatError`` are
#: ``ValueError``s, as is ``StackError``; an unhashable map key is a ``TypeError``).
_UNPACK_FAILURES: Final = (ValueError, TypeError, RecursionError)

# ---------------------------------------------------------------- decoding


class DecodedFrame(msgspec.Struct, frozen=True, gc=False):
    """What one frame carried, in frame order.

    A msgspec struct rather than an attrs class because one is built per frame: it costs a
    seventh of a frozen attrs instance.

    Attributes:
        control: connection events (at most one per frame from a conforming server).
        data: market data: the structs of :mod:`streamfsm.models`, or dicts when decoding raw.
        skipped: messages dropped: unknown types, malformed market data, and ``success``
            messages other than connected and authenticated.
    """

    control: list[ControlEvent]
    data: list[Any]
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
    raw: Callable[[Any], Any]


def _unpack(frame: bytes) -> Any:
    return msgpack.unpackb(frame)


_DECODERS: Final = {
    Encoding.MSGPACK: _Decoders(
        data=msgspec.msgpack.Decoder(list[_MarketData]).decode,
        frame=msgspec.msgpack.Decoder(list[_Message]).decode,
        elements=msgspec.msgpack.Decoder(list[msgspec.Raw]).decode,
        element=msgspec.msgpack.Decoder(_Message).decode,
        envelope=msgspec.msgpack.Decoder(_Envelope).decode,
        raw=_unpack,
    ),
    Encoding.JSON: _Decoders(
        data=msgspec.json.Decoder(list[_MarketData]).decode,
        frame=msgspec.json.Decoder(list[_Message]).decode,
        elements=msgspec.json.Decoder(list[msgspec.Raw]).decode,
        element=msgspec.json.Decoder(_Message).decode,
        envelope=msgspec.json.Decoder(_Envelope).decode,
        raw=msgspec.json.Decoder().decode,
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

    __slots__ = ("_decoders", "encoding", "raw")

    def __init__(self, encoding: Encoding, *, raw: bool = False) -> None:
        """Prepare for frames of ``encoding`` (the ``Content-Type`` the connection asked for).

        Args:
            encoding: the stream's encoding.
            raw: deliver market data as the wire's dicts (alpaca-py's ``raw_data=True``)
                instead of structs.

        Raises:
            ValueError: when ``encoding`` is not an :class:`~streamfsm.markets.Encoding` value.
        """
        self.encoding = Encoding(encoding)
        self.raw = raw
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
        if self.raw:
            return self._decode_raw(frame)
        try:
            data = self._decoders.data(frame)
        except _DECODE_FAILURES:
            return self._decode_mixed(frame)
        return DecodedFrame([], data)

    def _decode_raw(self, frame: bytes | str) -> DecodedFrame:
        """The raw path: the wire's own dicts, filtered to market data."""
        try:
            messages = self._decoders.raw(frame)
        except (*_UNPACK_FAILURES, *_DECODE_FAILURES) as exc:
            raise RemoteProtocolError(f"{self.encoding} frame is not decodable: {exc}") from exc
        if type(messages) is not list:
            raise RemoteProtocolError(f"{self.encoding} frame is not an array")
        data = [
            message
            for message in messages
            if type(message) is dict
            and message.get("T") in DATA_TAGS
            and ("S" in message or message["T"] == _NEWS_TAG)
        ]
        if len(data) == len(messages):
            return DecodedFrame([], data)
        if any(type(m) is dict and m.get("T") in _CONTROL_TAGS for m in messages):
            control = self._decode_mixed(frame).control
            return DecodedFrame(control, data, len(messages) - len(data) - len(control))
        return DecodedFrame([], data, len(messages) - len(data))

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


_CONTROL_TYPES: Final = (_Success, _Error, _Subscription)


def _sort(messages: list[_Message], skipped: int) -> DecodedFrame:
    """Split decoded messages into control events and market data, counting what is dropped."""
    control: list[ControlEvent] = []
    data: list[MarketData] = []
    for message in messages:
        if not isinstance(message, _CONTROL_TYPES):
            data.append(message)
            continue
        event = _control_event(message)
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
        subscription = Subscription(
            **{channel: getattr(message, channel) for channel in WIRE_NAMES}
        )
    except InvalidSymbolError as exc:
        raise RemoteProtocolError(f"subscription ack lists an invalid symbol: {exc}") from exc
    return SubscriptionAck(subscription)
