"""The markets table and StreamConfig(market=...): endpoints, feeds, encodings, symbols."""

from __future__ import annotations

import pytest

from streamfsm import StreamConfig
from streamfsm._core.subscriptions import Subscription, check_market
from streamfsm.errors import ConfigurationError, InvalidSymbolError
from streamfsm.markets import MARKETS, Feed, Market, market_of_feed

ENDPOINTS = [
    ("stocks", "iex", "wss://stream.data.alpaca.markets/v2/iex"),
    ("stocks", "delayed_sip", "wss://stream.data.alpaca.markets/v2/delayed_sip"),
    ("stocks", "boats", "wss://stream.data.alpaca.markets/v1beta1/boats"),
    ("stocks", "overnight", "wss://stream.data.alpaca.markets/v1beta1/overnight"),
    ("crypto", "us", "wss://stream.data.alpaca.markets/v1beta3/crypto/us"),
    ("crypto", "eu-1", "wss://stream.data.alpaca.markets/v1beta3/crypto/eu-1"),
    ("options", "opra", "wss://stream.data.alpaca.markets/v1beta1/opra"),
    ("news", "news", "wss://stream.data.alpaca.markets/v1beta1/news"),
]


@pytest.mark.parametrize(("market", "feed", "url"), ENDPOINTS)
def test_each_market_and_feed_has_its_documented_endpoint(market: str, feed: str, url: str) -> None:
    """The endpoint follows Alpaca's documented path for the market and feed."""
    assert StreamConfig(market=market, feed=feed).endpoint == url


@pytest.mark.parametrize(
    ("market", "feed"),
    [("stocks", "iex"), ("crypto", "us"), ("options", "indicative"), ("news", "news")],
)
def test_the_feed_defaults_to_the_markets_first(market: str, feed: str) -> None:
    """Without a feed, each market gets alpaca-py's default feed."""
    assert StreamConfig(market=market).feed == Feed(feed)


@pytest.mark.parametrize(
    ("market", "feed"), [("crypto", "iex"), ("stocks", "us"), ("options", "sip"), ("news", "opra")]
)
def test_a_feed_of_another_market_is_refused_at_construction(market: str, feed: str) -> None:
    """A bad market and feed pair is a ConfigurationError naming the feed."""
    with pytest.raises(ConfigurationError, match="feed"):
        StreamConfig(market=market, feed=feed)


def test_options_speak_msgpack_only_and_unknown_markets_are_refused() -> None:
    """JSON on the option stream and an unknown market are configuration errors."""
    with pytest.raises(ConfigurationError, match="encoding"):
        StreamConfig(market="options", encoding="json")
    with pytest.raises(ConfigurationError, match="market"):
        StreamConfig(market="forex")
    assert StreamConfig(market="crypto", encoding="json").encoding.value == "json"


def test_every_feed_belongs_to_exactly_one_market() -> None:
    """The table lists each feed once, so a feed names its market."""
    listed = [feed for spec in MARKETS.values() for feed in spec.feeds]
    assert sorted(listed) == sorted(Feed)
    assert market_of_feed(Feed.US_1) is Market.CRYPTO


@pytest.mark.parametrize(
    ("market", "subscription"),
    [
        ("crypto", Subscription(quotes={"BTC/USD"}, orderbooks={"*"})),
        ("options", Subscription(quotes={"AAPL240315C00172500"}, trades={"*"})),
        ("news", Subscription(news={"*", "AAPL"})),
        ("stocks", Subscription(quotes={"BRK.B"}, lulds={"*"}, statuses={"AAPL"})),
    ],
)
def test_valid_subscriptions_pass_the_market_check(market: str, subscription: Subscription) -> None:
    """Pairs on crypto, OCC symbols on options, tickers on stocks and news pass."""
    check_market(subscription, market)


@pytest.mark.parametrize(
    ("market", "subscription"),
    [
        ("crypto", Subscription(quotes={"BTCUSD"})),
        ("crypto", Subscription(lulds={"BTC/USD"})),
        ("options", Subscription(quotes={"*"})),
        ("options", Subscription(trades={"AAPL"})),
        ("options", Subscription(bars={"AAPL240315C00172500"})),
        ("stocks", Subscription(orderbooks={"AAPL"})),
        ("news", Subscription(quotes={"AAPL"})),
    ],
)
def test_invalid_subscriptions_fail_the_market_check(
    market: str, subscription: Subscription
) -> None:
    """Wrong grammar, a channel the market lacks, or ``*`` for option quotes: refused."""
    with pytest.raises(InvalidSymbolError):
        check_market(subscription, market)
