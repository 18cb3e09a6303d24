"""The messages the simulator sends, market by market, as Alpaca documents their schemas. Pure.

Each builder takes a symbol's :class:`Walk` and a :class:`Context` (symbol, feed, time, timestamp
form, snapshot flag) and returns one wire dict without ``_seq``. Stock quotes and trades carry
exchanges, condition lists and tapes; crypto ones no exchanges, fractional sizes and the taker
side; option ones one condition code; crypto order books come as a snapshot with ``r`` set, then
one changed level at a time (size 0: the level is gone); news articles name their symbol.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from streamfsm.config import Feed
from streamfsm.markets import Market
from streamfsm.sim.wire import Stamp

__all__ = ["BUILDERS", "CENT", "Context", "Walk", "cents"]

#: IEX is exchange code "V"; the SIP feeds draw from the lit exchanges below.
IEX_EXCHANGE: Final = "V"
SIP_EXCHANGES: Final = ("K", "N", "P", "Q", "V", "Z")
#: Tape A: NYSE-listed, B: NYSE Arca and regional, C: Nasdaq-listed.
TAPES: Final = ("A", "B", "C")
#: Starting mid prices lie in this range of dollars.
START_PRICE_RANGE: Final = (20.0, 500.0)
#: Per-step volatility of the log mid price: about 5 basis points, visible but calm.
STEP_VOLATILITY: Final = 0.0005
#: Half-spread relative to the mid (1 basis point), and never below one cent overall.
HALF_SPREAD: Final = 0.0001
CENT: Final = 0.01
#: Quote sizes in round lots, trade sizes in shares, bar volumes in shares.
QUOTE_SIZE_RANGE: Final = (1, 20)
TRADE_SIZE_RANGE: Final = (1, 500)
BAR_VOLUME_RANGE: Final = (100, 50_000)
BAR_TRADES_RANGE: Final = (1, 400)
NS_PER_MINUTE: Final = 60_000_000_000
#: Trade ids start at a random point below this, so feeds with different seeds differ.
TRADE_ID_START_LIMIT: Final = 1_000_000
#: Prices are in cents; the volume-weighted average keeps sub-cent precision like Alpaca's.
PRICE_DECIMALS: Final = 2
VWAP_DECIMALS: Final = 4
#: The regular-trade condition "@" and the regular-quote condition "R".
TRADE_CONDITIONS: Final = ("@",)
QUOTE_CONDITIONS: Final = ("R",)
#: Option exchanges (Cboe, ISE, MIAX, NYSE American, Nasdaq PHLX) and one-letter conditions.
OPTION_EXCHANGES: Final = ("C", "I", "M", "A", "X")
OPTION_TRADE_CONDITION: Final = "I"
OPTION_QUOTE_CONDITION: Final = "A"
#: Contracts per option quote side and trade.
OPTION_SIZE_RANGE: Final = (1, 100)
#: Crypto quantities: fractional, eight decimals, up to a few coins.
CRYPTO_SIZE_RANGE: Final = (0.0001, 3.0)
CRYPTO_SIZE_DECIMALS: Final = 8
TAKER_SIDES: Final = ("B", "S")
#: Levels per side of an order book snapshot; an update changes one level.
BOOK_DEPTH: Final = 5
#: One update in this many removes a level (size 0) instead of resizing it.
BOOK_REMOVE_ONE_IN: Final = 4
#: A stock status and LULD band: trading, band 5% around the mid.
STATUS_TRADING: Final = ("T", "Trading")
LULD_BAND: Final = 0.05


class Context(NamedTuple):
    """What one message is about besides the walk."""

    symbol: str
    feed: Feed
    now_ns: int
    stamp: Stamp
    snapshot: bool = False


def cents(value: float) -> float:
    return round(value, PRICE_DECIMALS)


class Walk:
    """The state of one symbol's random walk; its methods advance it."""

    __slots__ = (
        "bar_high",
        "bar_low",
        "bar_open",
        "day_high",
        "day_low",
        "day_open",
        "mid",
        "rng",
        "seq",
        "tape",
        "trade_id",
    )

    def __init__(self, seed: int, symbol: str) -> None:
        self.rng = random.Random(f"{seed}/{symbol}")
        self.mid = self.rng.uniform(*START_PRICE_RANGE)
        self.tape = self.rng.choice(TAPES)
        self.trade_id = self.rng.randrange(1, TRADE_ID_START_LIMIT)
        self.bar_open = self.bar_high = self.bar_low = self.mid
        self.day_open = self.day_high = self.day_low = self.mid
        self.seq: dict[str, int] = {}

    def step(self) -> None:
        self.mid *= math.exp(self.rng.gauss(0.0, STEP_VOLATILITY))
        self.bar_high = max(self.bar_high, self.mid)
        self.bar_low = min(self.bar_low, self.mid)
        self.day_high = max(self.day_high, self.mid)
        self.day_low = min(self.day_low, self.mid)

    def quote_prices(self) -> tuple[float, float]:
        half = max(self.mid * HALF_SPREAD, CENT / 2)
        bid = cents(self.mid - half)
        ask = max(cents(self.mid + half), cents(bid + CENT))
        return bid, ask

    def next_seq(self, channel: str) -> int:
        value = self.seq.get(channel, 0) + 1
        self.seq[channel] = value
        return value


