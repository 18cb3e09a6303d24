"""The embedded pricing service: the latest quote and trade per symbol, safe to read anywhere.

:class:`PricingService` owns one :class:`~streamfsm.controller.StreamController` (in ``fast``
model mode) and turns its stream into frozen, ``Decimal``-priced snapshots that any thread can
read at any time::

    with PricingService(Credentials.from_env(), max_symbols=15, max_age=2.0) as prices:
        prices.track(["AAPL", "MSFT"], priority=10)
        quote = prices.quote("AAPL")
        if quote is not None and not quote.stale:
            place_limit_order(price=quote.bid)

Theory of operation
-------------------
*Hot path.* The controller's loop thread calls :meth:`PricingService._on_quote` for every
quote. It stores one tuple ``(quote, monotonic, wall)`` in a dict, keyed by symbol, and returns:
no lock, no allocation beyond that tuple, no conversion. A dict item assignment is atomic (under
the GIL, and per object in free-threaded builds), so a reader sees either the previous tuple or
the new one, never a torn value.

*Reads.* :meth:`~PricingService.quote` takes the stored tuple and builds a
:class:`QuoteSnapshot` in the caller's thread: prices become ``Decimal`` through
:func:`~streamfsm.models.decimal_price` (the shortest repr of the wire value, so ``187.33``
stays ``Decimal("187.33")``), and age and staleness are computed for the moment of the read.
Readers never touch a lock that the loop takes, and the loop never waits for a reader.

*Staleness.* A snapshot is stale, with the first reason that applies:

1. :attr:`StaleReason.DISCONNECTED`: the controller is not ``subscribed``, so nothing refreshes
   the price;
2. :attr:`StaleReason.GAP`: the stream reconnected, but no message for this symbol has arrived
   since the outage. A transition listener marks every quoted symbol when the session is lost,
   and the controller's gap report for the symbol clears the mark (one report answers every
   outage a quiet symbol slept through). Gap reports travel through the controller's dispatch
   queue in order with the data, so the first quote after the report is the first one received
   after the reconnect; quotes still queued from before the outage never clear a mark;
3. :attr:`StaleReason.AGE`: it was received more than ``max_age`` seconds ago.

*Membership.* :meth:`~PricingService.track` and :meth:`~PricingService.untrack` publish a new
(copy-on-write) membership dict under a private lock that the hot path and the readers never
take, then hand the change to the controller. Only one thread at a time hands changes over,
and it loops until the controller's desired set matches the membership; a caller that finds
another thread handing over returns at once and leaves its change to that thread. So
``track()`` never blocks the loop and never deadlocks, even from inside a callback.

*Cost.* A read builds one snapshot: about 5 us on the 2-core CI box, the Decimal conversion
done once per stored quote and shared by every later read of it. CPython's GIL still applies:
eight threads reading in a tight loop take the interpreter from the stream's loop thread (the
convoy effect) and slow it down several times over; threads that read when they price, even
thousands of times a second, leave it alone.

*Refresher.* Off by default. With a :class:`LatestQuoteSource` (such as
:class:`AlpacaLatestQuotes`), a named thread fetches the latest quotes of the stale symbols from
REST each time the session is lost and after each failed reconnect attempt, so its request rate
is bounded by the backoff policy and it has no timer of its own. REST quotes live in a second
dict that only refreshes write (one at a time); a read prefers the stream and falls back to a
REST quote that was fetched after the outage began and is not older than the stream's.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Set
from datetime import datetime
from typing import Any, Final

import attrs
import msgspec

from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import validate_symbol
from streamfsm._core.tracking import GapReport
from streamfsm.config import ModelMode, StreamConfig
from streamfsm.controller import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    Health,
    StreamController,
)
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ConfigurationError,
    InvalidSymbolError,
    LocalProtocolError,
    StreamError,
)
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote, Trade
from streamfsm.pricing.refresher import AlpacaLatestQuotes, LatestQuoteSource
from streamfsm.pricing.snapshots import QuoteSnapshot, Source, StaleReason, TradeSnapshot

__all__ = [
    "IEX_SUBSCRIPTION_LIMIT",
    "AlpacaLatestQuotes",
    "LatestQuoteSource",
    "PricingService",
    "PricingStatistics",
    "QuoteSnapshot",
    "Source",
    "StaleReason",
    "TrackResult",
    "TradeSnapshot",
]

#: Alpaca's free IEX plan allows 30 subscriptions, trades and quotes counted together; a
#: service that also tracks trades spends two per symbol, so pass ``max_symbols=15`` there.
IEX_SUBSCRIPTION_LIMIT: Final = 30
#: How long :meth:`PricingService.stop` waits for the refresher thread (one REST call at most).
REFRESHER_JOIN_TIMEOUT: Final = 5.0
#: The wildcard subscribes everything; a priced universe must be explicit to be bounded.
_WILDCARD: Final = "*"

# Stored tuples: (message, monotonic receive time, wall receive time as epoch seconds).
_QuoteEntry = tuple[Quote, float, float]
_TradeEntry = tuple[Trade, float, float]


@attrs.frozen(kw_only=True)
class TrackResult:
    """What one :meth:`PricingService.track` call changed.

    Attributes:
        added: symbols tracked from now on.
        evicted: symbols that were tracked and were dropped to respect ``max_symbols``.
        refused: symbols of this call that did not fit under ``max_symbols``.
    """

    added: tuple[str, ...]
    evicted: tuple[str, ...]
    refused: tuple[str, ...]


@attrs.frozen(kw_only=True)
class PricingStatistics:
    """Counters of a pricing service at one moment.

    Attributes:
        tracked: symbols tracked.
        quoted: tracked symbols that have a quote.
        stale: tracked symbols whose quote is stale, or that have none.
        evictions: symbols dropped or refused because of ``max_symbols``, in total.
        refreshes: REST refreshes that returned.
        refresh_failures: REST refreshes (or ``on_refresh`` calls) that raised.
        rejected_prices: quotes and trades skipped because a price was not a finite number >= 0.
    """

    tracked: int
    quoted: int
    stale: int
    evictions: int
    refreshes: int
    refresh_failures: int
    rejected_prices: int = 0


@attrs.frozen
class _Tracked:
    """One tracked symbol: its priority, its insertion order and when tracking began."""

    priority: int
    order: int
    since: float


def _symbols(values: Iterable[str] | str) -> tuple[str, ...]:
    """Validated symbols in the caller's order, without duplicates or the wildcard."""
    names = (values,) if isinstance(values, str) else tuple(values)
    result: dict[str, None] = {}
    for value in names:
        symbol = validate_symbol(value)
        if symbol == _WILDCARD:
            raise InvalidSymbolError(symbol, "a pricing service tracks explicit symbols only")
        result[symbol] = None
    return tuple(result)


