"""Snapshots: exact Decimal prices and sizes, mid and spread, immutability (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pricing_support import NOW, quote

from streamfsm.models import Trade
from streamfsm.pricing import QuoteSnapshot, Source, TradeSnapshot


def test_snapshot_prices_are_exact_decimals() -> None:
    """Prices come from the shortest decimal form, so mid and spread carry no float error."""
    snapshot = QuoteSnapshot.from_quote(
        quote(0.1, 0.2), received_at=10.0, received_wall=NOW.timestamp(), now=10.25
    )
    assert snapshot.bid == Decimal("0.1")
    assert snapshot.ask == Decimal("0.2")
    assert snapshot.mid == Decimal("0.15")
    assert snapshot.spread == Decimal("0.1")
    assert (snapshot.bid_size, snapshot.ask_size) == (Decimal(3), Decimal(5))
    assert str(snapshot.bid_size) == "3"
    assert snapshot.age == pytest.approx(0.25)
    assert snapshot.received_wall == NOW
    assert not snapshot.stale
    assert snapshot.source is Source.STREAM


def test_one_sided_quote_has_no_mid_or_spread() -> None:
    """A side quoted at zero gives no mid and no spread rather than a misleading number."""
    snapshot = QuoteSnapshot.from_quote(quote(0.0, 187.35), received_at=1, received_wall=1, now=1)
    assert snapshot.mid is None
    assert snapshot.spread is None
    assert snapshot.ask == Decimal("187.35")


def test_snapshots_are_immutable() -> None:
    """A snapshot cannot be changed after it was read."""
    snapshot = QuoteSnapshot.from_quote(quote(1.5, 1.6), received_at=1, received_wall=1, now=1)
    with pytest.raises(AttributeError):
        snapshot.bid = Decimal(0)  # type: ignore[misc]


def test_trade_snapshot_is_exact() -> None:
    """Trade prices and sizes are exact Decimals too."""
    trade = Trade(symbol="AAPL", timestamp=NOW, price=187.33, size=100.0, id=7, exchange="V")
    snapshot = TradeSnapshot.from_trade(trade, received_at=1, received_wall=1, now=3)
    assert (snapshot.price, snapshot.size, snapshot.trade_id) == (Decimal("187.33"), 100, 7)
    assert snapshot.age == 2


def test_fractional_sizes_stay_exact_decimals() -> None:
    """A fractional size (a crypto quantity) is its shortest decimal form, not a float expansion."""
    snapshot = QuoteSnapshot.from_quote(
        quote(64000.5, 64001.25, bid_size=0.0042, ask_size=1.5),
        received_at=1,
        received_wall=1,
        now=1,
    )
    assert (snapshot.bid_size, snapshot.ask_size) == (Decimal("0.0042"), Decimal("1.5"))
    trade = Trade(symbol="BTC/USD", timestamp=NOW, price=64000.75, size=0.1, id=None, exchange=None)
    assert TradeSnapshot.from_trade(trade, received_at=1, received_wall=1, now=1).size == Decimal(
        "0.1"
    )


def test_integer_sizes_from_the_wire_are_exact() -> None:
    """Shares and contracts arrive as integers (stocks, options) and stay whole Decimals."""
    option = quote(1.25, 1.3, symbol="AAPL240119C00190000", bid_size=12, ask_size=2**40)
    snapshot = QuoteSnapshot.from_quote(option, received_at=1, received_wall=1, now=1)
    assert (snapshot.bid_size, snapshot.ask_size) == (Decimal(12), Decimal(2**40))
    assert str(snapshot.bid_size) == "12"
    assert snapshot.symbol == "AAPL240119C00190000"
