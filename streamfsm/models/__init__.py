"""Market-data values (the ``fast`` models) and their conversions to alpaca-py's models and dicts.

:mod:`streamfsm.models.structs` holds the frozen msgspec structs the decoder builds, one per
message type of every Alpaca stream; :mod:`streamfsm.models.convert` turns them into alpaca-py's
own models (``alpaca`` mode) or wire dicts.
"""

from __future__ import annotations

from streamfsm.models.convert import (
    alpaca_converter,
    decimal_price,
    load_alpaca_models,
    raw_converter,
    to_alpaca,
    to_raw,
)
from streamfsm.models.structs import (
    Bar,
    DailyBar,
    Luld,
    MarketData,
    News,
    Orderbook,
    OrderbookQuote,
    Quote,
    Size,
    Trade,
    TradeCancel,
    TradeCorrection,
    TradingStatus,
    UpdatedBar,
)

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
    "alpaca_converter",
    "decimal_price",
    "load_alpaca_models",
    "raw_converter",
    "to_alpaca",
    "to_raw",
]