QuoteCallback = Callable[[Quote], object]
TradeCallback = Callable[[Trade], object]


class PricingService:
    """The latest quote and trade of each tracked symbol, fed by one stream controller.

    Args:
        credentials: the Alpaca key.
        config: the stream configuration (feed, URL, policies, journal).
        max_symbols: most symbols tracked at once, None for no limit. Beyond it, the lowest
            priority goes first; among equal priorities the most recently tracked goes first
            (first come, first kept). Every eviction is logged (``symbol_evicted``).
        max_age: a snapshot received longer ago than this many seconds is stale
            (``StaleReason.AGE``); None: only outages make snapshots stale. Set it to the
            oldest price you would still place an order on.
        trades: also subscribe trades, for :meth:`last_trade`. Each symbol then uses two of the
            feed's subscriptions (see :data:`IEX_SUBSCRIPTION_LIMIT`).
        refresher: where to fetch quotes during outages (see :class:`AlpacaLatestQuotes`);
            None (the default) disables the refresher.
        on_quote: called with each stream quote (a ``streamfsm.models.Quote``) on the
            controller's loop, after the service stored it. Isolated: an exception is logged and
            counted in ``health().callback_errors``. Keep it short; it runs on the hot path.
        on_trade: likewise for trades.
        on_gap: called with each :class:`~streamfsm._core.tracking.GapReport` on the controller's
        loop.
        on_error: called with each error the controller reports (fatal stops, rejected changes).
        on_refresh: called on the refresher thread with the snapshots each refresh stored.
        correlation_id: the controller's correlation id; generated when None.
        rng: the randomness of backoff jitter (seed it for reproducible runs).
        clock: monotonic seconds, for receive times and ages.
        wall: wall-clock epoch seconds, for receive times.

    Attributes:
        controller: the embedded :class:`~streamfsm.controller.StreamController`, for its
            journal, listeners and waits. Subscribe through :meth:`track`, not through it.
        max_symbols: as given.
        max_age: as given.

    The service starts stopped; :meth:`start` begins streaming. Reads work in every state.
    """

    def __init__(
        self,
        credentials: Credentials,
        config: StreamConfig | None = None,
        *,
        max_symbols: int | None = None,
        max_age: float | None = None,
        trades: bool = True,
        refresher: LatestQuoteSource | None = None,
        on_quote: QuoteCallback | None = None,
        on_trade: TradeCallback | None = None,
        on_gap: Callable[[GapReport], object] | None = None,
        on_error: Callable[[StreamError], object] | None = None,
        on_refresh: Callable[[Mapping[str, QuoteSnapshot]], object] | None = None,
        correlation_id: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_symbols is not None and (
            isinstance(max_symbols, bool) or not isinstance(max_symbols, int) or max_symbols < 1
        ):
            raise ConfigurationError("max_symbols", "an integer >= 1 or None", max_symbols)
        if max_age is not None and (
            isinstance(max_age, bool)
            or not isinstance(max_age, int | float)
            or not math.isfinite(max_age)
            or max_age <= 0
        ):
            raise ConfigurationError("max_age", "a number of seconds > 0 or None", max_age)
        self.max_symbols = max_symbols
        self.max_age = max_age
        self._trades = trades
        self._refresher = refresher
        self._user_quote = on_quote
        self._user_trade = on_trade
        self._user_gap = on_gap
        self._user_refresh = on_refresh
        self._clock = clock
        self._wall = wall
        self._rejected_prices = 0
        # Written by the loop thread only (the hot path and the listener); read anywhere.
        self._quotes: dict[str, _QuoteEntry] = {}
        self._trade_entries: dict[str, _TradeEntry] = {}
        # Outages whose gap report is still due, per symbol: wall times, oldest first.
        self._quote_gaps: dict[str, tuple[datetime, ...]] = {}
        self._trade_gaps: dict[str, tuple[datetime, ...]] = {}
        self._lost_at = -float("inf")
        # Written under _refresh_lock by the refresher thread or refresh_now() callers.
        self._rest: dict[str, _QuoteEntry] = {}
        # Decimal conversions cached per stored entry, written by readers: a race between two
        # readers only builds the same value twice.
        self._quote_views: dict[str, tuple[_QuoteEntry, QuoteSnapshot]] = {}
        self._trade_views: dict[str, tuple[_TradeEntry, TradeSnapshot]] = {}
        # Membership: replaced whole (copy-on-write) under _lock; the loop never takes _lock.
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        self._order = itertools.count()
        self._dirty = False
        self._evictions = 0
        # Held by the one thread handing membership changes to the controller.
        self._handover = threading.Lock()
        # Refresh counters and the REST dict are written under _refresh_lock (never the loop's).
        self._refresh_lock = threading.Lock()
        self._refreshes = 0
        self._refresh_failures = 0
        self._refresh_wanted = threading.Event()
        self._refresh_closing = False
        self._refresh_thread: threading.Thread | None = None
        self.controller = StreamController(
            credentials,
            config,
            on_quote=self._on_quote,
            on_trade=self._on_trade if trades else None,
            on_gap=self._on_gap,
            on_error=on_error,
            models=ModelMode.FAST,
            correlation_id=correlation_id,
            rng=rng,
        )
        self.controller.add_listener(self._on_transition)
        self._log = StreamLogger(component="pricing", correlation_id=self.controller.correlation_id)

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float | None = DEFAULT_START_TIMEOUT) -> None:
        """Start streaming (and the refresher thread, when configured); returns at once.

        Leaves the controller in ``connecting`` when symbols are tracked, else ``idle``.

        Raises:
            InvalidTransitionError: when already running.
            ControllerStoppedError: when the controller's loop does not come up in ``timeout``.
        """
        self.controller.start(timeout)
        self._start_refresher()

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the stream and the refresher; returns when neither runs any more. Idempotent.

        Snapshots stay readable afterwards, stale with ``StaleReason.DISCONNECTED``. A REST
        call in flight is waited for up to :data:`REFRESHER_JOIN_TIMEOUT` seconds; alpaca-py
        sets no timeout of its own, so a hung call is logged and abandoned (its thread is a
        daemon and stores nothing once stopped).
        """
        self.controller.stop(timeout)
        self._stop_refresher()

    def health(self) -> Health:
        """The controller's health snapshot (state, counters, gaps, last error)."""
        return self.controller.health()

    @property
    def state(self) -> State:
        """The controller's state."""
        return self.controller.state

    def __enter__(self) -> PricingService:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"PricingService(state={self.controller.state.value!r}, "
            f"tracked={len(self._tracked)}, max_symbols={self.max_symbols})"
        )

    # ------------------------------------------------------------ membership

    def track(self, symbols: Iterable[str] | str, *, priority: int = 0) -> TrackResult:
        """Track ``symbols`` at ``priority`` (higher is kept longer); safe from any thread.

        A symbol already tracked keeps its place in the insertion order and takes the new
        priority. Over ``max_symbols``, symbols are ranked by priority, then by insertion order,
        and the lowest-ranked ones are dropped (logged as ``symbol_evicted``).

        The change is handed to the controller before this returns, unless another thread is
        handing changes over at that moment (or this is the controller's own loop thread
        while one is): that thread then carries this change too.

        A symbol the server refuses (405, over the feed's limit) stays tracked without quotes,
        reaches ``on_error``, and is asked for again at the next ``track()`` or ``untrack()``;
        set ``max_symbols`` within the feed's limit so that it does not happen.

        Raises:
            InvalidSymbolError: for an invalid symbol or the wildcard; nothing changes then.
            ConfigurationError: when ``priority`` is not an integer.
            ControllerStoppedError: when the controller's loop does not take the change.
        """
        names = _symbols(symbols)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigurationError("priority", "an integer", priority)
        added: list[str] = []
        with self._lock:
            tracked = dict(self._tracked)
            now = self._clock()
            for name in names:
                current = tracked.get(name)
                if current is None:
                    tracked[name] = _Tracked(priority, next(self._order), now)
                    added.append(name)
                elif current.priority != priority:
                    tracked[name] = attrs.evolve(current, priority=priority)
            dropped = {name: tracked.pop(name).priority for name in self._over_limit(tracked)}
            self._evictions += len(dropped)
            self._tracked = tracked
            self._dirty = True
        refused = tuple(name for name in dropped if name in added)
        evicted = tuple(name for name in dropped if name not in added)
        for name, dropped_priority in dropped.items():
            self._forget(name)
            self._log.warning(
                "symbol_evicted",
                symbol=name,
                priority=dropped_priority,
                reason="max_symbols",
                limit=self.max_symbols,
                refused=name in refused,
                requested=list(names),
            )
        self._hand_over()
        return TrackResult(
            added=tuple(name for name in added if name not in dropped),
            evicted=evicted,
            refused=refused,
        )

    def untrack(self, symbols: Iterable[str] | str) -> tuple[str, ...]:
        """Stop tracking ``symbols``; returns those that were tracked. Safe from any thread.

        Their snapshots are forgotten: :meth:`quote` returns None for them from now on.

        Raises:
            InvalidSymbolError: for an invalid symbol; nothing changes then.
            ControllerStoppedError: when the controller's loop does not take the change.
        """
        names = _symbols(symbols)
        with self._lock:
            tracked = dict(self._tracked)
            removed = tuple(name for name in names if tracked.pop(name, None) is not None)
            self._tracked = tracked
            self._dirty = True
        for name in removed:
            self._forget(name)
        self._hand_over()
        return removed

    def tracked(self) -> dict[str, int]:
        """Tracked symbols and their priorities, highest rank first."""
        members = self._tracked
        return {
            name: members[name].priority
            for name in sorted(members, key=lambda name: _rank(members[name]))
        }

    def _over_limit(self, tracked: Mapping[str, _Tracked]) -> list[str]:
        if self.max_symbols is None or len(tracked) <= self.max_symbols:
            return []
        ranked = sorted(tracked, key=lambda name: _rank(tracked[name]))
        return ranked[self.max_symbols :]

    def _forget(self, symbol: str) -> None:
        # A quote already queued on the loop may store the symbol again; reads ignore entries
        # received before the symbol's (re)tracking, so that leftover is never served.
        self._quotes.pop(symbol, None)
        self._trade_entries.pop(symbol, None)
        self._rest.pop(symbol, None)
        self._quote_views.pop(symbol, None)
        self._trade_views.pop(symbol, None)
        self._quote_gaps.pop(symbol, None)
        self._trade_gaps.pop(symbol, None)

    def _hand_over(self) -> None:
        """Make the controller's desired set equal to the membership (see the module docstring)."""
        while self._handover.acquire(blocking=False):
            try:
                self._hand_over_pending()
            finally:
                self._handover.release()
            with self._lock:
                if not self._dirty:
                    return

    def _hand_over_pending(self) -> None:
        while True:
            with self._lock:
                if not self._dirty:
                    return
                self._dirty = False
                wanted = frozenset(self._tracked)
            try:
                # The controller's own desired set, not a copy of it: a change the server
                # refused (405) left it, so the next hand-over asks again.
                desired = self.controller.health().desired.quotes
                if remove := desired - wanted:
                    self.controller.unsubscribe(**self._channels(remove))
                if add := wanted - desired:
                    self.controller.subscribe(**self._channels(add))
            except StreamError:
                with self._lock:
                    self._dirty = True  # the next call tries again
                raise

    def _channels(self, symbols: Set[str]) -> dict[str, Set[str]]:
        return {"quotes": symbols, "trades": symbols if self._trades else frozenset()}

    # ------------------------------------------------------------ reads, from any thread

    def quote(self, symbol: str) -> QuoteSnapshot | None:
        """The latest quote of ``symbol`` as of now; never blocks the stream.

        Returns:
            A snapshot, possibly stale (check ``stale`` before pricing from it); None when
            ``symbol`` is not tracked or has not been quoted since it was tracked. None is a
            normal answer in a live market (a symbol tracked a moment ago), so it is not an error.
        """
        member = self._tracked.get(symbol)
        if member is None:
            return None
        now = self._clock()
        stream = self._quotes.get(symbol)
        if stream is not None and stream[1] < member.since:
            stream = None
        reason = None if stream is None else self._reason(symbol, stream, self._quote_gaps, now)
        if stream is not None and reason is None:
            return self._quote_view(symbol, stream, Source.STREAM, now, None)
        rest = self._rest.get(symbol)
        if (
            rest is not None
            and rest[1] >= max(member.since, self._lost_at)
            and (stream is None or rest[0].timestamp >= stream[0].timestamp)
        ):
            return self._quote_view(symbol, rest, Source.REST, now, self._aged(rest[1], now))
        if stream is None:
            return None
        return self._quote_view(symbol, stream, Source.STREAM, now, reason)

    def _quote_view(
        self,
        symbol: str,
        entry: _QuoteEntry,
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
                entry[0], received_at=entry[1], received_wall=entry[2], now=entry[1], source=source
            )
            self._quote_views[symbol] = (entry, base)
        return msgspec.structs.replace(base, age=max(0.0, now - entry[1]), stale_reason=reason)

    def quotes(self) -> dict[str, QuoteSnapshot]:
        """Snapshots of every tracked symbol that has one, highest rank first."""
        result = {}
        for symbol in self.tracked():
            snapshot = self.quote(symbol)
            if snapshot is not None:
                result[symbol] = snapshot
        return result

    def last_trade(self, symbol: str) -> TradeSnapshot | None:
        """The last trade of ``symbol`` as of now; None as for :meth:`quote`.

        Raises:
            LocalProtocolError: when the service was built with ``trades=False``.
        """
        if not self._trades:
            raise LocalProtocolError("trades are not tracked; build the service with trades=True")
        member = self._tracked.get(symbol)
        entry = self._trade_entries.get(symbol)
        if member is None or entry is None or entry[1] < member.since:
            return None
        now = self._clock()
        cached = self._trade_views.get(symbol)
        if cached is not None and cached[0] is entry:
            base = cached[1]
        else:
            base = TradeSnapshot.from_trade(
                entry[0], received_at=entry[1], received_wall=entry[2], now=entry[1]
            )
            self._trade_views[symbol] = (entry, base)
        return msgspec.structs.replace(
            base,
            age=max(0.0, now - entry[1]),
            stale_reason=self._reason(symbol, entry, self._trade_gaps, now),
        )

    def statistics(self) -> PricingStatistics:
        """Counters and the number of stale symbols, as of now."""
        snapshots = [self.quote(symbol) for symbol in self._tracked]
        quoted = [snapshot for snapshot in snapshots if snapshot is not None]
        return PricingStatistics(
            tracked=len(snapshots),
            quoted=len(quoted),
            stale=len(snapshots) - sum(1 for snapshot in quoted if not snapshot.stale),
            evictions=self._evictions,
            refreshes=self._refreshes,
            refresh_failures=self._refresh_failures,
            rejected_prices=self._rejected_prices,
        )

    def _reason(
        self,
        symbol: str,
        entry: tuple[Any, float, float],
        gaps: Mapping[str, tuple[datetime, ...]],
        now: float,
    ) -> StaleReason | None:
        if self.controller.state is not State.SUBSCRIBED:
            return StaleReason.DISCONNECTED
        if gaps.get(symbol):
            return StaleReason.GAP
        return self._aged(entry[1], now)

    def _aged(self, received_at: float, now: float) -> StaleReason | None:
        if self.max_age is not None and now - received_at > self.max_age:
            return StaleReason.AGE
        return None

    # ------------------------------------------------------------ the loop thread

    def _on_quote(self, quote: Quote) -> None:
        """Hot path: one dict write, then the user's hook.

        The quote is dated by when its frame arrived, not by when it is delivered, so a backlog
        behind slow callbacks ages it as it should. A quote with a price that is not a finite
        number >= 0 is skipped and counted: it could never be priced.
        """
        if not (_sane(quote.bid_price) and _sane(quote.ask_price)):
            self._rejected_prices += 1
            return
        lag = self.controller.delivery_lag()
        self._quotes[quote.symbol] = (quote, self._clock() - lag, self._wall() - lag)
        if self._user_quote is not None:
            self._user_quote(quote)

    def _on_trade(self, trade: Trade) -> None:
        """Hot path: one dict write, then the user's hook (dated and checked as quotes are)."""
        if not _sane(trade.price):
            self._rejected_prices += 1
            return
        lag = self.controller.delivery_lag()
        self._trade_entries[trade.symbol] = (trade, self._clock() - lag, self._wall() - lag)
        if self._user_trade is not None:
            self._user_trade(trade)

    def _on_transition(self, record: TransitionRecord) -> None:
        """Mark quoted symbols when the session is lost; wake the refresher on failures."""
        lost = record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value
        if lost:
            self._lost_at = self._clock()
            self._mark_outage(datetime.fromisoformat(record.wall_time))
        if self._refresher is not None and (lost or record.trigger == "attempt_failed"):
            self._refresh_wanted.set()

    def _mark_outage(self, mark: datetime) -> None:
        """Record an outage against every tracked symbol that has data, as the tracker does.

        A mark is the wall time of the transition record of the loss. The controller stamps a
        gap's ``lost_at`` right after that record and before the record of any later outage, so
        a gap report answers exactly the marks up to its ``lost_at``. The controller opens no
        second gap for a pair whose gap is still open (a quiet symbol across two outages gets one
        report); a new mark is added only when the earlier gap was already closed on the socket,
        its report still queued behind data this service has not been handed yet.
        """
        members = self._tracked
        closed: dict[tuple[str, str], datetime] | None = None
        for channel, entries, gaps in (
            ("quotes", self._quotes, self._quote_gaps),
            ("trades", self._trade_entries, self._trade_gaps),
        ):
            for symbol in [symbol for symbol in entries if symbol in members]:
                due = gaps.get(symbol)
                if not due:
                    gaps[symbol] = (mark,)
                    continue
                if closed is None:
                    closed = self._closed_gaps()
                answered = closed.get((channel, symbol))
                if answered is not None and answered >= due[-1]:
                    gaps[symbol] = (*due, mark)

    def _closed_gaps(self) -> dict[tuple[str, str], datetime]:
        """The latest ``lost_at`` of each pair whose gap the controller closed recently."""
        latest: dict[tuple[str, str], datetime] = {}
        for report in self.controller.health().recent_gaps:
            key = (report.channel, report.symbol)
            if key not in latest or report.lost_at > latest[key]:
                latest[key] = report.lost_at
        return latest

    def _on_gap(self, report: GapReport) -> None:
        """Data resumed for a symbol: clear the marks this report answers, keep later ones."""
        gaps = {"quotes": self._quote_gaps, "trades": self._trade_gaps}.get(report.channel)
        due = None if gaps is None else gaps.get(report.symbol)
        if gaps is not None and due:
            left = tuple(mark for mark in due if mark > report.lost_at)
            if left:
                gaps[report.symbol] = left
            else:
                gaps.pop(report.symbol, None)
        if self._user_gap is not None:
            self._user_gap(report)

    # ------------------------------------------------------------ refresher

    def refresh_now(self, symbols: Iterable[str] | None = None) -> dict[str, QuoteSnapshot]:
        """Fetch REST quotes for ``symbols`` (default: every tracked symbol that is stale).

        Runs in the caller's thread and blocks for one REST call; refreshes run one at a time.
        The quotes are kept and served by :meth:`quote` while the stream's own quote is stale
        and not newer.

        Returns:
            The snapshots stored, keyed by symbol.

        Raises:
            LocalProtocolError: when the service has no refresher.
            InvalidSymbolError: for an invalid symbol.
            Whatever the source raises (for alpaca-py: ``APIError``, ``requests`` errors).
        """
        return self._refresh(symbols, keep=lambda: True)

    def _refresh(
        self, symbols: Iterable[str] | None, keep: Callable[[], bool]
    ) -> dict[str, QuoteSnapshot]:
        source = self._refresher
        if source is None:
            raise LocalProtocolError("no refresher configured; pass refresher=... to the service")
        requested = self._stale_symbols() if symbols is None else _symbols(symbols)
        with self._refresh_lock:
            members = self._tracked
            wanted = tuple(symbol for symbol in requested if symbol in members)
            if not wanted:
                return {}
            try:
                fetched = source.latest_quotes(wanted)
            except BaseException:
                self._refresh_failures += 1
                raise
            received_at, received_wall = self._clock(), self._wall()
            stored: dict[str, QuoteSnapshot] = {}
            if not keep():
                return stored
            members = self._tracked
            for symbol, quote in fetched.items():
                previous = self._rest.get(symbol)
                if (
                    symbol not in members
                    or quote.symbol != symbol
                    or (previous is not None and previous[0].timestamp > quote.timestamp)
                ):
                    continue
                self._rest[symbol] = (quote, received_at, received_wall)
                stored[symbol] = QuoteSnapshot.from_quote(
                    quote,
                    received_at=received_at,
                    received_wall=received_wall,
                    now=received_at,
                    stale_reason=None,
                    source=Source.REST,
                )
            self._refreshes += 1
        self._log.info("quotes_refreshed", requested=len(wanted), stored=len(stored))
        return stored

    def _stale_symbols(self) -> tuple[str, ...]:
        result = []
        for symbol in self.tracked():
            snapshot = self.quote(symbol)
            if snapshot is None or snapshot.stale:
                result.append(symbol)
        return tuple(result)

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresh_thread is not None:
            return
        self._refresh_closing = False
        self._refresh_wanted.clear()
        thread = threading.Thread(
            target=self._refresh_main,
            name=f"streamfsm-refresh-{self.controller.correlation_id}",
            daemon=True,
        )
        self._refresh_thread = thread
        thread.start()

    def _stop_refresher(self) -> None:
        thread = self._refresh_thread
        if thread is None:
            return
        self._refresh_closing = True
        self._refresh_wanted.set()
        if thread is not threading.current_thread():
            thread.join(REFRESHER_JOIN_TIMEOUT)
            if thread.is_alive():
                self._log.warning("refresher_abandoned", timeout=REFRESHER_JOIN_TIMEOUT)
        self._refresh_thread = None

    def _refresh_main(self) -> None:
        """The refresher thread: wait for an outage event, refresh, repeat until stopped."""
        while True:
            self._refresh_wanted.wait()
            self._refresh_wanted.clear()
            if self._refresh_closing:
                return
            try:
                stored = self._refresh(None, keep=lambda: not self._refresh_closing)
                if stored and self._user_refresh is not None:
                    self._user_refresh(stored)
            except Exception as exc:  # noqa: BLE001 - a pluggable source or hook must not end the refresher; logged and counted
                self._log.warning("refresh_failed", error_type=type(exc).__name__, error=str(exc))


def _sane(price: float) -> bool:
    """A price a snapshot can hold: a finite number, not negative (0 means no side)."""
    return math.isfinite(price) and price >= 0


def _rank(member: _Tracked) -> tuple[int, int]:
    """Sort key: higher priority first, then earlier insertion first."""
    return (-member.priority, member.order)
