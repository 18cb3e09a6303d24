"""The latest stream quote and trade per symbol, written by the stream's loop, read anywhere.

:class:`PriceStore` is the hot path of the pricing service and the judge of staleness. The loop
stores one pair ``(message, arrival)`` per message in a dict keyed by symbol: no lock, no
allocation beyond that tuple, no conversion. A dict item assignment is atomic (under the GIL,
and per object in free-threaded builds), so a reader sees either the previous tuple or the new
one, never a torn value.

A read builds a snapshot in the reader's thread. The ``Decimal`` conversion, and the wall-clock
time of the arrival, are done once per stored message and cached; a race between two readers
only builds the same value twice. A read costs about 5 us on the 2-core CI box. CPython's GIL
still applies: eight threads reading in a tight loop take the interpreter from the stream's loop
thread (the convoy effect) and slow it down several times over; threads that read when they
price, even thousands of times a second, leave it alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import msgspec

from streamfsm.models import Quote, Trade
from streamfsm.pricing.snapshots import (
    QuoteEntry,
    QuoteSnapshot,
    Source,
    StaleReason,
    TradeEntry,
    TradeSnapshot,
)

__all__ = ["PriceStore"]

#: No session has been lost yet: every stored message is newer than that.
NEVER_LOST: Final = -math.inf


def _sane(price: float) -> bool:
    """A price a snapshot can hold: a finite number, not negative (0 means no side)."""
    return math.isfinite(price) and price >= 0


class PriceStore:
    """Stored stream messages and the snapshots built from them.

    Args:
        connected: whether the stream is ``subscribed`` right now.
        max_age: a message that arrived longer ago than this many seconds is stale; None: never.
        clock: monotonic seconds, the clock of arrival times.
        wall: wall-clock epoch seconds, for the wall-clock time of an arrival.

    Attributes:
        quotes: the latest quote per symbol with its arrival times.
        trades: the latest trade per symbol with its arrival times.
        lost_at: monotonic time the latest session was lost, on the clock of arrival times.
        rejected: quotes and trades skipped because a price was not a finite number >= 0.
    """

    def __init__(
        self,
        connected: Callable[[], bool],
        max_age: float | None,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self._connected = connected
        self._max_age = max_age
        self._clock = clock
        self._wall = wall
        # Written by the loop thread only; read anywhere.
        self.quotes: dict[str, QuoteEntry] = {}
        self.trades: dict[str, TradeEntry] = {}
        self.lost_at = NEVER_LOST
        self.rejected = 0
        # Written by readers: the snapshot of each stored entry, without age and staleness.
        self._quote_views: dict[str, tuple[QuoteEntry, QuoteSnapshot]] = {}
        self._trade_views: dict[str, tuple[TradeEntry, TradeSnapshot]] = {}

    # ------------------------------------------------------------ the loop thread

    def put_quote(self, quote: Quote, arrival: float) -> bool:
        """Store ``quote``, whose frame arrived at monotonic time ``arrival``.

        Returns:
            False when a price is not a finite number >= 0: it could never be priced, so it is
            skipped and counted in :attr:`rejected`.
        """
        if not (_sane(quote.bid_price) and _sane(quote.ask_price)):
            self.rejected += 1
            return False
        self.quotes[quote.symbol] = (quote, arrival)
        return True

    def put_trade(self, trade: Trade, arrival: float) -> bool:
        """Store ``trade`` as :meth:`put_quote` stores a quote."""
        if not _sane(trade.price):
            self.rejected += 1
            return False
        self.trades[trade.symbol] = (trade, arrival)
        return True

    def session_lost(self, at: float) -> None:
        """The session was lost at monotonic ``at``: what arrived before is from before the gap."""
        self.lost_at = at

    # ------------------------------------------------------------ any thread

    def _wall_of(self, arrival: float) -> float:
        """The wall-clock time (epoch seconds) of the monotonic time ``arrival``."""
        return self._wall() - (self._clock() - arrival)

    def forget(self, symbol: str) -> None:
        """Drop everything stored for ``symbol``."""
        self.quotes.pop(symbol, None)
        self.trades.pop(symbol, None)
        self._quote_views.pop(symbol, None)
        self._trade_views.pop(symbol, None)

    def reason(self, arrival: float, now: float) -> StaleReason | None:
        """Why a stream message that arrived at ``arrival`` is stale at ``now``, or None.

        The first that applies: the stream is not subscribed (DISCONNECTED); the message arrived
        before the latest session was lost, so nothing for its symbol has arrived since the
        outage (GAP); it is older than ``max_age`` (AGE).
        """
        if not self._connected():
            return StaleReason.DISCONNECTED
        if arrival < self.lost_at:
            return StaleReason.GAP
        return self.aged(arrival, now)

    def aged(self, arrival: float, now: float) -> StaleReason | None:
        """AGE when a message that arrived at ``arrival`` is older than ``max_age`` at ``now``."""
        if self._max_age is not None and now - arrival > self._max_age:
            return StaleReason.AGE
        return None

    def quote(
        self, symbol: str, since: float, now: float, rest: QuoteEntry | None
    ) -> QuoteSnapshot | None:
        """The quote of ``symbol`` at ``now``: from the stream, or ``rest`` during an outage.

        Messages that arrived before ``since`` (when tracking began) are never served. A REST
        quote is served when the stream's is stale or missing, it was fetched after tracking
        began and after the latest loss, and it is not older than the stream's.
        """
        stream = self.quotes.get(symbol)
        if stream is not None and stream[1] < since:
            stream = None
        reason = None if stream is None else self.reason(stream[1], now)
        if stream is not None and reason is None:
            return self._quote_view(symbol, stream, Source.STREAM, now, None)
        if (
            rest is not None
            and rest[1] >= max(since, self.lost_at)
            and (stream is None or rest[0].timestamp >= stream[0].timestamp)
        ):
            return self._quote_view(symbol, rest, Source.REST, now, self.aged(rest[1], now))
        if stream is None:
            return None
        return self._quote_view(symbol, stream, Source.STREAM, now, reason)

    def last_trade(self, symbol: str, since: float, now: float) -> TradeSnapshot | None:
        """The last trade of ``symbol`` at ``now``; None when none arrived since ``since``."""
        entry = self.trades.get(symbol)
        if entry is None or entry[1] < since:
            return None
        cached = self._trade_views.get(symbol)
        if cached is not None and cached[0] is entry:
            base = cached[1]
        else:
            base = TradeSnapshot.from_trade(
                entry[0], received_at=entry[1], received_wall=self._wall_of(entry[1]), now=entry[1]
            )
            self._trade_views[symbol] = (entry, base)
        return msgspec.structs.replace(
            base, age=max(0.0, now - entry[1]), stale_reason=self.reason(entry[1], now)
        )

    def _quote_view(
        self,
        symbol: str,
        entry: QuoteEntry,
        source: Source,
        now: float,
        reason: StaleReason | None,
    ) -> QuoteSnapshot:
        """The snapshot of ``entry`` at ``now``; the Decimal conversion is done once per entry."""
        cached = self._quote_views.get(symbol)
        if cached is not None and cached[0] is entry:
            base = cached[1]
        else:
            base = QuoteSnapshot.from_quote(
                entry[0],
                received_at=entry[1],
                received_wall=self._wall_of(entry[1]),
                now=entry[1],
                source=source,
            )
            self._quote_views[symbol] = (entry, base)
        return msgspec.structs.replace(base, age=max(0.0, now - entry[1]), stale_reason=reason)
