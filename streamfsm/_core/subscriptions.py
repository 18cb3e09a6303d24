"""Symbol sets per channel, and the bookkeeping that keeps the server's set equal to the caller's.

:class:`Subscription` is an immutable value: symbols per channel (trades, quotes, bars, updated and
daily bars, statuses, LULD bands, order books, news), validated on the way in; :func:`check_market`
holds it to one market's channels and symbol grammar. :class:`SubscriptionBook` tracks, for one
controller, what the caller wants (``desired``), what the server acknowledged on the current
connection (``confirmed``) and what is in flight, in the manner of NautilusTrader's subscription
state. After a reconnect the whole ``desired`` set is requested again; while a session is live only
the difference is sent.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import attrs

from streamfsm.errors import InvalidSymbolError
from streamfsm.markets import MARKETS, WILDCARD, WIRE_NAMES, Market

__all__ = [
    "CHANNELS",
    "EMPTY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PendingChange",
    "Subscription",
    "SubscriptionBook",
    "check_market",
    "validate_symbol",
]

#: Every subscription channel, in the order of Alpaca's ack; ``subscribe()`` keyword names.
CHANNELS: Final = tuple(WIRE_NAMES)
#: The wire name of each channel (``updated_bars`` -> ``updatedBars``) and back.
_WIRE: Final = dict(WIRE_NAMES)
_FROM_WIRE: Final = {wire: channel for channel, wire in WIRE_NAMES.items()}
#: Symbols of any market (tickers, BTC/USD pairs, OCC option symbols) or the ``*`` wildcard;
#: :func:`check_market` applies one market's own grammar.
_SYMBOL: Final = re.compile(r"^(\*|[A-Z0-9][A-Z0-9./\-]{0,20})$")


def validate_symbol(value: object) -> str:
    """Return ``value`` as a valid symbol of some market.

    Raises:
        InvalidSymbolError: when it is not a string of upper-case letters, digits and ``./-``
            (at most 21 characters), nor ``*``.
    """
    if not isinstance(value, str):
        raise InvalidSymbolError(value, "a symbol must be a string")
    if not _SYMBOL.match(value):
        raise InvalidSymbolError(value, "expected upper-case letters, digits, '.', '/', '-' or '*'")
    return value


def _symbols(values: Iterable[str] | str) -> frozenset[str]:
    if isinstance(values, str):
        values = (values,)
    if isinstance(values, bytes | bytearray | Mapping) or not isinstance(values, Iterable):
        raise InvalidSymbolError(values, "expected a symbol or a collection of symbols")
    return frozenset(validate_symbol(value) for value in values)


@attrs.frozen
class Subscription:
    """Symbols per channel. Empty by default; set operations return new values.

    One attribute per channel of :data:`CHANNELS` (alpaca-py's names: ``updated_bars``,
    ``daily_bars``...). Corrections and cancel errors are not channels: they come with ``trades``.
    """

    trades: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    quotes: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    bars: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    updated_bars: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    daily_bars: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    statuses: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    lulds: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    orderbooks: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    news: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)

    @classmethod
    def from_wire(cls, message: Mapping[str, object]) -> Subscription:
        """Build from a subscription ack's channel lists (wire names), ignoring other keys.

        Raises:
            InvalidSymbolError: when a listed symbol is not valid.
        """
        lists: dict[str, frozenset[str]] = {}
        for wire, channel in _FROM_WIRE.items():
            value = message.get(wire) or ()
            if not isinstance(value, list | tuple | frozenset | set):
                raise InvalidSymbolError(value, f"{wire} must be a list of symbols")
            lists[channel] = _symbols(value)
        return cls(**lists)

    def to_wire(self) -> dict[str, list[str]]:
        """Channel lists for a subscribe or unsubscribe message, sorted, empty channels left out."""
        return {
            _WIRE[channel]: sorted(getattr(self, channel))
            for channel in CHANNELS
            if getattr(self, channel)
        }

    def _combine(self, other: Subscription, op: Callable[..., frozenset[str]]) -> Subscription:
        return Subscription(*(op(getattr(self, ch), getattr(other, ch)) for ch in CHANNELS))

    def __bool__(self) -> bool:
        return any(getattr(self, channel) for channel in CHANNELS)

    def __or__(self, other: Subscription) -> Subscription:
        return self._combine(other, operator.or_)

    def __sub__(self, other: Subscription) -> Subscription:
        return self._combine(other, operator.sub)

    def __and__(self, other: Subscription) -> Subscription:
        return self._combine(other, operator.and_)

    def channel(self, name: str) -> frozenset[str]:
        """The symbols of channel ``name``."""
        symbols: frozenset[str] = getattr(self, name)
        return symbols

    @property
    def symbols(self) -> frozenset[str]:
        """Every symbol on any channel."""
        return frozenset().union(*(getattr(self, channel) for channel in CHANNELS))

    def count(self) -> int:
        """How many (channel, symbol) pairs there are."""
        return sum(len(getattr(self, channel)) for channel in CHANNELS)


def check_market(subscription: Subscription, market: Market | str) -> None:
    """Check that ``subscription`` is one ``market``'s stream can serve.

    Raises:
        InvalidSymbolError: for a channel the market does not have (``orderbooks`` on stocks),
            a symbol outside the market's grammar (``AAPL`` on crypto, where pairs look like
            ``BTC/USD``; options take OCC symbols such as ``AAPL240315C00172500``), or ``*`` where
            Alpaca refuses it (option quotes).
    """
    spec = MARKETS[Market(market)]
    for channel in CHANNELS:
        symbols = subscription.channel(channel)
        if not symbols:
            continue
        if channel not in spec.channels:
            offered = ", ".join(spec.channels)
            raise InvalidSymbolError(
                sorted(symbols)[0], f"the {spec.market} stream has no {channel} (only {offered})"
            )
        for symbol in symbols:
            if symbol == WILDCARD:
                if channel in spec.no_wildcard:
                    raise InvalidSymbolError(
                        symbol, f"'*' is not allowed for {spec.market} {channel}"
                    )
            elif not spec.is_symbol(symbol):
                raise InvalidSymbolError(symbol, f"not a {spec.market} symbol")


EMPTY: Final = Subscription()


@attrs.frozen
class PendingChange:
    """One subscribe or unsubscribe message awaiting the server's answer."""

    action: str
    symbols: Subscription


SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"


@attrs.define
class SubscriptionBook:
    """What the caller wants, what the server confirmed, and the one change in flight.

    Alpaca's acks carry no request id, so at most one change is in flight per connection and an
    ack or an error answers that one. ``desired`` is what a new connection asks for in full; while
    a session is live only the difference is sent, one message at a time.
    """

    desired: Subscription = EMPTY
    confirmed: Subscription = EMPTY
    in_flight: PendingChange | None = None

    def want(self, add: Subscription = EMPTY, remove: Subscription = EMPTY) -> Subscription:
        """Record a change of the caller's wishes and return the new desired set."""
        self.desired = (self.desired | add) - remove
        return self.desired

    def next_change(self) -> PendingChange | None:
        """The next message that brings the server towards ``desired``, now in flight.

        Subscriptions go before unsubscriptions; None when in sync or a change is in flight.
        """
        if self.in_flight is not None:
            return None
        add, remove = self.desired - self.confirmed, self.confirmed - self.desired
        if add:
            self.in_flight = PendingChange(SUBSCRIBE, add)
        elif remove:
            self.in_flight = PendingChange(UNSUBSCRIBE, remove)
        return self.in_flight

    def opened(self) -> PendingChange | None:
        """A new connection subscribes the whole desired set: that request is now in flight."""
        self.confirmed = EMPTY
        self.in_flight = PendingChange(SUBSCRIBE, self.desired) if self.desired else None
        return self.in_flight

    def acknowledged(self, server_set: Subscription) -> Subscription:
        """The server's ack lists its whole current set; that is what is confirmed now.

        Returns:
            The part of the change in flight the ack shows the server did not apply (symbols it
            left out of a subscribe, or kept despite an unsubscribe), normally empty. It is
            treated like a refusal, so the same request is not sent again and again.
        """
        change = self.in_flight
        self.confirmed = server_set
        self.in_flight = None
        if change is None:
            return EMPTY
        if change.action == SUBSCRIBE:
            ignored = change.symbols - server_set
            self.desired = self.desired - ignored
        else:
            ignored = change.symbols & server_set
            self.desired = self.desired | ignored
        return ignored

    def rejected(self) -> None:
        """The server refused the change in flight (405, 400, 410); its set is unchanged.

        The refused symbols leave the caller's wish (for a refused unsubscribe, the symbols stay
        wished for), so they are not requested again on every reconnect.
        """
        change = self.in_flight
        self.in_flight = None
        if change is None:
            return
        if change.action == SUBSCRIBE:
            self.desired = self.desired - (change.symbols - self.confirmed)
        else:
            self.desired = self.desired | (change.symbols & self.confirmed)

    @property
    def in_sync(self) -> bool:
        """True when nothing is in flight and the confirmed set equals the desired set."""
        return self.in_flight is None and self.confirmed == self.desired
