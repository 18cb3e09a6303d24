"""Market-data values as they come off the wire: frozen msgspec structs, one per message type.

These are the ``fast`` models. Each struct is tagged by the wire's ``T`` key and its fields are
renamed to the wire's short keys, so :mod:`streamfsm._core.decoder` decodes a whole frame into
them in one typed msgspec call. Attribute names are those of alpaca-py's own models
(``alpaca.data.models.Quote``, ``Trade``, ``Bar``, ``TradingStatus``, ``TradeCorrection``,
``TradeCancel``, ``Orderbook``, ``News``), so a handler that reads ``quote.bid_price`` or
``book.bids[0].price`` works with either. One struct type serves every market: a crypto quote
has no exchanges (None), an option quote's ``conditions`` is a string, a crypto size is a float.

Differences from alpaca-py, all deliberate:

- ``timestamp`` is a timezone-aware ``datetime``. Alpaca sends nanoseconds; msgspec rounds them to
  the nearest microsecond, where alpaca-py (``msgpack.Timestamp.to_datetime``) truncates. The two
  can therefore differ by one microsecond.
- Sizes keep the wire's type: integers on the stock and option streams, floats on crypto.
  alpaca-py's models turn them into floats; ``to_alpaca`` does too.
- ``seq`` (wire key ``_seq``) is a per-symbol sequence number that the streamfsm simulator adds so
  that tests and demos can count gaps. Alpaca does not send it; it is None on a real feed.
- ``Trade.taker_side`` (crypto ``tks``: ``B`` buy, ``S`` sell) is kept; alpaca-py drops it.
- :class:`Luld` has no alpaca-py model (alpaca-py hands LULD bands out as dicts).
- Keys Alpaca may add later are ignored.

The structs are immutable but their lists are lists, as in alpaca-py, so they are not hashable
when one is set. They are built with ``gc=False`` (decoding is about 10% faster and the garbage
collector does not track millions of them): they hold only strings, numbers, datetimes and lists
of those (or of :class:`OrderbookQuote`), so they cannot be part of a reference cycle unless a
caller puts one into their lists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeAlias

import msgspec

__all__ = [
    "Bar",
    "DailyBar",
    "Luld",
    "MarketData",
    "News",
    "Orderbook",
    "OrderbookQuote",
    "Quote",
    "Size",
    "Trade",
    "TradeCancel",
    "TradeCorrection",
    "TradingStatus",
    "UpdatedBar",
]

#: A timestamp that must carry a timezone; Alpaca's are UTC (``Z`` in JSON, msgpack Timestamp).
_Timestamp: TypeAlias = Annotated[datetime, msgspec.Meta(tz=True)]
#: Shares and contracts are integers on the wire, crypto quantities are fractional.
Size: TypeAlias = int | float
#: Stock conditions are a list of codes, option conditions one code.
_Conditions: TypeAlias = list[str] | str | None


class _WireStruct(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="T", omit_defaults=True, gc=False
):
    """Common configuration: immutable, tagged by ``T``, optional keys left out when encoded."""


class Quote(_WireStruct, frozen=True, kw_only=True, tag="q"):
    """A level-1 quote: the best bid and ask of one symbol (``T`` = ``"q"``)."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    bid_exchange: str | None = msgspec.field(name="bx", default=None)
    bid_price: float = msgspec.field(name="bp")
    bid_size: Size = msgspec.field(name="bs")
    ask_exchange: str | None = msgspec.field(name="ax", default=None)
    ask_price: float = msgspec.field(name="ap")
    ask_size: Size = msgspec.field(name="as")
    conditions: _Conditions = msgspec.field(name="c", default=None)
    tape: str | None = msgspec.field(name="z", default=None)
    #: Simulator extension (``_seq``): per-symbol sequence number; None from Alpaca.
    seq: int | None = msgspec.field(name="_seq", default=None)


class Trade(_WireStruct, frozen=True, kw_only=True, tag="t"):
    """One trade print (``T`` = ``"t"``)."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    exchange: str | None = msgspec.field(name="x", default=None)
    price: float = msgspec.field(name="p")
    size: Size = msgspec.field(name="s")
    id: int | None = msgspec.field(name="i", default=None)
    conditions: _Conditions = msgspec.field(name="c", default=None)
    tape: str | None = msgspec.field(name="z", default=None)
    #: Crypto only: the taker's side, ``B`` (buy) or ``S`` (sell).
    taker_side: str | None = msgspec.field(name="tks", default=None)
    #: Simulator extension (``_seq``): per-symbol sequence number; None from Alpaca.
    seq: int | None = msgspec.field(name="_seq", default=None)


class Bar(_WireStruct, frozen=True, kw_only=True, tag="b"):
    """A minute bar (``T`` = ``"b"``); ``timestamp`` is the start of the minute."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    open: float = msgspec.field(name="o")
    high: float = msgspec.field(name="h")
    low: float = msgspec.field(name="l")
    close: float = msgspec.field(name="c")
    volume: Size = msgspec.field(name="v")
    trade_count: Size | None = msgspec.field(name="n", default=None)
    vwap: float | None = msgspec.field(name="vw", default=None)
    #: Simulator extension (``_seq``): per-symbol sequence number; None from Alpaca.
    seq: int | None = msgspec.field(name="_seq", default=None)


