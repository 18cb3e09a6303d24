"""Pricing per market against the simulator: crypto pairs with fractional sizes, option quotes.

The simulator serves every market's stream; the REST refresher asks alpaca-py's crypto and
option clients, which talk to the loopback REST fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs
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
)

from streamfsm import StreamConfig
from streamfsm.errors import ConfigurationError, InvalidSymbolError
from streamfsm.models import decimal_price
from streamfsm.pricing import AlpacaLatestQuotes, PricingService, Source, StaleReason
from streamfsm.sim import SimulatorThread

PAIRS = ("BTC/USD", "ETH/USD")
#: Two OCC option symbols: underlying, expiry (YYMMDD), call or put, strike times 1000.
CONTRACTS = ("AAPL240315C00172500", "SPY240315P00500000")
CRYPTO = attrs.evolve(FAST, market="crypto", feed="us")
OPTIONS = attrs.evolve(FAST, market="options", feed="indicative")


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming every market quickly."""
    with simulator() as running:
        yield running


@pytest.fixture
def rest(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestFake]:
    """The REST fake on 127.0.0.1, with proxies disabled, pricing the two pairs and contracts."""
    loopback_only(monkeypatch)
    fake = RestFake()
    fake.prices = {"BTC/USD": (64000.5, 64001.25), CONTRACTS[0]: (1.25, 1.3)}
    yield fake
    fake.close()


def test_crypto_pairs_are_priced_with_exact_fractional_sizes(sim: SimulatorThread) -> None:
    """Crypto quotes and trades stream; fractional sizes are the Decimals of their wire form."""
    watch = Watch()
    service = make(sim, watch, config=CRYPTO, url_feed="us")
    service.track(PAIRS)
    service.start()
    try:
        assert watch.wait(fresh(service, PAIRS))
        assert watch.wait(lambda: all(service.last_trade(pair) is not None for pair in PAIRS))
        stored = service._store.quotes["BTC/USD"][0]  # the fast model as it came off the wire
        snapshot = service.quote("BTC/USD")
        assert snapshot is not None
        assert snapshot.bid_size == decimal_price(stored.bid_size)
        assert snapshot.mid is not None
        assert snapshot.mid * 2 == snapshot.bid + snapshot.ask
        sizes = [s.bid_size for s in service.quotes().values()]
        assert any(size != size.to_integral_value() for size in sizes)  # fractional on the wire
    finally:
        service.stop()


def test_option_quotes_are_priced_with_whole_contract_sizes(sim: SimulatorThread) -> None:
    """Option quotes on OCC symbols stream; contract sizes are whole Decimals."""
    watch = Watch()
    service = make(sim, watch, config=OPTIONS, url_feed="indicative")
    service.track(CONTRACTS)
    service.start()
    try:
        assert watch.wait(fresh(service, CONTRACTS))
        for contract in CONTRACTS:
            snapshot = service.quote(contract)
            assert snapshot is not None
            assert snapshot.bid_size == snapshot.bid_size.to_integral_value()
            assert str(snapshot.ask_size) == str(int(snapshot.ask_size))
    finally:
        service.stop()


def test_a_crypto_quote_from_before_a_drop_is_a_gap_until_the_pair_quotes_again(
    sim: SimulatorThread,
) -> None:
    """Staleness works the same on crypto: disconnected, gap after the reconnect, then fresh."""
    watch = Watch()
    service = make(sim, watch, config=CRYPTO, url_feed="us", trades=False)
    service.track("BTC/USD")
    service.start()
    try:
        assert watch.wait(fresh(service, ("BTC/USD",)))
        sim.set_rate(0)
        sim.drop()
        assert watch.wait(lambda: watch.losses() == 1)
        assert service.controller.wait_synced(WAIT)
        gap = service.quote("BTC/USD")
        assert gap is not None
        assert gap.stale_reason is StaleReason.GAP
        sim.set_rate(400)
        assert watch.wait(fresh(service, ("BTC/USD",)))
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("config", "symbol"),
    [(CRYPTO, "AAPL"), (CRYPTO, "BTCUSD"), (OPTIONS, "AAPL"), (OPTIONS, "BTC/USD")],
    ids=["crypto-ticker", "crypto-no-slash", "options-ticker", "options-pair"],
)
def test_a_symbol_of_another_market_is_refused_and_changes_nothing(
    config: StreamConfig, symbol: str
) -> None:
    """track() holds symbols to the market's grammar before anything changes."""
    service = PricingService(CREDENTIALS, config)
    with pytest.raises(InvalidSymbolError):
        service.track(symbol)
    assert service.tracked() == {}
    assert service.controller.desired().quotes == frozenset()


def test_a_market_without_quotes_cannot_be_priced() -> None:
    """A news stream has nothing to price: the configuration is refused, naming config."""
    with pytest.raises(ConfigurationError, match="config"):
        PricingService(CREDENTIALS, StreamConfig(market="news"))


@attrs.frozen
class RestCase:
    """One market's stream, a symbol of it, and the REST request the refresher must make."""

    config: StreamConfig
    url_feed: str
    symbol: str
    path: str
    query: dict[str, list[str]]


REST_CASES = {
    "crypto": RestCase(
        config=CRYPTO,
        url_feed="us",
        symbol="BTC/USD",
        path="/v1beta3/crypto/us/latest/quotes",
        query={"symbols": ["BTC/USD"]},
    ),
    "options": RestCase(
        config=OPTIONS,
        url_feed="indicative",
        symbol=CONTRACTS[0],
        path="/v1beta1/options/quotes/latest",
        query={"symbols": [CONTRACTS[0]], "feed": ["indicative"]},
    ),
}


@pytest.mark.parametrize("case", REST_CASES.values(), ids=REST_CASES.keys())
def test_the_refresher_asks_the_markets_own_rest_endpoint(
    sim: SimulatorThread, rest: RestFake, case: RestCase
) -> None:
    """During an outage, refresh_now() asks the market's latest-quotes endpoint and serves it."""
    config, url_feed, symbol = case.config, case.url_feed, case.symbol
    watch = Watch()
    source = AlpacaLatestQuotes(CREDENTIALS, feed=config.feed, url_override=rest.url)
    service = make(sim, watch, config=config, url_feed=url_feed, refresher=source, trades=False)
    service.track(symbol)
    service.start()
    try:
        assert watch.wait(fresh(service, (symbol,)))
        sim.refuse()
        sim.drop()
        assert watch.wait(lambda: watch.losses() == 1)
        assert set(service.refresh_now([symbol])) == {symbol}
        snapshot = service.quote(symbol)
        assert snapshot is not None
        assert snapshot.source is Source.REST
        assert snapshot.bid == Decimal(str(rest.prices[symbol][0]))
        assert any(p == case.path and q == case.query for p, q, _key in rest.requests)
    finally:
        sim.accept()
        service.stop()


def test_the_rest_source_refuses_a_feed_without_a_latest_quote_endpoint() -> None:
    """News and the test feed have no latest quotes: the source says which feeds it serves."""
    for feed in ("news", "test", "nope"):
        with pytest.raises(ConfigurationError, match="feed"):
            AlpacaLatestQuotes(CREDENTIALS, feed=feed)
