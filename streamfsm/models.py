"""Market-data values as they come off the wire: frozen msgspec structs, and their conversions.

These are the ``fast`` models. Each struct is tagged by the wire's ``T`` key and its fields are
renamed to the wire's short keys, so :mod:`streamfsm._core.protocol` decodes a whole frame into
them in
one typed msgspec call. Attribute names and types are those of alpaca-py's own models
(``alpaca.data.models.Quote``, ``Trade``, ``Bar``, ``TradingStatus``), so a handler that reads
``quote.bid_price`` or ``bar.vwap`` works with either. Sizes, volumes and trade counts are floats
because alpaca-py declares them so.

Two conversions serve the other model modes, both plain functions on the hot path:

- :func:`to_alpaca` builds alpaca-py's own model, equal to what alpaca-py's ``StockDataStream``
  delivers for the same message;
- :func:`to_raw` builds the wire dict, as alpaca-py's ``raw_data=True`` delivers it.

Differences from alpaca-py, all deliberate:

- ``timestamp`` is a timezone-aware ``datetime``. Alpaca sends nanoseconds; msgspec rounds them to
  the nearest microsecond, where alpaca-py (``msgpack.Timestamp.to_datetime``) truncates. The two
  can therefore differ by one microsecond.
- ``seq`` (wire key ``_seq``) is a per-symbol sequence number that the streamfsm simulator adds so
  that tests and demos can count gaps. Alpaca does not send it; it is None on a real feed.
- Keys Alpaca may add later are ignored.

The structs are immutable but ``conditions`` is a list, as in alpaca-py, so they are not hashable
when it is set. They are built with ``gc=False`` (decoding is about 10% faster and the garbage
collector does not track millions of them): they hold only strings, numbers, datetimes and a
list of strings, so they cannot be part of a reference cycle unless a caller puts one into its
own ``conditions`` list.

alpaca-py is imported by :func:`load_alpaca_models` or the first :func:`to_alpaca` call, not with
this module: it costs about a second and pulls in its WebSocket client, which ``fast`` and
``raw`` users never need.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeAlias, TypeVar, overload

import msgspec

if TYPE_CHECKING:
    from alpaca.data.models import Bar as AlpacaBar
    from alpaca.data.models import Quote as AlpacaQuote
    from alpaca.data.models import Trade as AlpacaTrade
    from alpaca.data.models import TradingStatus as AlpacaTradingStatus
    from pydantic import BaseModel

__all__ = [
    "Bar",
    "DailyBar",
    "MarketData",
    "Quote",
    "Trade",
    "TradingStatus",
    "UpdatedBar",
    "alpaca_converter",
    "decimal_price",
    "load_alpaca_models",
    "raw_converter",
    "to_alpaca",
    "to_raw",
]

#: A timestamp that must carry a timezone; Alpaca's are UTC (``Z`` in JSON, msgpack Timestamp).
_Timestamp: TypeAlias = Annotated[datetime, msgspec.Meta(tz=True)]


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
    bid_size: float = msgspec.field(name="bs")
    ask_exchange: str | None = msgspec.field(name="ax", default=None)
    ask_price: float = msgspec.field(name="ap")
    ask_size: float = msgspec.field(name="as")
    conditions: list[str] | None = msgspec.field(name="c", default=None)
    tape: str | None = msgspec.field(name="z", default=None)
    #: Simulator extension (``_seq``): per-symbol sequence number; None from Alpaca.
    seq: int | None = msgspec.field(name="_seq", default=None)


class Trade(_WireStruct, frozen=True, kw_only=True, tag="t"):
    """One trade print (``T`` = ``"t"``)."""

    symbol: str = msgspec.field(name="S")
    timestamp: _Timestamp = msgspec.field(name="t")
    exchange: str | None = msgspec.field(name="x", default=None)
    price: float = msgspec.field(name="p")
    size: float = msgspec.field(name="s")
    id: int | None = msgspec.field(name="i", default=None)
    conditions: list[str] | None = msgspec.field(name="c", default=None)
    tape: str | None = msgspec.field(name="z", default=None)
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
    volume: float = msgspec.field(name="v")
    trade_count: float | None = msgspec.field(name="n", default=None)
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


#: Every market-data value streamfsm delivers.
MarketData: TypeAlias = Quote | Trade | Bar | TradingStatus


def decimal_price(x: float) -> Decimal:
    """Return ``x`` as the Decimal of its shortest repr: ``decimal_price(0.1) == Decimal("0.1")``.

    ``Decimal(x)`` would expose the binary expansion (``0.1000000000000000055...``); the shortest
    repr is the decimal the server most likely meant. NaN and infinities map to their Decimal
    counterparts.
    """
    return Decimal(repr(x))


# ---------------------------------------------------------------- to_raw


# Each converter writes its keys out, which is faster than ``msgspec.to_builtins`` (1.1 against
# 1.8 us a quote); a property test holds them equal to it.


def _quote_raw(m: Quote) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "T": "q",
        "S": m.symbol,
        "t": m.timestamp,
        "bp": m.bid_price,
        "bs": m.bid_size,
        "ap": m.ask_price,
        "as": m.ask_size,
    }
    if m.bid_exchange is not None:
        raw["bx"] = m.bid_exchange
    if m.ask_exchange is not None:
        raw["ax"] = m.ask_exchange
    if m.conditions is not None:
        raw["c"] = m.conditions
    if m.tape is not None:
        raw["z"] = m.tape
    if m.seq is not None:
        raw["_seq"] = m.seq
    return raw


def _trade_raw(m: Trade) -> dict[str, Any]:
    raw: dict[str, Any] = {"T": "t", "S": m.symbol, "t": m.timestamp, "p": m.price, "s": m.size}
    if m.exchange is not None:
        raw["x"] = m.exchange
    if m.id is not None:
        raw["i"] = m.id
    if m.conditions is not None:
        raw["c"] = m.conditions
    if m.tape is not None:
        raw["z"] = m.tape
    if m.seq is not None:
        raw["_seq"] = m.seq
    return raw


def _bar_raw(tag: str, m: Bar) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "T": tag,
        "S": m.symbol,
        "t": m.timestamp,
        "o": m.open,
        "h": m.high,
        "l": m.low,
        "c": m.close,
        "v": m.volume,
    }
    if m.trade_count is not None:
        raw["n"] = m.trade_count
    if m.vwap is not None:
        raw["vw"] = m.vwap
    if m.seq is not None:
        raw["_seq"] = m.seq
    return raw


def _status_raw(m: TradingStatus) -> dict[str, Any]:
    return {
        "T": "s",
        "S": m.symbol,
        "t": m.timestamp,
        "sc": m.status_code,
        "sm": m.status_message,
        "rc": m.reason_code,
        "rm": m.reason_message,
        "z": m.tape,
    }


_TO_RAW: Final[dict[type[MarketData], Callable[[Any], dict[str, Any]]]] = {
    Quote: _quote_raw,
    Trade: _trade_raw,
    Bar: partial(_bar_raw, "b"),
    UpdatedBar: partial(_bar_raw, "u"),
    DailyBar: partial(_bar_raw, "d"),
    TradingStatus: _status_raw,
}


def to_raw(m: MarketData) -> dict[str, Any]:
    """Return the wire dict of ``m``, as alpaca-py hands it out with ``raw_data=True``.

    Keys are the wire keys (``T``, ``S``, ``bp``, ...); optional keys that are None are left
    out, as they were on the wire. ``t`` is a timezone-aware UTC ``datetime`` where alpaca-py
    hands out a ``msgpack.Timestamp``. ``c`` is the struct's own list, not a copy.

    Raises:
        TypeError: when ``m`` is not one of this module's market-data structs.
    """
    try:
        convert = _TO_RAW[type(m)]
    except KeyError:
        raise TypeError(f"to_raw expects a streamfsm market-data struct, got {m!r}") from None
    return convert(m)


# ---------------------------------------------------------------- to_alpaca

_Model = TypeVar("_Model", bound="BaseModel")
#: The attribute that streamfsm structs have and alpaca-py's models do not.
_SEQ: Final = "seq"
_set_attribute: Final = object.__setattr__


def _builder(cls: type[_Model], struct: type[MarketData]) -> Callable[[MarketData], _Model]:
    """Return the converter from ``struct`` to alpaca-py's ``cls``.

    ``cls.model_construct`` walks every field's aliases and defaults on each call, which costs as
    much as full validation (about 10 us on a 2-core test box). When ``cls`` takes every field
    from the struct and has no extras, private attributes or post-init hook, ``model_construct``
    reduces to setting the four instance attributes pydantic documents for ``BaseModel``; that is
    what the fast converter does (checked once here, and by the tests against ``model_construct``).
    """
    fields = set(cls.model_fields)
    asdict = msgspec.structs.asdict
    new = object.__new__
    exact = (
        fields == set(struct.__struct_fields__) - {_SEQ}
        and cls.__pydantic_post_init__ is None
        and not cls.__private_attributes__
        and cls.model_config.get("extra") != "allow"
        and not cls.__pydantic_root_model__
    )

    def construct(m: MarketData) -> _Model:
        values = asdict(m)
        values.pop(_SEQ, None)
        model = new(cls)
        _set_attribute(model, "__dict__", values)
        _set_attribute(model, "__pydantic_fields_set__", fields.copy())
        _set_attribute(model, "__pydantic_extra__", None)
        _set_attribute(model, "__pydantic_private__", None)
        return model

    def validate_free(m: MarketData) -> _Model:
        values = asdict(m)
        values.pop(_SEQ, None)
        return cls.model_construct(**values)

    return construct if exact else validate_free


_TO_ALPACA: dict[type[MarketData], Callable[[MarketData], BaseModel]] = {}


def raw_converter(kind: type[MarketData]) -> Callable[[Any], dict[str, Any]]:
    """:func:`to_raw` for one struct type, without the per-message type dispatch.

    Raises:
        KeyError: when ``kind`` is not one of this module's market-data structs.
    """
    return _TO_RAW[kind]


def alpaca_converter(kind: type[MarketData]) -> Callable[[Any], BaseModel]:
    """:func:`to_alpaca` for one struct type, alpaca-py's models imported now.

    Raises:
        KeyError: when ``kind`` is not one of this module's market-data structs.
    """
    load_alpaca_models()
    return _TO_ALPACA[kind]


def load_alpaca_models() -> None:
    """Import alpaca-py's models now (about a second) rather than on the first message.

    A controller in ``alpaca`` mode calls this at construction, so the import never stalls the
    event loop while a session is live.
    """
    if not _TO_ALPACA:
        _load_alpaca()


def _load_alpaca() -> None:
    """Import alpaca-py's models and fill the conversion table (once, on first use)."""
    from alpaca.data import models as alpaca

    pairs: tuple[tuple[type[MarketData], type[BaseModel]], ...] = (
        (Quote, alpaca.Quote),
        (Trade, alpaca.Trade),
        (Bar, alpaca.Bar),
        (UpdatedBar, alpaca.Bar),
        (DailyBar, alpaca.Bar),
        (TradingStatus, alpaca.TradingStatus),
    )
    _TO_ALPACA.update({struct: _builder(model, struct) for struct, model in pairs})


