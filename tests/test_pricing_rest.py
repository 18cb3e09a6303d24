"""The REST refresher over loopback HTTP: on demand, on its own after a drop, URL checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pricing_support import (
    CREDENTIALS,
    FAST,
    WAIT,
    RestFake,
    Watch,
    fresh,
    loopback_only,
    make,
    simulator,
    source_of,
)

from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.pricing import AlpacaLatestQuotes, PricingService, QuoteSnapshot, Source, StaleReason
from streamfsm.sim import DEMO_KEY_ID, SimulatorThread


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes and trades quickly."""
    with simulator() as running:
        yield running


@pytest.fixture
def rest(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestFake]:
    """The REST fake on 127.0.0.1, with proxies disabled."""
    loopback_only(monkeypatch)
    fake = RestFake()
    yield fake
    fake.close()


def test_rest_url_never_sends_the_key_in_clear_text() -> None:
    """Only https:// or a loopback http:// URL is accepted for the REST refresher."""
    with pytest.raises(ConfigurationError, match="url_override"):
        AlpacaLatestQuotes(CREDENTIALS, url_override="http://example.com")
    with pytest.raises(ConfigurationError, match="feed"):
        AlpacaLatestQuotes(CREDENTIALS, feed="test")


def test_refresh_now_serves_rest_quotes_during_an_outage(
    sim: SimulatorThread, rest: RestFake
) -> None:
    """During an outage a REST quote replaces the stale stream quote, exactly priced."""
    watch = Watch()
    source = AlpacaLatestQuotes(CREDENTIALS, url_override=rest.url)
    service = make(sim, watch, refresher=source, trades=False)
    with pytest.raises(LocalProtocolError):
        PricingService(CREDENTIALS, FAST).refresh_now()
    service.track(["AAPL", "MSFT"])
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL", "MSFT")))
        assert service.refresh_now() == {}  # nothing is stale
        sim.refuse()
        sim.drop()
        assert watch.wait(lambda: watch.losses() == 1)
        stored = service.refresh_now(["AAPL"])
        assert set(stored) == {"AAPL"}
        snapshot = service.quote("AAPL")
        assert snapshot is not None
        assert snapshot.source is Source.REST
        assert not snapshot.stale
        assert (snapshot.bid, snapshot.ask, snapshot.mid) == (
            Decimal("123.45"),
            Decimal("123.47"),
            Decimal("123.46"),
        )
        other = service.quote("MSFT")
        assert other is not None
        assert other.source is Source.STREAM
        assert other.stale_reason is StaleReason.DISCONNECTED
        # The refresher thread asks for every stale symbol on its own; ours asked for AAPL.
        assert (
            "/v2/stocks/quotes/latest",
            {"symbols": ["AAPL"], "feed": ["iex"]},
            DEMO_KEY_ID,
        ) in (rest.requests)
        sim.accept()
        assert watch.wait(lambda: source_of(service, "AAPL") is Source.STREAM)
    finally:
        service.stop()


def test_refresher_fills_stale_symbols_after_a_drop(sim: SimulatorThread, rest: RestFake) -> None:
    """The refresher thread wakes on the outage by itself and fills the stale symbols."""
    watch = Watch()
    refreshed: list[dict[str, QuoteSnapshot]] = []
    done = threading.Event()

    def on_refresh(snapshots: Any) -> None:
        refreshed.append(dict(snapshots))
        done.set()

    service = make(
        sim,
        watch,
        refresher=AlpacaLatestQuotes(CREDENTIALS, url_override=rest.url),
        on_refresh=on_refresh,
    )
    service.track(["AAPL", "MSFT"])
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL", "MSFT")))
        sim.refuse()
        sim.drop()
        assert done.wait(WAIT)
        assert set(refreshed[0]) == {"AAPL"}  # the fake knows AAPL only
        snapshot = service.quote("AAPL")
        assert snapshot is not None
        assert snapshot.source is Source.REST
        assert snapshot.bid == Decimal("123.45")
        assert service.statistics().refreshes >= 1
        assert {tuple(q["symbols"]) for _p, q, _k in rest.requests} >= {("AAPL,MSFT",)}
    finally:
        sim.accept()
        service.stop()