class UpdatedBar(Bar, frozen=True, kw_only=True, tag="u"):
    """A minute bar corrected by trades that arrived late (``T`` = ``"u"``)."""


class DailyBar(Bar, frozen=True, kw_only=True, tag="d"):
    """The running bar of the trading day (``T`` = ``"d"``)."""


class TradingStatus(_WireStruct, frozen=True, kw_only=True, tag="s"):
    """A trading status change of one symbol, such as a halt or resume (``T`` = ``"s"``)."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    status_code: str = msgspec.field(name="sc")
    status_message: str = msgspec.field(name="sm")
    reason_code: str = msgspec.field(name="rc")
    reason_message: str = msgspec.field(name="rm")
    tape: str = msgspec.field(name="z")


class Luld(_WireStruct, frozen=True, kw_only=True, tag="l"):
    """Limit up - limit down price bands of one stock (``T`` = ``"l"``)."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    limit_up_price: float = msgspec.field(name="u")
    limit_down_price: float = msgspec.field(name="d")
    indicator: str = msgspec.field(name="i")
    tape: str = msgspec.field(name="z")


class TradeCorrection(_WireStruct, frozen=True, kw_only=True, tag="c"):
    """A correction of an earlier trade, sent to ``trades`` subscribers (``T`` = ``"c"``)."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    exchange: str = msgspec.field(name="x")
    original_id: int | None = msgspec.field(name="oi", default=None)
    original_price: float = msgspec.field(name="op")
    original_size: Size = msgspec.field(name="os")
    original_conditions: list[str] = msgspec.field(name="oc")
    corrected_id: int | None = msgspec.field(name="ci", default=None)
    corrected_price: float = msgspec.field(name="cp")
    corrected_size: Size = msgspec.field(name="cs")
    corrected_conditions: list[str] = msgspec.field(name="cc")
    tape: str = msgspec.field(name="z")


class TradeCancel(_WireStruct, frozen=True, kw_only=True, tag="x"):
    """A cancelled or erroneous trade, sent to ``trades`` subscribers (``T`` = ``"x"``).

    ``action`` is ``C`` (cancel) or ``E`` (error).
    """

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    exchange: str = msgspec.field(name="x")
    price: float = msgspec.field(name="p")
    size: Size = msgspec.field(name="s")
    id: int | None = msgspec.field(name="i", default=None)
    action: str | None = msgspec.field(name="a", default=None)
    tape: str = msgspec.field(name="z")


class OrderbookQuote(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One price level of an order book side; size 0 removes the level from the book."""

    price: float = msgspec.field(name="p")
    size: Size = msgspec.field(name="s")


class Orderbook(_WireStruct, frozen=True, kw_only=True, tag="o"):
    """A crypto order book: the whole book when ``reset`` is set, else the levels that changed.

    The first message after a subscription is a snapshot (``reset`` true); later ones carry only
    changed levels, a size of 0 meaning the level is gone (``T`` = ``"o"``).
    """

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    bids: list[OrderbookQuote] = msgspec.field(name="b")
    asks: list[OrderbookQuote] = msgspec.field(name="a")
    reset: bool = msgspec.field(name="r", default=False)


class News(_WireStruct, frozen=True, kw_only=True, tag="n", omit_defaults=False):
    """A news article (``T`` = ``"n"``); ``symbols`` is empty for news about no symbol.

    Every key is encoded, empty ones too, as the server sends them (alpaca-py's model needs them).
    """

    id: int
    headline: str
    summary: str = ""
    author: str = ""
    created_at: _Timestamp
    updated_at: _Timestamp
    url: str | None = None
    content: str = ""
    symbols: list[str] = msgspec.field(default_factory=list)
    source: str = ""


#: Every market-data value streamfsm delivers.
MarketData: TypeAlias = (
    Quote | Trade | Bar | TradingStatus | Luld | TradeCorrection | TradeCancel | Orderbook | News
)
