"""Symbol sets per channel, and the bookkeeping that keeps the server's set equal to the caller's.

:class:`Subscription` is an immutable value: symbols per channel (quotes, trades, bars), validated
on the way in. :class:`SubscriptionBook` tracks, for one controller, what the caller wants
(``desired``), what the server acknowledged on the current connection (``confirmed``) and what is
in flight, in the manner of NautilusTrader's subscription state. After a reconnect the whole
``desired`` set is requested again; while a session is live only the difference is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from streamfsm.errors import InvalidSymbolError

__all__ = [
    "CHANNELS",
    "EMPTY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "PendingChange",
    "Subscription",
    "SubscriptionBook",
    "validate_symbol",
]

#: The market-data channels streamfsm subscribes, in wire order.
CHANNELS: Final = ("trades", "quotes", "bars")
#: Upper-case tickers with class suffixes (BRK.B, BF/B, XYZ-W) or the ``*`` wildcard.
_SYMBOL: Final = re.compile(r"^(\*|[A-Z0-9][A-Z0-9./\-]{0,20})$")


def validate_symbol(value: object) -> str:
    """Return ``value`` as a valid symbol.

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
    """Symbols per channel. Empty by default; set operations return new values."""

    trades: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    quotes: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)
    bars: frozenset[str] = attrs.field(default=frozenset(), converter=_symbols)

    @classmethod
    def from_wire(cls, message: Mapping[str, object]) -> Subscription:
        """Build from a subscription ack's channel lists, ignoring channels streamfsm does not use.

        Raises:
            InvalidSymbolError: when a listed symbol is not valid.
        """
        lists: dict[str, frozenset[str]] = {}
        for channel in CHANNELS:
            value = message.get(channel) or ()
            if not isinstance(value, list | tuple | frozenset | set):
                raise InvalidSymbolError(value, f"{channel} must be a list of symbols")
            lists[channel] = _symbols(value)
        return cls(**lists)

    def to_wire(self) -> dict[str, list[str]]:
        """Channel lists for a subscribe or unsubscribe message, sorted, empty channels left out."""
        return {
            channel: sorted(getattr(self, channel))
            for channel in CHANNELS
            if getattr(self, channel)
        }

    def __bool__(self) -> bool:
        return bool(self.trades or self.quotes or self.bars)

    def __or__(self, other: Subscription) -> Subscription:
        return Subscription(
            self.trades | other.trades, self.quotes | other.quotes, self.bars | other.bars
        )

    def __sub__(self, other: Subscription) -> Subscription:
        return Subscription(
            self.trades - other.trades, self.quotes - other.quotes, self.bars - other.bars
        )

    def __and__(self, other: Subscription) -> Subscription:
        return Subscription(
            self.trades & other.trades, self.quotes & other.quotes, self.bars & other.bars
        )

    def channel(self, name: str) -> frozenset[str]:
        """The symbols of channel ``name``."""
        symbols: frozenset[str] = getattr(self, name)
        return symbols

    @property
    def symbols(self) -> frozenset[str]:
        """Every symbol on any channel."""
        return self.trades | self.quotes | self.bars

    def count(self) -> int:
        """How many (channel, symbol) pairs there are."""
        return len(self.trades) + len(self.quotes) + len(self.bars)


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
