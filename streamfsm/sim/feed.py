"""Seeded market data: one random walk per symbol, shared by every connection. Pure.

Each symbol draws from its own ``random.Random`` seeded with ``(seed, symbol)``, so a symbol's
price path does not depend on which other symbols are subscribed. Mid prices follow a geometric
random walk; quotes straddle the mid with a bid strictly below the ask, both rounded to cents;
trades print between bid and ask; minute bars summarise the walk since the previous bar.

Each market gets the schema Alpaca documents for it (see :mod:`streamfsm.sim.schemas`).

Every message carries ``"_seq"``: a counter per (channel, symbol) that keeps rising across all
connections of one simulator, so a client can count what it missed across a reconnect.
"""

from __future__ import annotations

from typing import Any

from streamfsm.config import Feed
from streamfsm.markets import market_of_feed
from streamfsm.sim.schemas import BUILDERS, Context, Walk
from streamfsm.sim.wire import SEQ_KEY, Stamp

__all__ = ["MarketFeed", "TradeFixes"]


class MarketFeed:
    """Generates quote, trade and minute-bar messages for any symbol.

    Not thread-safe: one simulator's event loop owns it.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._walks: dict[str, Walk] = {}

    def _walk(self, symbol: str) -> Walk:
        walk = self._walks.get(symbol)
        if walk is None:
            walk = self._walks[symbol] = Walk(self._seed, symbol)
        return walk

    def last_seq(self, channel: str, symbol: str) -> int:
        """The ``_seq`` of the last message generated for (channel, symbol); 0 before any."""
        return self._walk(symbol).seq.get(channel, 0)

    def message(
        self,
        channel: str,
        symbol: str,
        feed: Feed,
        now_ns: int,
        stamp: Stamp,
        *,
        snapshot: bool = False,
    ) -> dict[str, Any]:
        """The next message of ``channel`` (a wire channel name) for ``symbol`` on ``feed``.

        Args:
            channel: a channel of the feed's market.
            symbol: any valid symbol of that market.
            feed: the feed served; its market picks the schema, IEX messages carry exchange "V".
            now_ns: the message time, epoch nanoseconds.
            stamp: converts epoch nanoseconds to the wire's timestamp form.
            snapshot: for ``orderbooks``: send the whole book with the reset flag.

        Raises:
            ValueError: for a channel without data.
        """
        walk = self._walk(symbol)
        walk.step()
        market = market_of_feed(feed)
        builder = BUILDERS.get((market, channel)) or BUILDERS.get((None, channel))
        if builder is None:
            raise ValueError(f"no data for channel {channel!r} on {market}")
        message = builder(walk, Context(symbol, feed, now_ns, stamp, snapshot))
        message[SEQ_KEY] = walk.next_seq(channel)
        return message

    def correction(self, trade: dict[str, Any], stamp: Stamp, now_ns: int) -> dict[str, Any]:
        """A correction of stock ``trade`` (its size doubled), as Alpaca sends one."""
        return {
            "T": "c",
            "S": trade["S"],
            "x": trade["x"],
            "oi": trade["i"],
            "op": trade["p"],
            "os": trade["s"],
            "oc": trade["c"],
            "ci": trade["i"] + 1,
            "cp": trade["p"],
            "cs": trade["s"] * 2,
            "cc": trade["c"],
            "z": trade["z"],
            "t": stamp(now_ns),
        }

    def cancel(self, trade: dict[str, Any], stamp: Stamp, now_ns: int) -> dict[str, Any]:
        """A cancel of stock ``trade``, as Alpaca sends one."""
        return {
            "T": "x",
            "S": trade["S"],
            "i": trade["i"],
            "x": trade["x"],
            "p": trade["p"],
            "s": trade["s"],
            "a": "C",
            "z": trade["z"],
            "t": stamp(now_ns),
        }


class TradeFixes:
    """One connection's corrections and cancels: after every n-th stock trade, a correction of it
    and a cancel of the trade before it (``SimConfig.corrections_every``; None: never)."""

    def __init__(self, market: MarketFeed, every: int | None) -> None:
        self._market = market
        self._every = every
        self._count = 0
        self._last: dict[str, Any] | None = None

    def after(self, trade: dict[str, Any], stamp: Stamp, now_ns: int) -> list[dict[str, Any]]:
        """The messages to send after ``trade``: none, or a correction and a cancel."""
        previous, self._last = self._last, trade
        self._count += 1
        if self._every is None or self._count % self._every or previous is None:
            return []
        return [
            self._market.correction(trade, stamp, now_ns),
            self._market.cancel(previous, stamp, now_ns),
        ]
