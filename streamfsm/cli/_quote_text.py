"""Quotes as short text for ``streamfsm run``: prices to at least the cent, ages in ms."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from streamfsm.pricing import QuoteSnapshot

__all__ = ["MS_PER_SECOND", "brief", "price_text"]

MS_PER_SECOND: Final = 1000.0
CENTS: Final = Decimal("0.01")
CENT_EXPONENT: Final = -2


def brief(snapshot: QuoteSnapshot | None) -> str:
    """``bid/ask (age N ms, stale reason)``, or ``no quote``."""
    if snapshot is None:
        return "no quote"
    stale = f", {snapshot.stale_reason.value}" if snapshot.stale_reason is not None else ""
    age = snapshot.age * MS_PER_SECOND
    return f"{price_text(snapshot.bid)}/{price_text(snapshot.ask)} (age {age:.0f} ms{stale})"


def price_text(value: Decimal | None) -> str:
    """At least cents (``279.70``, not ``279.7``); sub-penny digits are kept (``0.1234``)."""
    if value is None:
        return "-"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > CENT_EXPONENT:
        return str(value.quantize(CENTS))
    return str(value)
