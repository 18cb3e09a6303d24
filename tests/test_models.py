"""The fast market-data structs and their conversions to alpaca-py models and wire dicts."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import msgpack
import msgspec
import pytest
from alpaca.data import models as alpaca
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from strategies import UTC, alpaca_market_data, market_data

from streamfsm import models
from streamfsm.models import (
    Bar,
    DailyBar,
    MarketData,
    Quote,
    Trade,
    TradingStatus,
    UpdatedBar,
    convert,
    decimal_price,
    to_alpaca,
    to_raw,
)

WHEN = dt.datetime(2024, 7, 24, 7, 56, 53, 639713, tzinfo=UTC)
#: The same instant with nanoseconds, as Alpaca sends it.
WHEN_NS = msgpack.Timestamp(1721807813, 639713000)

QUOTE_WIRE: dict[str, Any] = {
    "T": "q",
    "S": "FAKEPACA",
    "bx": "O",
    "bp": 133.85,
    "bs": 4,
    "ax": "R",
    "ap": 135.77,
    "as": 5,
    "c": ["R"],
    "z": "A",
    "t": WHEN_NS,
}
TRADE_WIRE: dict[str, Any] = {
    "T": "t",
    "S": "AAPL",
    "i": 52983525029461,
    "x": "V",
    "p": 218.5,
    "s": 100,
    "c": ["@", "I"],
    "z": "C",
    "t": WHEN_NS,
}
BAR_WIRE: dict[str, Any] = {
    "T": "b",
    "S": "SPY",
    "o": 547.1,
    "h": 547.5,
    "l": 546.9,
    "c": 547.2,
    "v": 120_431,
    "n": 1_204,
    "vw": 547.21,
    "t": WHEN_NS,
}
STATUS_WIRE: dict[str, Any] = {
    "T": "s",
    "S": "AAPL",
    "sc": "H",
    "sm": "Trading Halt",
    "rc": "T12",
    "rm": "Trading Halted; For information requested by NASDAQ",
    "z": "C",
    "t": WHEN_NS,
}
STRUCTS: dict[str, type[MarketData]] = {
    "q": Quote,
    "t": Trade,
    "b": Bar,
    "u": UpdatedBar,
    "d": DailyBar,
    "s": TradingStatus,
}
ALPACA_MODELS: dict[str, type[BaseModel]] = {
    "q": alpaca.Quote,
    "t": alpaca.Trade,
    "b": alpaca.Bar,
    "u": alpaca.Bar,
    "d": alpaca.Bar,
    "s": alpaca.TradingStatus,
}
WIRE_EXAMPLES = [
    QUOTE_WIRE,
    TRADE_WIRE,
    BAR_WIRE,
    {**BAR_WIRE, "T": "u"},
    {**BAR_WIRE, "T": "d"},
    STATUS_WIRE,
]


def fast(wire: dict[str, Any]) -> MarketData:
    """Decode one wire message, sent as msgpack the way Alpaca sends it, into its struct."""
    frame = msgpack.packb(wire)
    decoded: MarketData = msgspec.msgpack.decode(frame, type=STRUCTS[wire["T"]])
    return decoded


def alpaca_py(wire: dict[str, Any]) -> BaseModel:
    """Build the model exactly as alpaca-py's ``StockDataStream._cast`` does from the same bytes."""
    message = msgpack.unpackb(msgpack.packb(wire))
    message["t"] = message["t"].to_datetime()
    model: BaseModel = ALPACA_MODELS[message["T"]](message["S"], message)
    return model


# ---------------------------------------------------------------- the structs


@pytest.mark.parametrize("wire", WIRE_EXAMPLES, ids=lambda wire: wire["T"])
def test_struct_attributes_match_alpaca_py(wire: dict[str, Any]) -> None:
    """Every attribute of alpaca-py's model exists on the struct, with the same value."""
    struct = fast(wire)
    reference = alpaca_py(wire)
    for name, value in reference.model_dump().items():
        assert getattr(struct, name) == value


def test_quote_fields_come_from_the_wire_keys() -> None:
    """A quote's short wire keys land on alpaca-py's attribute names, sizes as the wire has them."""
    quote = fast(QUOTE_WIRE)
    assert quote == Quote(
        symbol="FAKEPACA",
        timestamp=WHEN,
        bid_exchange="O",
        bid_price=133.85,
        bid_size=4,
        ask_exchange="R",
        ask_price=135.77,
        ask_size=5,
        conditions=["R"],
        tape="A",
    )
    assert isinstance(quote, Quote)
    assert type(quote.bid_size) is int
    assert type(to_alpaca(quote).bid_size) is float


