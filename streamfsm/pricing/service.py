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
*Hot path and reads.* The controller's loop stores each quote and trade in a
:class:`~streamfsm.pricing.store.PriceStore` with the time its frame arrived (one dict write, no
lock); any thread reads a frozen, ``Decimal``-priced snapshot built at the moment of the read.
A message is dated by when its frame arrived, not by when it is delivered, so a backlog behind
slow callbacks ages it as it should. Readers never touch a lock that the loop takes.

*Staleness.* A snapshot is stale, with the first reason that applies:

1. :attr:`StaleReason.DISCONNECTED`: the controller is not ``subscribed``, so nothing refreshes
   the price;
2. :attr:`StaleReason.GAP`: the stream reconnected, but the stored message arrived before the
   latest session was lost: nothing for this symbol has arrived since the outage. The service
   keeps no gap state of its own; the controller's tracker opens, closes and reports gaps
   (``on_gap``), and the arrival time of the stored message answers the question exactly, also
   for messages still queued from before the outage when it happened;
3. :attr:`StaleReason.AGE`: it arrived more than ``max_age`` seconds ago.

*Membership* (:mod:`~streamfsm.pricing.membership`) hands changes to the controller without
ever blocking its loop. The *refresher* (:mod:`~streamfsm.pricing.refresher`, off by default)
fetches REST quotes of the stale symbols during outages; a read prefers the stream and falls
back to a REST quote fetched after the outage began and not older than the stream's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import GapReport
from streamfsm.config import ModelMode, StreamConfig
from streamfsm.controller import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    Health,
    StreamController,
)
from streamfsm.credentials import Credentials
from streamfsm.errors import LocalProtocolError, StreamError
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote, Trade
from streamfsm.pricing import _checks
from streamfsm.pricing.membership import Membership, TrackResult
from streamfsm.pricing.refresher import LatestQuoteSource, Refresher
from streamfsm.pricing.snapshots import PricingStatistics, QuoteSnapshot, TradeSnapshot
from streamfsm.pricing.store import PriceStore

__all__ = ["IEX_SUBSCRIPTION_LIMIT", "PricingService"]

#: Alpaca's free IEX plan allows 30 subscriptions, trades and quotes counted together; a
#: service that also tracks trades spends two per symbol, so pass ``max_symbols=15`` there.
IEX_SUBSCRIPTION_LIMIT: Final = 30
_SUBSCRIBED: Final = State.SUBSCRIBED.value


