"""Seeded market data: one random walk per symbol, shared by every connection. Pure.

Each symbol draws from its own ``random.Random`` seeded with ``(seed, symbol)``, so a symbol's
price path does not depend on which other symbols are subscribed. Mid prices follow a geometric
random walk; quotes straddle the mid with a bid strictly below the ask, both rounded to cents;
trades print between bid and ask; minute bars summarise the walk since the previous bar.

Every message carries ``"_seq"``: a counter per (channel, symbol) that keeps rising across all
connections of one simulator, so a client can count what it missed across a reconnect.
"""

from __future__ import annotations

import math
import random
from typing import Any, Final

from streamfsm.config import Feed
from streamfsm.sim.wire import SEQ_KEY, Stamp

__all__ = ["MarketFeed"]

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


def _cents(value: float) -> float:
    return round(value, PRICE_DECIMALS)


class _Walk:
    """The state of one symbol's walk."""

    __slots__ = ("bar_high", "bar_low", "bar_open", "mid", "rng", "seq", "tape", "trade_id")

    def __init__(self, seed: int, symbol: str) -> None:
        self.rng = random.Random(f"{seed}/{symbol}")
        self.mid = self.rng.uniform(*START_PRICE_RANGE)
        self.tape = self.rng.choice(TAPES)
        self.trade_id = self.rng.randrange(1, TRADE_ID_START_LIMIT)
        self.bar_open = self.bar_high = self.bar_low = self.mid
        self.seq: dict[str, int] = {}

    def step(self) -> None:
        self.mid *= math.exp(self.rng.gauss(0.0, STEP_VOLATILITY))
        self.bar_high = max(self.bar_high, self.mid)
        self.bar_low = min(self.bar_low, self.mid)

    def quote_prices(self) -> tuple[float, float]:
        half = max(self.mid * HALF_SPREAD, CENT / 2)
        bid = _cents(self.mid - half)
        ask = max(_cents(self.mid + half), _cents(bid + CENT))
        return bid, ask

    def next_seq(self, channel: str) -> int:
        value = self.seq.get(channel, 0) + 1
        self.seq[channel] = value
        return value


class MarketFeed:
    """Generates quote, trade and minute-bar messages for any symbol.

    Not thread-safe: one simulator's event loop owns it.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._walks: dict[str, _Walk] = {}

    def _walk(self, symbol: str) -> _Walk:
        walk = self._walks.get(symbol)
        if walk is None:
            walk = self._walks[symbol] = _Walk(self._seed, symbol)
        return walk

    def last_seq(self, channel: str, symbol: str) -> int:
        """The ``_seq`` of the last message generated for (channel, symbol); 0 before any."""
        return self._walk(symbol).seq.get(channel, 0)

    def message(
        self, channel: str, symbol: str, feed: Feed, now_ns: int, stamp: Stamp
    ) -> dict[str, Any]:
        """The next message of ``channel`` (``quotes``, ``trades`` or ``bars``) for ``symbol``.

        Args:
            channel: one of the data channels.
            symbol: any valid ticker.
            feed: the feed served; IEX messages carry exchange "V".
            now_ns: the message time, epoch nanoseconds.
            stamp: converts epoch nanoseconds to the wire's timestamp form.

        Raises:
            ValueError: for a channel without data.
        """
        walk = self._walk(symbol)
        walk.step()
        rng = walk.rng
        if channel == "quotes":
            bid, ask = walk.quote_prices()
            return {
                "T": "q",
                "S": symbol,
                "bx": self._exchange(rng, feed),
                "bp": bid,
                "bs": rng.randint(*QUOTE_SIZE_RANGE),
                "ax": self._exchange(rng, feed),
                "ap": ask,
                "as": rng.randint(*QUOTE_SIZE_RANGE),
                "c": list(QUOTE_CONDITIONS),
                "z": walk.tape,
                "t": stamp(now_ns),
                SEQ_KEY: walk.next_seq(channel),
            }
        if channel == "trades":
            bid, ask = walk.quote_prices()
            walk.trade_id += 1
            return {
                "T": "t",
                "S": symbol,
                "i": walk.trade_id,
                "x": self._exchange(rng, feed),
                "p": _cents(rng.uniform(bid, ask)),
                "s": rng.randint(*TRADE_SIZE_RANGE),
                "c": list(TRADE_CONDITIONS),
                "z": walk.tape,
                "t": stamp(now_ns),
                SEQ_KEY: walk.next_seq(channel),
            }
        if channel == "bars":
            return self._bar(walk, symbol, now_ns, stamp)
        raise ValueError(f"no data for channel {channel!r}")

    def _bar(self, walk: _Walk, symbol: str, now_ns: int, stamp: Stamp) -> dict[str, Any]:
        rng = walk.rng
        open_, close = _cents(walk.bar_open), _cents(walk.mid)
        high = max(_cents(walk.bar_high), open_, close)
        low = min(_cents(walk.bar_low), open_, close)
        message = {
            "T": "b",
            "S": symbol,
            "o": open_,
            "h": high,
            "l": low,
            "c": close,
            "v": rng.randint(*BAR_VOLUME_RANGE),
            "n": rng.randint(*BAR_TRADES_RANGE),
            "vw": round(rng.uniform(low, high), VWAP_DECIMALS),
            "t": stamp(now_ns - now_ns % NS_PER_MINUTE),
            SEQ_KEY: walk.next_seq("bars"),
        }
        walk.bar_open = walk.bar_high = walk.bar_low = walk.mid
        return message

    @staticmethod
    def _exchange(rng: random.Random, feed: Feed) -> str:
        return IEX_EXCHANGE if feed is Feed.IEX else rng.choice(SIP_EXCHANGES)