def test_updated_and_daily_bars_are_bars() -> None:
    """Updated (``u``) and daily (``d``) bars are Bar subclasses, told apart by type."""
    assert isinstance(fast({**BAR_WIRE, "T": "u"}), UpdatedBar)
    assert isinstance(fast({**BAR_WIRE, "T": "d"}), DailyBar)
    assert issubclass(UpdatedBar, Bar)
    assert issubclass(DailyBar, Bar)
    assert type(fast(BAR_WIRE)) is Bar


def test_unknown_keys_are_ignored() -> None:
    """Keys Alpaca may add later do not break decoding."""
    assert fast({**QUOTE_WIRE, "new_key": {"nested": [1, 2]}}) == fast(QUOTE_WIRE)


def test_simulator_sequence_number_is_optional() -> None:
    """``_seq`` becomes ``seq``; without it (a real Alpaca feed) ``seq`` is None."""
    assert fast({**TRADE_WIRE, "_seq": 41}).seq == 41
    assert fast(TRADE_WIRE).seq is None


def test_optional_fields_default_to_none() -> None:
    """A quote without exchanges, conditions or tape decodes with those attributes None."""
    minimal = {key: QUOTE_WIRE[key] for key in ("T", "S", "t", "bp", "bs", "ap", "as")}
    quote = fast(minimal)
    assert isinstance(quote, Quote)
    assert (quote.bid_exchange, quote.ask_exchange, quote.conditions, quote.tape) == (None,) * 4


def test_structs_are_immutable() -> None:
    """Assigning to a struct's attribute raises."""
    quote = fast(QUOTE_WIRE)
    with pytest.raises(AttributeError):
        quote.bid_price = 1.0  # type: ignore[misc]


def test_naive_timestamps_are_rejected() -> None:
    """A timestamp without a timezone is not valid market data."""
    frame = msgspec.json.encode({**QUOTE_WIRE, "t": "2024-07-24T07:56:53.639713"})
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        msgspec.json.decode(frame, type=Quote)


def test_nanoseconds_round_to_the_nearest_microsecond() -> None:
    """msgspec rounds nanoseconds where alpaca-py truncates: the two differ by at most 1 us."""
    late = {**QUOTE_WIRE, "t": msgpack.Timestamp(1721807813, 639713735)}
    ours = fast(late).timestamp
    theirs = alpaca_py(late).model_dump()["timestamp"]
    assert ours == WHEN + dt.timedelta(microseconds=1)
    assert theirs == WHEN
    assert ours - theirs <= dt.timedelta(microseconds=1)


# ---------------------------------------------------------------- to_alpaca


@pytest.mark.parametrize("wire", WIRE_EXAMPLES, ids=lambda wire: wire["T"])
def test_to_alpaca_equals_alpaca_py_from_the_same_bytes(wire: dict[str, Any]) -> None:
    """``to_alpaca`` builds the alpaca-py model StockDataStream builds from the same frame."""
    converted = to_alpaca(fast(wire))
    reference = alpaca_py(wire)
    assert type(converted) is type(reference)
    assert converted.model_dump() == reference.model_dump()
    assert converted == reference
    assert repr(converted) == repr(reference)


@settings(max_examples=200)
@given(alpaca_market_data)
def test_to_alpaca_equals_alpaca_py_on_its_raw_dict(m: MarketData) -> None:
    """For any struct, ``to_alpaca`` equals alpaca-py's constructor given ``to_raw``'s dict."""
    raw = to_raw(m)
    reference = ALPACA_MODELS[raw["T"]](raw["S"], raw)
    converted = to_alpaca(m)
    assert type(converted) is type(reference)
    assert converted.model_dump() == reference.model_dump()


@settings(max_examples=200)
@given(market_data)
def test_to_alpaca_matches_model_construct(m: MarketData) -> None:
    """The fast construction leaves the instance exactly as pydantic's ``model_construct`` does."""
    converted = to_alpaca(m)
    values = msgspec.structs.asdict(m)
    values.pop("seq", None)
    reference = type(converted).model_construct(**values)
    assert converted.__dict__ == reference.__dict__
    assert converted.model_fields_set == reference.model_fields_set
    assert converted.__pydantic_extra__ == reference.__pydantic_extra__
    assert converted.__pydantic_private__ == reference.__pydantic_private__