class PricingService:
    """The latest quote and trade of each tracked symbol, fed by one stream controller.

    Args:
        credentials: the Alpaca key.
        config: the stream configuration: a market with quotes (stocks, crypto, options), feed, URL.
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
        on_gap: called with each :class:`~streamfsm._core.tracking.GapReport` on the
            controller's loop.
        on_error: called with each error the controller reports (fatal stops, rejected changes).
        on_refresh: called on the refresher thread with the snapshots each refresh stored.
        correlation_id: the controller's correlation id; generated when None.
        rng: the randomness of backoff jitter (seed it for reproducible runs).
        clock: monotonic seconds for ages; it must read the controller's clock
            (``time.monotonic``), of which it may run ahead in tests.
        wall: wall-clock epoch seconds, for receive times.

    Raises:
        ConfigurationError: for an argument of the wrong type or out of range (each is named).

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
        on_quote: Callable[[Quote], object] | None = None,
        on_trade: Callable[[Trade], object] | None = None,
        on_gap: Callable[[GapReport], object] | None = None,
        on_error: Callable[[StreamError], object] | None = None,
        on_refresh: Callable[[Mapping[str, QuoteSnapshot]], object] | None = None,
        correlation_id: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_symbols = _checks.optional_count("max_symbols", max_symbols)
        self.max_age = _checks.optional_seconds("max_age", max_age)
        self._trades = _checks.flag("trades", trades)
        _checks.hooks(on_quote=on_quote, on_trade=on_trade, on_gap=on_gap, on_error=on_error)
        _checks.hooks(on_refresh=on_refresh)
        self._user_quote = on_quote
        self._user_trade = on_trade
        self._clock = _checks.clock("clock", clock)
        self._wall = _checks.clock("wall", wall)
        _checks.source("refresher", refresher)
        config, market = _checks.priced_config(config)
        self.controller = StreamController(
            credentials,
            config,
            on_quote=self._on_quote,
            on_trade=self._on_trade if trades else None,
            on_gap=on_gap,
            on_error=on_error,
            models=ModelMode.FAST,
            correlation_id=correlation_id,
            rng=rng,
        )
        self.controller.add_listener(self._on_transition)
        log = self._log = StreamLogger(
            "streamfsm.pricing", component="pricing", correlation_id=self.correlation_id
        )
        self._store = PriceStore(
            self.controller.is_connected, self.max_age, self._clock, self._wall
        )
        self._membership = Membership(
            self.max_symbols,
            clock=self._clock,
            apply=self._apply,
            forget=self._forget,
            log=log,
            market=market,
        )
        self._refresher = None
        if refresher is not None:
            self._refresher = Refresher(
                refresher,
                members=lambda: self._membership.members,
                stale_symbols=self._stale_symbols,
                clock=self._clock,
                wall=self._wall,
                on_refresh=on_refresh,
                log=log,
                thread_name=f"streamfsm-refresh-{self.correlation_id}",
            )

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float | None = DEFAULT_START_TIMEOUT) -> None:
        """Start streaming (and the refresher thread, when configured); returns at once.

        Leaves the controller in ``connecting`` when symbols are tracked, else ``idle``.

        Raises:
            InvalidTransitionError: when already running.
            ControllerStoppedError: when the controller's loop does not come up in ``timeout``.
        """
        self.controller.start(timeout)
        if self._refresher is not None:
            self._refresher.start()

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the stream and the refresher; returns when neither runs any more. Idempotent.

        Snapshots stay readable afterwards, stale with ``StaleReason.DISCONNECTED``. A REST
        call in flight is waited for a bounded time (see :meth:`Refresher.stop`).

        Raises:
            ShutdownTimeoutError: when the controller's loop is still running after ``timeout``.
        """
        self.controller.close(timeout)
        if self._refresher is not None:
            self._refresher.stop()

    def health(self) -> Health:
        """The controller's health snapshot (state, counters, gaps, last error)."""
        return self.controller.health()

    @property
    def state(self) -> State:
        """The controller's state."""
        return self.controller.state

    @property
    def correlation_id(self) -> str:
        """The controller's correlation id, on every log event and journal record."""
        return self.controller.correlation_id

    def __enter__(self) -> PricingService:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"PricingService(state={self.controller.state.value!r}, "
            f"tracked={len(self._membership)}, max_symbols={self.max_symbols})"
        )

    # ------------------------------------------------------------ membership

    def track(self, symbols: Iterable[str] | str, *, priority: int = 0) -> TrackResult:
        """Track ``symbols`` at ``priority`` (higher is kept longer); safe from any thread.

        A symbol already tracked keeps its place in the insertion order and takes the new
        priority. Over ``max_symbols``, symbols are ranked by priority, then by insertion order,
        and the lowest-ranked ones are dropped (logged as ``symbol_evicted``).

        The change reaches the controller before this returns, unless another thread is handing
        changes over at that moment: that thread then carries this change too.

        A symbol the server refuses (405, over the feed's limit) stays tracked without quotes,
        reaches ``on_error``, and is asked for again at the next ``track()`` or ``untrack()``;
        set ``max_symbols`` within the feed's limit so that it does not happen.

        Raises:
            InvalidSymbolError: for an invalid symbol or the wildcard; nothing changes then.
            ConfigurationError: when ``priority`` is not an integer.
            ControllerStoppedError: when the controller's loop does not take the change.
        """
        return self._membership.track(symbols, _checks.priority(priority))

    def untrack(self, symbols: Iterable[str] | str) -> tuple[str, ...]:
        """Stop tracking ``symbols``; returns those that were tracked. Safe from any thread.

        Their snapshots are forgotten: :meth:`quote` returns None for them from now on.

        Raises:
            InvalidSymbolError: for an invalid symbol; nothing changes then.
            ControllerStoppedError: when the controller's loop does not take the change.
        """
        return self._membership.untrack(symbols)

    def tracked(self) -> dict[str, int]:
        """Tracked symbols and their priorities, highest rank first."""
        return self._membership.ranked()

    def _forget(self, symbol: str) -> None:
        # A quote already queued on the loop may store the symbol again; reads ignore entries
        # received before the symbol's (re)tracking, so that leftover is never served.
        self._store.forget(symbol)
        if self._refresher is not None:
            self._refresher.forget(symbol)

    def _apply(self, wanted: frozenset[str]) -> None:
        """Subscribe and unsubscribe so that the controller's desired quotes equal ``wanted``."""
        # The controller's own desired set, not a copy of it: a change the server refused
        # (405) left it, so the next hand-over asks again.
        desired = self.controller.desired().quotes
        if remove := desired - wanted:
            self.controller.unsubscribe(quotes=remove, trades=remove if self._trades else ())
        if add := wanted - desired:
            self.controller.subscribe(quotes=add, trades=add if self._trades else ())

    # ------------------------------------------------------------ reads, from any thread

    def quote(self, symbol: str) -> QuoteSnapshot | None:
        """The latest quote of ``symbol`` as of now; never blocks the stream.

        Returns:
            A snapshot, possibly stale (check ``stale`` before pricing from it); None when
            ``symbol`` is not tracked or has not been quoted since it was tracked. None is a
            normal answer in a live market (a symbol tracked a moment ago), so it is not an error.

        Raises:
            InvalidSymbolError: when ``symbol`` is not a string.
        """
        _checks.readable_symbol(symbol)
        member = self._membership.members.get(symbol)
        if member is None:
            return None
        rest = self._refresher.quotes.get(symbol) if self._refresher is not None else None
        return self._store.quote(symbol, member.since, self._clock(), rest)

    def quotes(self) -> dict[str, QuoteSnapshot]:
        """Snapshots of every tracked symbol that has one, highest rank first."""
        snapshots = {symbol: self.quote(symbol) for symbol in self.tracked()}
        return {symbol: snapshot for symbol, snapshot in snapshots.items() if snapshot is not None}

    def last_trade(self, symbol: str) -> TradeSnapshot | None:
        """The last trade of ``symbol`` as of now; None as for :meth:`quote`.

        Raises:
            LocalProtocolError: when the service was built with ``trades=False``.
            InvalidSymbolError: when ``symbol`` is not a string.
        """
        if not self._trades:
            raise LocalProtocolError("trades are not tracked; build the service with trades=True")
        _checks.readable_symbol(symbol)
        member = self._membership.members.get(symbol)
        if member is None:
            return None
        return self._store.last_trade(symbol, member.since, self._clock())

    def statistics(self) -> PricingStatistics:
        """Counters and the number of stale symbols, as of now."""
        snapshots = [self.quote(symbol) for symbol in self._membership.members]
        quoted = [snapshot for snapshot in snapshots if snapshot is not None]
        refresher = self._refresher
        return PricingStatistics(
            tracked=len(snapshots),
            quoted=len(quoted),
            stale=len(snapshots) - sum(1 for snapshot in quoted if not snapshot.stale),
            evictions=self._membership.evictions,
            refreshes=refresher.refreshes if refresher is not None else 0,
            refresh_failures=refresher.failures if refresher is not None else 0,
            rejected_prices=self._store.rejected,
        )

    # ------------------------------------------------------------ the loop thread

    def _on_quote(self, quote: Quote) -> None:
        """Hot path: store the quote dated by its arrival, then call the user's hook.

        A quote with a price that is not a finite number >= 0 is skipped and counted.
        """
        if self._store.put_quote(quote, self._arrival()) and self._user_quote is not None:
            self._user_quote(quote)

    def _on_trade(self, trade: Trade) -> None:
        """Hot path: one dict write, then the user's hook (dated and checked as quotes are)."""
        if self._store.put_trade(trade, self._arrival()) and self._user_trade is not None:
            self._user_trade(trade)

    def _arrival(self) -> float:
        """The monotonic time the frame being delivered arrived (now, outside a delivery)."""
        arrival = self.controller.arrival_time()
        return self._clock() if arrival is None else arrival

    def _on_transition(self, record: TransitionRecord) -> None:
        """Note when the session is lost; wake the refresher on losses and failed attempts."""
        lost = record.src == _SUBSCRIBED and record.dst != _SUBSCRIBED
        if lost:
            self._store.session_lost(record.monotonic)
        if self._refresher is not None and (lost or record.trigger == "attempt_failed"):
            self._refresher.wake()

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
        if self._refresher is None:
            raise LocalProtocolError("no refresher configured; pass refresher=... to the service")
        return self._refresher.refresh(None if symbols is None else self._membership.valid(symbols))

    def _stale_symbols(self) -> tuple[str, ...]:
        snapshots = {symbol: self.quote(symbol) for symbol in self.tracked()}
        return tuple(symbol for symbol, shot in snapshots.items() if shot is None or shot.stale)
