"""Alpaca's four market-data streams: their feeds, endpoints, encodings, channels and limits.

One table, :data:`MARKETS`, holds what Alpaca documents per stream, so the configuration, the
codec, the subscription checks and the simulator all read the same facts:

- stocks: ``/v2/{feed}`` (``/v1beta1/{feed}`` for boats and overnight); feeds iex, sip,
  delayed_sip, test, boats, overnight; msgpack or JSON; trades, quotes, bars, updated_bars,
  daily_bars, statuses, lulds.
- crypto: ``/v1beta3/crypto/{feed}``; feeds (locations) us, us-1, eu-1; msgpack or JSON; trades,
  quotes, bars, updated_bars, daily_bars, orderbooks.
- options: ``/v1beta1/{feed}``; feeds indicative, opra; msgpack only; trades, quotes.
- news: ``/v1beta1/news``; msgpack or JSON; news.

Corrections and cancel errors are not channels of their own: they come with ``trades``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

__all__ = [
    "ALPACA_STREAM_BASE",
    "MARKETS",
    "WILDCARD",
    "WIRE_NAMES",
    "Encoding",
    "Feed",
    "Market",
    "MarketSpec",
    "market_of_feed",
]

#: Alpaca's market-data stream host (alpaca-py's ``BaseURL.MARKET_DATA_STREAM``).
ALPACA_STREAM_BASE: Final = "wss://stream.data.alpaca.markets"
#: "Every symbol", where a market allows it.
WILDCARD: Final = "*"


class Market(enum.StrEnum):
    """The four Alpaca market-data streams (alpaca-py's four ``*DataStream`` classes)."""

    STOCKS = "stocks"
    CRYPTO = "crypto"
    OPTIONS = "options"
    NEWS = "news"


class Feed(enum.StrEnum):
    """Every feed of every market; :data:`MARKETS` says which feed belongs to which market."""

    # stocks
    IEX = "iex"
    SIP = "sip"
    DELAYED_SIP = "delayed_sip"
    TEST = "test"
    BOATS = "boats"
    OVERNIGHT = "overnight"
    # crypto locations: Alpaca's own venue, Kraken US, Kraken EU
    US = "us"
    US_1 = "us-1"
    EU_1 = "eu-1"
    # options
    INDICATIVE = "indicative"
    OPRA = "opra"
    # news
    NEWS = "news"


class Encoding(enum.StrEnum):
    """Frame encoding, chosen by the ``Content-Type`` header of the WebSocket handshake."""

    MSGPACK = "msgpack"
    JSON = "json"


#: streamfsm's channel names (alpaca-py's method names) -> the keys of the wire messages.
WIRE_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "trades": "trades",
        "quotes": "quotes",
        "bars": "bars",
        "updated_bars": "updatedBars",
        "daily_bars": "dailyBars",
        "statuses": "statuses",
        "lulds": "lulds",
        "orderbooks": "orderbooks",
        "news": "news",
    }
)

#: Tickers with class suffixes (BRK.B, BF/B, XYZ-W), at most 21 characters.
_STOCK: Final = re.compile(r"^[A-Z0-9][A-Z0-9./\-]{0,20}$")
#: Crypto pairs: BASE/QUOTE, as BTC/USD or ETH/BTC.
_CRYPTO: Final = re.compile(r"^[A-Z0-9]{1,15}/[A-Z0-9]{1,15}$")
#: OCC option symbols: root (up to six characters), YYMMDD, C or P, strike times 1000 (8 digits).
_OPTION: Final = re.compile(r"^[A-Z0-9]{1,6}\d{6}[CP]\d{8}$")


