"""Client requests as the server sees them, and the subscription set they change. Pure.

A decoded client message becomes an :class:`AuthRequest` or a :class:`SubscriptionChange`, or
:func:`parse_request` raises :class:`Rejected` with the Alpaca error code to answer:

* 400 (invalid syntax): not an object, unknown or missing ``action``, ``key``/``secret`` not
  strings, a channel value that is not a list of the market's symbols, a key no Alpaca stream
  knows.
* 410 (invalid subscribe action for this feed): a channel of another Alpaca stream
  (``orderbooks`` on stocks, ``news`` on crypto, ...).
* 413 (star subscription is not allowed for option quotes): ``*`` where the market refuses it.

``corrections`` and ``cancelErrors`` follow ``trades`` on the stock stream: a client cannot
subscribe them itself, so naming them is accepted and ignored, and the ack mirrors ``trades`` in
them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import attrs

from streamfsm.markets import MARKETS, WIRE_NAMES, Market, MarketSpec

__all__ = [
    "ALL_CHANNELS",
    "DERIVED_CHANNELS",
    "STOCK_CHANNELS",
    "WILDCARD",
    "Action",
    "AuthRequest",
    "Rejected",
    "SubscriptionChange",
    "SubscriptionSet",
    "parse_request",
]

#: Every channel of every stream, by its wire name, in the order of Alpaca's subscription acks.
ALL_CHANNELS: Final = tuple(WIRE_NAMES.values())
#: Channels the stock stream serves, by wire name.
STOCK_CHANNELS: Final = tuple(WIRE_NAMES[name] for name in MARKETS[Market.STOCKS].channels)
#: Channels derived from ``trades`` on the stock stream; the ack repeats the trades list.
DERIVED_CHANNELS: Final = ("corrections", "cancelErrors")
#: All symbols of the simulator's universe.
WILDCARD: Final = "*"

_INVALID_SYNTAX: Final = 400
_INVALID_ACTION: Final = 410
_STAR_NOT_ALLOWED: Final = 413


def wire_channels(spec: MarketSpec) -> tuple[str, ...]:
    """The wire names of ``spec``'s channels, in ack order."""
    return tuple(WIRE_NAMES[name] for name in spec.channels)


class Rejected(Exception):  # noqa: N818 - a verdict carrying a code, not a failure of ours
    """A client request the server answers with an Alpaca error code.

    Attributes:
        code: the error code to send (400 or 410 from :func:`parse_request`).
        detail: why, for logs and tests; never sent to the client.
    """

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


class Action(enum.StrEnum):
    """The subscription actions."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


@attrs.frozen
class AuthRequest:
    """``{"action": "auth", "key": ..., "secret": ...}``. The secret never shows in ``repr``."""

    key: str
    secret: str = attrs.field(repr=False)


def _read_only(value: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(value))


@attrs.frozen
class SubscriptionChange:
    """A subscribe or unsubscribe request: symbols per stock channel, in request order."""

    action: Action
    channels: Mapping[str, tuple[str, ...]] = attrs.field(converter=_read_only)


#: Channels of Alpaca streams the simulator does not serve (imbalances, the SIP's indicative
#: quotes): 410 everywhere.
_OTHER_STREAM_CHANNELS: Final = frozenset({"imbalances", "indicative"})
_CHANNEL_OF_WIRE: Final = {wire: channel for channel, wire in WIRE_NAMES.items()}


def _symbols(channel: str, value: object, spec: MarketSpec) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Rejected(_INVALID_SYNTAX, f"{channel} must be a list of symbols")
    for symbol in value:
        if symbol != WILDCARD and not spec.is_symbol(symbol):
            raise Rejected(_INVALID_SYNTAX, f"invalid symbol in {channel}")
    return tuple(dict.fromkeys(value))


def parse_request(message: object, spec: MarketSpec) -> AuthRequest | SubscriptionChange:
    """Classify one decoded client message sent to ``spec``'s stream.

    Raises:
        Rejected: with code 400, 410 or 413; see the module docstring.
    """
    if not isinstance(message, dict):
        raise Rejected(_INVALID_SYNTAX, "a client message must be an object")
    action = message.get("action")
    if action == "auth":
        key, secret = message.get("key"), message.get("secret")
        if not isinstance(key, str) or not isinstance(secret, str):
            raise Rejected(_INVALID_SYNTAX, "auth needs string key and secret")
        return AuthRequest(key, secret)
    if action not in (Action.SUBSCRIBE, Action.UNSUBSCRIBE):
        raise Rejected(_INVALID_SYNTAX, "unknown or missing action")
    channels: dict[str, tuple[str, ...]] = {}
    served = wire_channels(spec)
    for name, value in message.items():
        if name == "action":
            continue
        if name in DERIVED_CHANNELS and spec.market is Market.STOCKS:
            _symbols(name, value, spec)
            continue
        if (name in ALL_CHANNELS and name not in served) or name in _OTHER_STREAM_CHANNELS:
            raise Rejected(_INVALID_ACTION, f"{name} is not offered by the {spec.market} stream")
        if name not in served:
            raise Rejected(_INVALID_SYNTAX, "unknown key in a subscription message")
        symbols = _symbols(name, value, spec)
        if WILDCARD in symbols and _CHANNEL_OF_WIRE[name] in spec.no_wildcard:
            raise Rejected(_STAR_NOT_ALLOWED, f"'*' is not allowed for {spec.market} {name}")
        channels[name] = symbols
    return SubscriptionChange(Action(action), channels)


def _frozen(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


@attrs.frozen
class SubscriptionSet:
    """The symbols one connection is subscribed to, per channel (wire names). Immutable."""

    trades: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    quotes: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    bars: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    updatedBars: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)  # noqa: N815
    dailyBars: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)  # noqa: N815
    statuses: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    lulds: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    orderbooks: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    news: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)

    def channel(self, name: str) -> frozenset[str]:
        """The symbols of channel ``name`` (a wire name)."""
        symbols: frozenset[str] = getattr(self, name)
        return symbols

    def apply(self, change: SubscriptionChange) -> SubscriptionSet:
        """The set after ``change``: subscribe adds, unsubscribe removes, per channel."""
        updated: dict[str, frozenset[str]] = {}
        for name, symbols in change.channels.items():
            current = self.channel(name)
            if change.action is Action.SUBSCRIBE:
                updated[name] = current | frozenset(symbols)
            else:
                updated[name] = current - frozenset(symbols)
        return attrs.evolve(self, **updated)

    def limited_count(self, spec: MarketSpec) -> int:
        """Entries counted against ``spec``'s symbol limit (``*`` counts once)."""
        return sum(len(self.channel(WIRE_NAMES[name])) for name in spec.limited)

    def ack(self, spec: MarketSpec) -> list[dict[str, Any]]:
        """The subscription frame of ``spec``'s stream: the entire current set, symbols sorted."""
        message: dict[str, Any] = {"T": "subscription"}
        for name in wire_channels(spec):
            message[name] = sorted(self.channel(name))
        if spec.market is Market.STOCKS:
            for name in DERIVED_CHANNELS:
                message[name] = sorted(self.trades)
        return [message]

    def pairs(self, universe: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """The (channel, symbol) pairs that get data, ``*`` expanded to ``universe``."""
        result: dict[tuple[str, str], None] = {}
        for name in ALL_CHANNELS:
            for symbol in sorted(self.channel(name)):
                expanded = universe if symbol == WILDCARD else (symbol,)
                for item in expanded:
                    result[(name, item)] = None
        return tuple(result)
