"""The embedded pricing service: latest quote and trade per symbol, staleness, thread-safe reads.

:class:`PricingService` (in :mod:`~streamfsm.pricing.service`) is the face; the snapshots it
hands out, its membership, its REST refresher and its price store live in modules of their own.
"""

from __future__ import annotations

from streamfsm.pricing.membership import TrackResult
from streamfsm.pricing.refresher import AlpacaLatestQuotes, LatestQuoteSource
from streamfsm.pricing.service import IEX_SUBSCRIPTION_LIMIT, PricingService
from streamfsm.pricing.snapshots import (
    PricingStatistics,
    QuoteSnapshot,
    Source,
    StaleReason,
    TradeSnapshot,
)

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