@attrs.frozen(kw_only=True)
class MarketSpec:
    """What Alpaca documents for one market-data stream.

    Attributes:
        market: the market.
        feeds: its feeds, the default first.
        encodings: the encodings the server speaks; options speak msgpack only (error 412).
        channels: the channels one can subscribe, in the order of the server's ack.
        limited: the channels counted against the plan's symbol limit (405 beyond).
        symbol_limit: the free plan's limit on ``limited`` entries; None when none is documented.
        no_wildcard: channels that refuse ``*`` (options quotes: error 413).
        pattern: the symbol grammar.
        stale_quiet: True when long silences are normal (news), so nothing is judged stale.
    """

    market: Market
    feeds: tuple[Feed, ...]
    encodings: frozenset[Encoding]
    channels: tuple[str, ...]
    limited: tuple[str, ...]
    symbol_limit: int | None
    no_wildcard: frozenset[str]
    pattern: re.Pattern[str]
    stale_quiet: bool = False

    @property
    def default_feed(self) -> Feed:
        """The feed used when none is given (alpaca-py's default)."""
        return self.feeds[0]

    def path(self, feed: Feed) -> str:
        """The URL path of ``feed``'s stream, e.g. ``/v2/iex`` or ``/v1beta3/crypto/us``."""
        if self.market is Market.CRYPTO:
            return f"/v1beta3/crypto/{feed.value}"
        if self.market is Market.STOCKS and feed not in (Feed.BOATS, Feed.OVERNIGHT):
            return f"/v2/{feed.value}"
        return f"/v1beta1/{feed.value}"

    def is_symbol(self, symbol: object) -> bool:
        """True when ``symbol`` follows this market's grammar (``*`` is checked separately)."""
        return isinstance(symbol, str) and self.pattern.match(symbol) is not None


#: The free plan's 30 trade-and-quote subscriptions (stocks on IEX, and crypto).
FREE_PLAN_SYMBOL_LIMIT: Final = 30
#: Option quotes allowed at a time on the indicative (free) plan; Algo Trader Plus has 1000.
OPTION_QUOTE_LIMIT: Final = 200

MARKETS: Final[Mapping[Market, MarketSpec]] = MappingProxyType(
    {
        Market.STOCKS: MarketSpec(
            market=Market.STOCKS,
            feeds=(Feed.IEX, Feed.SIP, Feed.DELAYED_SIP, Feed.TEST, Feed.BOATS, Feed.OVERNIGHT),
            encodings=frozenset(Encoding),
            channels=(
                "trades",
                "quotes",
                "bars",
                "updated_bars",
                "daily_bars",
                "statuses",
                "lulds",
            ),
            limited=("trades", "quotes"),
            symbol_limit=FREE_PLAN_SYMBOL_LIMIT,
            no_wildcard=frozenset(),
            pattern=_STOCK,
        ),
        Market.CRYPTO: MarketSpec(
            market=Market.CRYPTO,
            feeds=(Feed.US, Feed.US_1, Feed.EU_1),
            encodings=frozenset(Encoding),
            channels=("trades", "quotes", "bars", "updated_bars", "daily_bars", "orderbooks"),
            limited=("trades", "quotes"),
            symbol_limit=FREE_PLAN_SYMBOL_LIMIT,
            no_wildcard=frozenset(),
            pattern=_CRYPTO,
        ),
        Market.OPTIONS: MarketSpec(
            market=Market.OPTIONS,
            feeds=(Feed.INDICATIVE, Feed.OPRA),
            encodings=frozenset({Encoding.MSGPACK}),
            channels=("trades", "quotes"),
            limited=("quotes",),
            symbol_limit=OPTION_QUOTE_LIMIT,
            no_wildcard=frozenset({"quotes"}),
            pattern=_OPTION,
        ),
        Market.NEWS: MarketSpec(
            market=Market.NEWS,
            feeds=(Feed.NEWS,),
            encodings=frozenset(Encoding),
            channels=("news",),
            limited=(),
            symbol_limit=None,
            no_wildcard=frozenset(),
            pattern=_STOCK,
            stale_quiet=True,
        ),
    }
)


def market_of_feed(feed: Feed) -> Market:
    """The market ``feed`` belongs to (each feed belongs to exactly one)."""
    for spec in MARKETS.values():
        if feed in spec.feeds:
            return spec.market
    raise AssertionError(f"{feed!r} is in no market")  # every Feed member is listed above
