"""The price store: what it keeps, and when a snapshot is stale and why (unit, no I/O)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from pricing_support import NOW, quote

from streamfsm.models import Trade
from streamfsm.pricing import Source, StaleReason
from streamfsm.pricing.store import PriceStore


class Link:
    """Whether the fake stream is subscribed."""

    def __init__(self) -> None:
        self.up = True

    def __call__(self) -> bool:
        return self.up


def store(max_age: float | None = None) -> tuple[PriceStore, Link]:
    link = Link()
    return PriceStore(link, max_age, clock=lambda: 100.0, wall=lambda: 1100.0), link


def test_a_fresh_quote_is_served_from_the_stream() -> None:
    """A quote that arrived on the current session is fresh, with its age at the read."""
    prices, _link = store()
    assert prices.put_quote(quote(1.5, 1.6), arrival=10.0)
    snapshot = prices.quote("AAPL", since=0.0, now=10.5, rest=None)
    assert snapshot is not None
    assert snapshot.stale_reason is None
    assert snapshot.source is Source.STREAM
    assert snapshot.age == pytest.approx(0.5)


def test_disconnected_comes_before_gap_and_age() -> None:
    """While not subscribed every quote is DISCONNECTED, whatever else holds."""
    prices, link = store(max_age=1.0)
    prices.put_quote(quote(1.5, 1.6), arrival=10.0)
    prices.session_lost(11.0)
    link.up = False
    snapshot = prices.quote("AAPL", since=0.0, now=50.0, rest=None)
    assert snapshot is not None
    assert snapshot.stale_reason is StaleReason.DISCONNECTED


def test_a_quote_from_before_the_loss_is_a_gap_until_a_newer_one_arrives() -> None:
    """After the reconnect, a quote that arrived before the loss is GAP; the next one is fresh."""
    prices, _link = store()
    prices.put_quote(quote(1.5, 1.6), arrival=10.0)
    prices.session_lost(11.0)
    gap = prices.quote("AAPL", since=0.0, now=12.0, rest=None)
    assert gap is not None
    assert gap.stale_reason is StaleReason.GAP
    prices.put_quote(quote(1.7, 1.8), arrival=12.5)
    fresh = prices.quote("AAPL", since=0.0, now=13.0, rest=None)
    assert fresh is not None
    assert fresh.stale_reason is None
    assert fresh.bid == Decimal("1.7")


def test_a_quote_delivered_after_the_loss_but_received_before_it_stays_a_gap() -> None:
    """Dating by arrival: a backlog from the old session delivered late never clears the gap."""
    prices, _link = store()
    prices.session_lost(11.0)
    prices.put_quote(quote(1.5, 1.6), arrival=10.9)  # queued before the loss
    snapshot = prices.quote("AAPL", since=0.0, now=12.0, rest=None)
    assert snapshot is not None
    assert snapshot.stale_reason is StaleReason.GAP


def test_a_quote_older_than_max_age_is_aged() -> None:
    """With max_age, a quiet symbol turns AGE-stale while the stream is up."""
    prices, _link = store(max_age=2.0)
    prices.put_quote(quote(1.5, 1.6), arrival=10.0)
    young = prices.quote("AAPL", since=0.0, now=12.0, rest=None)
    old = prices.quote("AAPL", since=0.0, now=12.5, rest=None)
    assert young is not None
    assert young.stale_reason is None
    assert old is not None
    assert old.stale_reason is StaleReason.AGE


def test_data_from_before_tracking_began_is_never_served() -> None:
    """A quote that arrived before the symbol was (re)tracked reads as None."""
    prices, _link = store()
    prices.put_quote(quote(1.5, 1.6), arrival=10.0)
    assert prices.quote("AAPL", since=10.5, now=11.0, rest=None) is None
    trade = Trade(symbol="AAPL", timestamp=NOW, price=1.55, size=1.0, id=1, exchange="V")
    prices.put_trade(trade, arrival=10.0)
    assert prices.last_trade("AAPL", since=10.5, now=11.0) is None
    snapshot = prices.last_trade("AAPL", since=0.0, now=11.0)
    assert snapshot is not None
    assert snapshot.age == pytest.approx(1.0)


def test_a_rest_quote_fetched_after_the_loss_replaces_a_stale_stream_quote() -> None:
    """During an outage a REST quote newer than the stream's is served, with its own age."""
    prices, link = store(max_age=5.0)
    prices.put_quote(quote(1.5, 1.6), arrival=10.0)
    prices.session_lost(11.0)
    link.up = False
    later = quote(2.5, 2.6, timestamp=NOW + timedelta(seconds=3))
    snapshot = prices.quote("AAPL", since=0.0, now=13.0, rest=(later, 12.0))
    assert snapshot is not None
    assert snapshot.source is Source.REST
    assert snapshot.stale_reason is None
    assert snapshot.age == pytest.approx(1.0)


def test_a_rest_quote_is_not_served_when_it_is_older_or_from_before_the_loss() -> None:
    """A REST quote fetched before the outage, or older than the stream's, is ignored."""
    prices, link = store()
    prices.put_quote(quote(1.5, 1.6, timestamp=NOW + timedelta(seconds=5)), arrival=10.0)
    link.up = False
    prices.session_lost(11.0)
    early = prices.quote("AAPL", since=0.0, now=13.0, rest=(quote(2.5, 2.6), 10.5))
    older = prices.quote("AAPL", since=0.0, now=13.0, rest=(quote(2.5, 2.6), 12.0))
    for snapshot in (early, older):
        assert snapshot is not None
        assert snapshot.source is Source.STREAM
        assert snapshot.stale_reason is StaleReason.DISCONNECTED


def test_a_price_that_is_not_a_finite_number_is_refused_and_counted() -> None:
    """NaN, infinite and negative prices are never stored; each one is counted."""
    prices, _link = store()
    for bid in (math.nan, math.inf, -1.0):
        assert not prices.put_quote(quote(bid, 2.0), arrival=1.0)
    bad = Trade(symbol="AAPL", timestamp=NOW, price=math.nan, size=1.0, id=1, exchange="V")
    assert not prices.put_trade(bad, arrival=1.0)
    assert prices.rejected == 4
    assert prices.quote("AAPL", since=0.0, now=2.0, rest=None) is None


def test_forget_drops_everything_stored_for_a_symbol() -> None:
    """After forget() the symbol reads None, even if it is read again with the same entry."""
    prices, _link = store()
    prices.put_quote(quote(1.5, 1.6), arrival=1.0)
    assert prices.quote("AAPL", since=0.0, now=2.0, rest=None) is not None
    prices.forget("AAPL")
    assert prices.quote("AAPL", since=0.0, now=2.0, rest=None) is None


def test_the_decimal_conversion_is_shared_by_reads_of_one_entry() -> None:
    """Two reads of one stored quote share its converted prices; a new quote converts anew."""
    prices, _link = store()
    prices.put_quote(quote(1.5, 1.6), arrival=1.0)
    first = prices.quote("AAPL", since=0.0, now=2.0, rest=None)
    second = prices.quote("AAPL", since=0.0, now=3.0, rest=None)
    assert first is not None
    assert second is not None
    assert first.bid is second.bid
    assert (first.age, second.age) == (1.0, 2.0)
    prices.put_quote(quote(1.5, 1.6), arrival=2.5)
    third = prices.quote("AAPL", since=0.0, now=3.0, rest=None)
    assert third is not None
    assert third.bid is not first.bid
