"""Which symbols a pricing service tracks, at what priority, and how the set reaches the stream.

:class:`Membership` publishes the tracked set as a new dict on every change (copy-on-write)
under a private lock; the stream's loop and the readers only ever read the published dict, so
they never take that lock. Over ``max_symbols`` the lowest priority goes first, and among equal
priorities the most recently tracked (first come, first kept).

The hand-over to the controller is a separate step: only one thread at a time hands changes
over, and it loops until the controller's desired set matches the membership; a caller that finds
another thread handing over returns at once and leaves its change to that thread. So a change
never blocks the stream's loop and never deadlocks, even when made from inside a callback.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import attrs

from streamfsm._core.subscriptions import Subscription, check_market, validate_symbol
from streamfsm.errors import InvalidSymbolError, StreamError
from streamfsm.logs import StreamLogger
from streamfsm.markets import Market

__all__ = ["Member", "Membership", "TrackResult", "explicit_symbols"]

#: The wildcard subscribes everything; a priced universe must be explicit to be bounded.
WILDCARD: Final = "*"


@attrs.frozen(kw_only=True)
class TrackResult:
    """What one :meth:`~streamfsm.pricing.service.PricingService.track` call changed.

    Attributes:
        added: symbols tracked from now on.
        evicted: symbols that were tracked and were dropped to respect ``max_symbols``.
        refused: symbols of this call that did not fit under ``max_symbols``.
    """

    added: tuple[str, ...]
    evicted: tuple[str, ...]
    refused: tuple[str, ...]


@attrs.frozen
class Member:
    """One tracked symbol: its priority, its insertion order and when tracking began.

    Attributes:
        priority: higher is kept longer.
        order: insertion order, the tie-breaker among equal priorities.
        since: monotonic time tracking (re)began; data received earlier is never served.
    """

    priority: int
    order: int
    since: float


def explicit_symbols(
    values: Iterable[str] | str, market: Market = Market.STOCKS
) -> tuple[str, ...]:
    """Validated symbols of ``market`` in the caller's order, without duplicates.

    Raises:
        InvalidSymbolError: for an invalid symbol, one outside the market's grammar (``AAPL`` on
            crypto, where pairs look like ``BTC/USD``; options take OCC symbols), or the wildcard.
    """
    if isinstance(values, bytes | bytearray | Mapping) or not isinstance(values, Iterable | str):
        raise InvalidSymbolError(values, "expected a symbol or a collection of symbols")
    names = (values,) if isinstance(values, str) else tuple(values)
    result: dict[str, None] = {}
    for value in names:
        symbol = validate_symbol(value)
        if symbol == WILDCARD:
            raise InvalidSymbolError(symbol, "a pricing service tracks explicit symbols only")
        result[symbol] = None
    check_market(Subscription(quotes=tuple(result)), market)
    return tuple(result)


def _rank(member: Member) -> tuple[int, int]:
    """Sort key: higher priority first, then earlier insertion first."""
    return (-member.priority, member.order)


class Membership:
    """The tracked symbols, their priorities and the hand-over of changes to the controller.

    Args:
        max_symbols: most symbols tracked at once, None for no limit (validated by the caller).
        clock: monotonic seconds, stamped as :attr:`Member.since`.
        apply: makes the controller's desired set equal to the symbols it is given; may raise
            :class:`~streamfsm.errors.StreamError`, and is then called again at the next change.
        forget: drops what is stored for a symbol that left the membership.
        log: the service's logger, for evictions.
        market: the stream's market, whose symbol grammar every symbol must follow.
    """

    def __init__(
        self,
        max_symbols: int | None,
        *,
        clock: Callable[[], float],
        apply: Callable[[frozenset[str]], None],
        forget: Callable[[str], None],
        log: StreamLogger,
        market: Market = Market.STOCKS,
    ) -> None:
        self.max_symbols = max_symbols
        self._clock = clock
        self._apply = apply
        self._forget = forget
        self._log = log
        self._market = market
        # Replaced whole under _lock; every other thread reads the published dict without it.
        self._lock = threading.Lock()
        self._members: dict[str, Member] = {}
        self._order = itertools.count()
        self._dirty = False
        #: Symbols dropped or refused because of ``max_symbols``, in total.
        self.evictions = 0
        # Held by the one thread handing changes over to the controller.
        self._handover = threading.Lock()

    @property
    def members(self) -> Mapping[str, Member]:
        """The published membership; never changes after it was read (a new dict replaces it)."""
        return self._members

    def __len__(self) -> int:
        return len(self._members)

    def track(self, symbols: Iterable[str] | str, priority: int) -> TrackResult:
        """Track ``symbols`` at ``priority``, evict over ``max_symbols``, hand the change over.

        A symbol already tracked keeps its place in the insertion order and takes the new
        priority. Every symbol dropped is forgotten and logged (``symbol_evicted``).

        Raises:
            InvalidSymbolError: for an invalid symbol or the wildcard; nothing changes then.
            StreamError: when the controller does not take the change (see :meth:`hand_over`).
        """
        names = explicit_symbols(symbols, self._market)
        added: list[str] = []
        with self._lock:
            members = dict(self._members)
            now = self._clock()
            for name in names:
                current = members.get(name)
                if current is None:
                    members[name] = Member(priority, next(self._order), now)
                    added.append(name)
                elif current.priority != priority:
                    members[name] = attrs.evolve(current, priority=priority)
            dropped = {name: members.pop(name).priority for name in self._over_limit(members)}
            self.evictions += len(dropped)
            self._members = members
            self._dirty = True
        for name, dropped_priority in dropped.items():
            self._forget(name)
            self._log.warning(
                "symbol_evicted",
                symbol=name,
                priority=dropped_priority,
                reason="max_symbols",
                limit=self.max_symbols,
                refused=name in added,
                requested=list(names),
            )
        self.hand_over()
        return TrackResult(
            added=tuple(name for name in added if name not in dropped),
            evicted=tuple(name for name in dropped if name not in added),
            refused=tuple(name for name in dropped if name in added),
        )

    def untrack(self, symbols: Iterable[str] | str) -> tuple[str, ...]:
        """Stop tracking ``symbols``, forget them, hand the change over; returns those tracked.

        Raises:
            InvalidSymbolError: for an invalid symbol; nothing changes then.
            StreamError: when the controller does not take the change (see :meth:`hand_over`).
        """
        names = explicit_symbols(symbols, self._market)
        with self._lock:
            members = dict(self._members)
            removed = tuple(name for name in names if members.pop(name, None) is not None)
            self._members = members
            self._dirty = True
        for name in removed:
            self._forget(name)
        self.hand_over()
        return removed

    def valid(self, symbols: Iterable[str] | str) -> tuple[str, ...]:
        """``symbols`` validated as :func:`explicit_symbols` does, for this market.

        Raises:
            InvalidSymbolError: for an invalid symbol, one of another market, or the wildcard.
        """
        return explicit_symbols(symbols, self._market)

    def ranked(self) -> dict[str, int]:
        """Tracked symbols and their priorities, highest rank first."""
        members = self._members
        return {
            name: members[name].priority
            for name in sorted(members, key=lambda name: _rank(members[name]))
        }

    def _over_limit(self, members: Mapping[str, Member]) -> list[str]:
        if self.max_symbols is None or len(members) <= self.max_symbols:
            return []
        ranked = sorted(members, key=lambda name: _rank(members[name]))
        return ranked[self.max_symbols :]

    def hand_over(self) -> None:
        """Make the controller's desired set equal to the membership (see the module docstring).

        Raises:
            StreamError: whatever ``apply`` raised; the change is retried at the next call.
        """
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
                wanted = frozenset(self._members)
            try:
                self._apply(wanted)
            except StreamError:
                with self._lock:
                    self._dirty = True  # the next call tries again
                raise
