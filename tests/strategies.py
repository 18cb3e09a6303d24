"""Hypothesis strategies for the market-data structs of :mod:`streamfsm.models`."""

from __future__ import annotations

import datetime as dt
import string

from hypothesis import strategies as st

from streamfsm.models import Bar, DailyBar, MarketData, Quote, Trade, TradingStatus, UpdatedBar

UTC = dt.UTC
#: The widest integer both msgpack and msgspec carry as a signed value.
INT64_MAX = 2**63 - 1

symbols = st.text(alphabet=string.ascii_uppercase + ".", min_size=1, max_size=6)
#: Microsecond datetimes round-trip exactly through msgpack Timestamps and RFC 3339 strings.
timestamps = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC)
)
numbers = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(max_size=4)
optional_texts = st.none() | texts
conditions = st.none() | st.lists(texts, max_size=3)
sequence_numbers = st.none() | st.integers(0, INT64_MAX)

quotes = st.builds(
    Quote,
    symbol=symbols,
    timestamp=timestamps,
    bid_exchange=optional_texts,
    bid_price=numbers,
    bid_size=numbers,
    ask_exchange=optional_texts,
    ask_price=numbers,
    ask_size=numbers,
    conditions=conditions,
    tape=optional_texts,
    seq=sequence_numbers,
)
trades = st.builds(
    Trade,
    symbol=symbols,
    timestamp=timestamps,
    exchange=optional_texts,
    price=numbers,
    size=numbers,
    id=st.none() | st.integers(0, INT64_MAX),
    conditions=conditions,
    tape=optional_texts,
    seq=sequence_numbers,
)


def bars(*, complete: bool = False) -> st.SearchStrategy[Bar]:
    """Minute, updated and daily bars; ``complete`` ones carry ``n`` and ``vw`` as Alpaca's do."""
    optional = numbers if complete else st.none() | numbers
    return st.sampled_from([Bar, UpdatedBar, DailyBar]).flatmap(
        lambda cls: st.builds(
            cls,
            symbol=symbols,
            timestamp=timestamps,
            open=numbers,
            high=numbers,
            low=numbers,
            close=numbers,
            volume=numbers,
            trade_count=optional,
            vwap=optional,
            seq=sequence_numbers,
        )
    )


statuses = st.builds(
    TradingStatus,
    symbol=symbols,
    timestamp=timestamps,
    status_code=texts,
    status_message=texts,
    reason_code=texts,
    reason_message=texts,
    tape=texts,
)

market_data: st.SearchStrategy[MarketData] = st.one_of(quotes, trades, bars(), statuses)
#: Market data as alpaca-py receives it from Alpaca: bars always carry ``n`` and ``vw``.
alpaca_market_data: st.SearchStrategy[MarketData] = st.one_of(
    quotes, trades, bars(complete=True), statuses
)
