"""Conversions of the ``fast`` structs into what the other model modes deliver.

- :func:`to_alpaca` builds alpaca-py's own model, equal to what alpaca-py's ``*DataStream``
  delivers for the same message (LULD bands stay dicts, as alpaca-py hands them out);
- :func:`to_raw` builds the wire dict with a ``datetime`` for ``t``: the shape alpaca-py's
  ``raw_data=True`` delivers, for code that holds a struct. The ``raw`` model mode itself does not
  go through it: it hands out the decoder's own dicts, exactly alpaca-py's values.

alpaca-py is imported by :func:`load_alpaca_models` or the first :func:`to_alpaca` call, not with
this module: it costs about a second and pulls in its WebSocket client, which ``fast`` and
``raw`` users never need.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import msgspec

from streamfsm.models.structs import (
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

if TYPE_CHECKING:
    from alpaca.data.models import Bar as AlpacaBar
    from alpaca.data.models import News as AlpacaNews
    from alpaca.data.models import Orderbook as AlpacaOrderbook
    from alpaca.data.models import Quote as AlpacaQuote
    from alpaca.data.models import Trade as AlpacaTrade
    from alpaca.data.models import TradeCancel as AlpacaTradeCancel
    from alpaca.data.models import TradeCorrection as AlpacaTradeCorrection
    from alpaca.data.models import TradingStatus as AlpacaTradingStatus
    from pydantic import BaseModel

__all__ = [
    "alpaca_converter",
    "decimal_price",
    "load_alpaca_models",
    "raw_converter",
    "to_alpaca",
    "to_raw",
]


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
    if m.taker_side is not None:
        raw["tks"] = m.taker_side
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


def _builtins_raw(m: MarketData) -> dict[str, Any]:
    """The wire dict of a rarer message type, from msgspec's own encoder rules."""
    raw: dict[str, Any] = msgspec.to_builtins(m, builtin_types=(datetime,))
    return raw


_TO_RAW: Final[dict[type[MarketData], Callable[[Any], dict[str, Any]]]] = {
    Quote: _quote_raw,
    Trade: _trade_raw,
    Bar: partial(_bar_raw, "b"),
    UpdatedBar: partial(_bar_raw, "u"),
    DailyBar: partial(_bar_raw, "d"),
    TradingStatus: _status_raw,
    Luld: _builtins_raw,
    TradeCorrection: _builtins_raw,
    TradeCancel: _builtins_raw,
    Orderbook: _builtins_raw,
    News: _builtins_raw,
}


def to_raw(m: MarketData) -> dict[str, Any]:
    """Return the wire dict of ``m``, as alpaca-py hands it out with ``raw_data=True``.

    Keys are the wire keys (``T``, ``S``, ``bp``, ...); optional keys that are None are left
    out, as they were on the wire. ``t`` (and a news article's ``created_at`` and ``updated_at``)
    is a timezone-aware UTC ``datetime`` where alpaca-py hands out a ``msgpack.Timestamp``.
    ``c`` is the struct's own list, not a copy.

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
#: Attributes that streamfsm structs have and alpaca-py's models do not.
_EXTRAS: Final = frozenset({"seq", "taker_side"})
#: Size-like attributes alpaca-py declares as floats (the wire sends integers on stocks).
_FLOATS: Final = ("size", "bid_size", "ask_size", "volume", "trade_count")
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
        fields == set(struct.__struct_fields__) - _EXTRAS
        and cls.__pydantic_post_init__ is None
        and not cls.__private_attributes__
        and cls.model_config.get("extra") != "allow"
        and not cls.__pydantic_root_model__
    )

    floats = [name for name in _FLOATS if name in fields]

    def values_of(m: MarketData) -> dict[str, Any]:
        values = asdict(m)
        for extra in _EXTRAS:
            values.pop(extra, None)
        for name in floats:
            value = values[name]
            if type(value) is int:
                values[name] = float(value)
        return values

    def construct(m: MarketData) -> _Model:
        values = values_of(m)
        model = new(cls)
        _set_attribute(model, "__dict__", values)
        _set_attribute(model, "__pydantic_fields_set__", fields.copy())
        _set_attribute(model, "__pydantic_extra__", None)
        _set_attribute(model, "__pydantic_private__", None)
        return model

    def validate_free(m: MarketData) -> _Model:
        return cls.model_construct(**values_of(m))

    return construct if exact else validate_free


def _validated(cls: Any, with_symbol: bool) -> Callable[[MarketData], Any]:
    """The converter that builds ``cls`` as alpaca-py's stream does: its constructor, validated.

    For the rarer types (corrections, cancels, order books, news) whose models convert nested
    values and enums; the cost of validation does not matter at their rates.
    """

    def construct(m: MarketData) -> Any:
        raw = to_raw(m)
        return cls(raw["S"], raw) if with_symbol else cls(raw)

    return construct


_TO_ALPACA: dict[type[MarketData], Callable[[MarketData], Any]] = {}


def raw_converter(kind: type[MarketData]) -> Callable[[Any], dict[str, Any]]:
    """:func:`to_raw` for one struct type, without the per-message type dispatch.

    Raises:
        KeyError: when ``kind`` is not one of this module's market-data structs.
    """
    return _TO_RAW[kind]


def alpaca_converter(kind: type[MarketData]) -> Callable[[Any], Any]:
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
    _TO_ALPACA[TradeCorrection] = _validated(alpaca.TradeCorrection, with_symbol=True)
    _TO_ALPACA[TradeCancel] = _validated(alpaca.TradeCancel, with_symbol=True)
    _TO_ALPACA[Orderbook] = _validated(alpaca.Orderbook, with_symbol=True)
    _TO_ALPACA[News] = _validated(alpaca.News, with_symbol=False)
    # alpaca-py has no LULD model: its stream hands LULD bands out as the wire dict.
    _TO_ALPACA[Luld] = _builtins_raw


@overload
def to_alpaca(m: Quote) -> AlpacaQuote: ...
@overload
def to_alpaca(m: Trade) -> AlpacaTrade: ...
@overload
def to_alpaca(m: Bar) -> AlpacaBar: ...
@overload
def to_alpaca(m: TradingStatus) -> AlpacaTradingStatus: ...
@overload
def to_alpaca(m: TradeCorrection) -> AlpacaTradeCorrection: ...
@overload
def to_alpaca(m: TradeCancel) -> AlpacaTradeCancel: ...
@overload
def to_alpaca(m: Orderbook) -> AlpacaOrderbook: ...
@overload
def to_alpaca(m: News) -> AlpacaNews: ...
@overload
def to_alpaca(m: Luld) -> dict[str, Any]: ...
def to_alpaca(m: MarketData) -> Any:
    """Return what alpaca-py's stream delivers for ``m`` with ``raw_data=False``.

    alpaca-py's ``Quote``, ``Trade``, ``Bar``, ``TradingStatus``, ``TradeCorrection``,
    ``TradeCancel``, ``Orderbook`` or ``News``; for a LULD band, the wire dict with a ``datetime``
    for ``t``, as alpaca-py hands it out.

    The result equals (``model_dump()``) what alpaca-py builds from the same wire message. Quotes,
    trades, bars and statuses are built without pydantic validation (the struct was validated
    when it was decoded, integer sizes become floats as alpaca-py declares them); the rarer types
    go through alpaca-py's own constructors.
    Updated and daily bars become alpaca-py ``Bar`` objects, as in ``StockDataStream``.
    ``conditions`` is shared with ``m``, not copied. ``seq`` and ``taker_side`` are dropped.

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