def test_to_alpaca_falls_back_to_model_construct_for_richer_models() -> None:
    """A model with a field the struct lacks is built by ``model_construct``, defaults filled."""

    class VenueQuote(alpaca.Quote):
        venue: str = "XNAS"

    build = convert._builder(VenueQuote, Quote)
    converted = build(fast(QUOTE_WIRE))
    assert isinstance(converted, VenueQuote)
    assert converted.venue == "XNAS"
    assert converted.bid_price == QUOTE_WIRE["bp"]


def test_load_alpaca_models_is_idempotent() -> None:
    """Preloading alpaca-py twice keeps one conversion table that to_alpaca uses."""
    models.load_alpaca_models()
    table = dict(convert._TO_ALPACA)
    models.load_alpaca_models()
    assert table == convert._TO_ALPACA
    assert isinstance(to_alpaca(fast(TRADE_WIRE)), alpaca.Trade)


def test_to_alpaca_models_still_validate_assignment() -> None:
    """The alpaca-py model behaves as one built by alpaca-py: assignment is validated."""
    converted = to_alpaca(fast(QUOTE_WIRE))
    converted.bid_price = 1
    assert converted.bid_price == 1.0
    assert type(converted.bid_price) is float


@pytest.mark.parametrize("convert", [to_alpaca, to_raw])
def test_conversions_refuse_other_objects(convert: Any) -> None:
    """Converting anything but a market-data struct raises TypeError."""
    with pytest.raises(TypeError, match="market-data struct"):
        convert({"T": "q"})


# ---------------------------------------------------------------- to_raw


def test_to_raw_gives_the_wire_keys() -> None:
    """``to_raw`` returns the wire dict, ``t`` as a UTC datetime, ``_seq`` when present."""
    assert to_raw(fast({**QUOTE_WIRE, "_seq": 7})) == {**QUOTE_WIRE, "t": WHEN, "_seq": 7}
    assert to_raw(fast(TRADE_WIRE)) == {**TRADE_WIRE, "t": WHEN}
    assert to_raw(fast(STATUS_WIRE)) == {**STATUS_WIRE, "t": WHEN}
    assert to_raw(fast({**BAR_WIRE, "T": "d"})) == {**BAR_WIRE, "T": "d", "t": WHEN}


def test_to_raw_leaves_out_absent_optional_keys() -> None:
    """Optional keys the wire did not carry are not in the dict."""
    minimal = {key: TRADE_WIRE[key] for key in ("T", "S", "t", "p", "s")}
    assert to_raw(fast(minimal)) == {**minimal, "t": WHEN}


@settings(max_examples=200)
@given(market_data)
def test_to_raw_equals_msgspec_to_builtins(m: MarketData) -> None:
    """The hand-written converters agree with msgspec's generic one, key for key."""
    assert to_raw(m) == msgspec.to_builtins(m, builtin_types=(dt.datetime,))


@settings(max_examples=200)
@given(market_data)
def test_to_raw_round_trips_through_the_wire(m: MarketData) -> None:
    """Encoding ``to_raw``'s dict and decoding it gives the struct back."""
    frame = msgspec.msgpack.encode(to_raw(m))
    assert msgspec.msgpack.decode(frame, type=type(m)) == m


# ---------------------------------------------------------------- decimal_price


@pytest.mark.parametrize(
    ("price", "expected"),
    [(0.1, "0.1"), (133.85, "133.85"), (1e-07, "1E-7"), (218.0, "218.0"), (-0.0, "-0.0")],
)
def test_decimal_price_uses_the_shortest_repr(price: float, expected: str) -> None:
    """A float price becomes the Decimal of its shortest repr, not its binary expansion."""
    assert decimal_price(price) == Decimal(expected)
    assert str(decimal_price(price)) == str(Decimal(expected))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimal_price_round_trips(price: float) -> None:
    """Converting the Decimal back gives exactly the same float."""
    assert float(decimal_price(price)) == price


def test_decimal_price_keeps_non_finite_values() -> None:
    """NaN and infinities map to their Decimal counterparts instead of raising."""
    assert decimal_price(math.inf) == Decimal("Infinity")
    assert decimal_price(math.nan).is_nan()