@overload
def to_alpaca(m: Quote) -> AlpacaQuote: ...
@overload
def to_alpaca(m: Trade) -> AlpacaTrade: ...
@overload
def to_alpaca(m: Bar) -> AlpacaBar: ...
@overload
def to_alpaca(m: TradingStatus) -> AlpacaTradingStatus: ...
def to_alpaca(m: MarketData) -> BaseModel:
    """Return alpaca-py's own model for ``m``: ``Quote``, ``Trade``, ``Bar`` or ``TradingStatus``.

    The result equals (``model_dump()``) what alpaca-py builds from the same wire message, and is
    built without pydantic validation: the struct was already validated when it was decoded.
    Updated and daily bars become alpaca-py ``Bar`` objects, as in ``StockDataStream``.
    ``conditions`` is shared with ``m``, not copied. ``seq`` is dropped.

    Raises:
        TypeError: when ``m`` is not one of this module's market-data structs.
    """
    try:
        convert = _TO_ALPACA[type(m)]
    except KeyError:
        if _TO_ALPACA or type(m) not in _TO_RAW:
            raise TypeError(
                f"to_alpaca expects a streamfsm market-data struct, got {m!r}"
            ) from None
        _load_alpaca()
        convert = _TO_ALPACA[type(m)]
    return convert(m)
