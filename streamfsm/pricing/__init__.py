"""The embedded pricing service: latest quote and trade per symbol, staleness, thread-safe reads."""

from __future__ import annotations

from streamfsm.pricing.refresher import AlpacaLatestQuotes, LatestQuoteSource
from streamfsm.pricing.service import (
    IEX_SUBSCRIPTION_LIMIT,
    PricingService,
    PricingStatistics,
    TrackResult,
)
from streamfsm.pricing.snapshots import QuoteSnapshot, Source, StaleReason, TradeSnapshot

__all__ = [
    "IEX_SUBSCRIPTION_LIMIT",
    "AlpacaLatestQuotes",
    "LatestQuoteSource",
    "PricingService",
    "PricingStatistics",
    "QuoteSnapshot",
    "Source",
    "StaleReason",
    "TrackResult",
    "TradeSnapshot",
]