def _bar(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    open_, close = cents(walk.bar_open), cents(walk.mid)
    high = max(cents(walk.bar_high), open_, close)
    low = min(cents(walk.bar_low), open_, close)
    message = {
        "T": "b",
        "S": ctx.symbol,
        "o": open_,
        "h": high,
        "l": low,
        "c": close,
        "v": rng.randint(*BAR_VOLUME_RANGE),
        "n": rng.randint(*BAR_TRADES_RANGE),
        "vw": round(rng.uniform(low, high), VWAP_DECIMALS),
        "t": ctx.stamp(ctx.now_ns - ctx.now_ns % NS_PER_MINUTE),
    }
    walk.bar_open = walk.bar_high = walk.bar_low = walk.mid
    return message


def _exchange(rng: random.Random, feed: Feed) -> str:
    return IEX_EXCHANGE if feed is Feed.IEX else rng.choice(SIP_EXCHANGES)


def _stock_quote(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    bid, ask = walk.quote_prices()
    return {
        "T": "q",
        "S": ctx.symbol,
        "bx": _exchange(rng, ctx.feed),
        "bp": bid,
        "bs": rng.randint(*QUOTE_SIZE_RANGE),
        "ax": _exchange(rng, ctx.feed),
        "ap": ask,
        "as": rng.randint(*QUOTE_SIZE_RANGE),
        "c": list(QUOTE_CONDITIONS),
        "z": walk.tape,
        "t": ctx.stamp(ctx.now_ns),
    }


def _stock_trade(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    bid, ask = walk.quote_prices()
    walk.trade_id += 1
    return {
        "T": "t",
        "S": ctx.symbol,
        "i": walk.trade_id,
        "x": _exchange(rng, ctx.feed),
        "p": cents(rng.uniform(bid, ask)),
        "s": rng.randint(*TRADE_SIZE_RANGE),
        "c": list(TRADE_CONDITIONS),
        "z": walk.tape,
        "t": ctx.stamp(ctx.now_ns),
    }


def _day_bar(walk: Walk, ctx: Context) -> dict[str, Any]:
    """A daily bar: the day so far (the walk's whole life in the simulator)."""
    message = _bar(walk, ctx)
    open_, close = cents(walk.day_open), message["c"]
    message.update(
        T="d",
        o=open_,
        h=max(cents(walk.day_high), open_, close),
        l=min(cents(walk.day_low), open_, close),
    )
    return message


def _updated_bar(walk: Walk, ctx: Context) -> dict[str, Any]:
    message = _bar(walk, ctx)
    message["T"] = "u"
    return message


def _status(walk: Walk, ctx: Context) -> dict[str, Any]:
    code, text = STATUS_TRADING
    return {
        "T": "s",
        "S": ctx.symbol,
        "sc": code,
        "sm": text,
        "rc": "",
        "rm": "",
        "z": walk.tape,
        "t": ctx.stamp(ctx.now_ns),
    }


def _luld(walk: Walk, ctx: Context) -> dict[str, Any]:
    return {
        "T": "l",
        "S": ctx.symbol,
        "u": cents(walk.mid * (1 + LULD_BAND)),
        "d": cents(walk.mid * (1 - LULD_BAND)),
        "i": "B",
        "z": walk.tape,
        "t": ctx.stamp(ctx.now_ns),
    }


def _crypto_size(rng: random.Random) -> float:
    return round(rng.uniform(*CRYPTO_SIZE_RANGE), CRYPTO_SIZE_DECIMALS)


def _crypto_quote(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    bid, ask = walk.quote_prices()
    return {
        "T": "q",
        "S": ctx.symbol,
        "bp": bid,
        "bs": _crypto_size(rng),
        "ap": ask,
        "as": _crypto_size(rng),
        "t": ctx.stamp(ctx.now_ns),
    }


def _crypto_trade(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    bid, ask = walk.quote_prices()
    walk.trade_id += 1
    return {
        "T": "t",
        "S": ctx.symbol,
        "p": cents(rng.uniform(bid, ask)),
        "s": _crypto_size(rng),
        "t": ctx.stamp(ctx.now_ns),
        "i": walk.trade_id,
        "tks": rng.choice(TAKER_SIDES),
    }


def _orderbook(walk: Walk, ctx: Context) -> dict[str, Any]:
    """A snapshot (``r`` true, ``BOOK_DEPTH`` levels a side) or one changed level."""
    rng = walk.rng
    bid, ask = walk.quote_prices()
    depth = BOOK_DEPTH if ctx.snapshot else 1
    sides: dict[str, list[dict[str, float]]] = {"b": [], "a": []}
    for side, best, direction in (("b", bid, -1), ("a", ask, 1)):
        for level in range(depth):
            offset = level if ctx.snapshot else rng.randrange(BOOK_DEPTH)
            size = _crypto_size(rng)
            if not ctx.snapshot and rng.randrange(BOOK_REMOVE_ONE_IN) == 0:
                size = 0.0
            sides[side].append({"p": cents(best + direction * offset * CENT), "s": size})
    message: dict[str, Any] = {"T": "o", "S": ctx.symbol, "t": ctx.stamp(ctx.now_ns), **sides}
    if ctx.snapshot:
        message["r"] = True
    return message


def _option_quote(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    bid, ask = walk.quote_prices()
    return {
        "T": "q",
        "S": ctx.symbol,
        "t": ctx.stamp(ctx.now_ns),
        "bx": rng.choice(OPTION_EXCHANGES),
        "bp": bid,
        "bs": rng.randint(*OPTION_SIZE_RANGE),
        "ax": rng.choice(OPTION_EXCHANGES),
        "ap": ask,
        "as": rng.randint(*OPTION_SIZE_RANGE),
        "c": OPTION_QUOTE_CONDITION,
    }


def _option_trade(walk: Walk, ctx: Context) -> dict[str, Any]:
    rng = walk.rng
    bid, ask = walk.quote_prices()
    return {
        "T": "t",
        "S": ctx.symbol,
        "t": ctx.stamp(ctx.now_ns),
        "p": cents(rng.uniform(bid, ask)),
        "s": rng.randint(*OPTION_SIZE_RANGE),
        "x": rng.choice(OPTION_EXCHANGES),
        "c": OPTION_TRADE_CONDITION,
    }


def _news(walk: Walk, ctx: Context) -> dict[str, Any]:
    walk.trade_id += 1
    when = ctx.stamp(ctx.now_ns)
    return {
        "T": "n",
        "id": walk.trade_id,
        "headline": f"{ctx.symbol} moves to {cents(walk.mid)}",
        "summary": f"Simulated news about {ctx.symbol}.",
        "author": "streamfsm simulator",
        "created_at": when,
        "updated_at": when,
        "url": f"https://news.invalid/{walk.trade_id}",
        "content": "",
        "symbols": [ctx.symbol],
        "source": "simulator",
    }


_Builder = Callable[[Walk, Context], dict[str, Any]]
#: (market, wire channel) -> message builder; market None: the same on every market.
BUILDERS: Final[dict[tuple[Market | None, str], _Builder]] = {
    (Market.STOCKS, "quotes"): _stock_quote,
    (Market.STOCKS, "trades"): _stock_trade,
    (Market.CRYPTO, "quotes"): _crypto_quote,
    (Market.CRYPTO, "trades"): _crypto_trade,
    (Market.OPTIONS, "quotes"): _option_quote,
    (Market.OPTIONS, "trades"): _option_trade,
    (None, "bars"): _bar,
    (None, "updatedBars"): _updated_bar,
    (None, "dailyBars"): _day_bar,
    (None, "statuses"): _status,
    (None, "lulds"): _luld,
    (None, "orderbooks"): _orderbook,
    (None, "news"): _news,
}
