"""The resilience policies a :class:`~streamfsm.config.StreamConfig` carries, each a frozen value.

Backoff between connection attempts, the circuit breaker over consecutive failed sessions, and the
stale-connection watchdog's per-channel thresholds with each market's defaults. They are separate
values so they can be swapped whole; :mod:`streamfsm._core.policies` is what runs them. An invalid
value raises :class:`~streamfsm.errors.ConfigurationError` naming the field.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

from streamfsm._validate import count, factor, member, seconds
from streamfsm.errors import ConfigurationError
from streamfsm.markets import WIRE_NAMES, Market

__all__ = [
    "CHANNEL_NAMES",
    "MARKET_STALE_DEFAULTS",
    "MIN_STALE_THRESHOLD",
    "BackoffPolicy",
    "BreakerPolicy",
    "Jitter",
    "StalePolicy",
    "default_stale",
]

#: The shortest stale threshold accepted: gaps of a second between ticks are normal even on
#: liquid names, so a shorter threshold would declare every healthy session stale.
MIN_STALE_THRESHOLD: Final = 1.0


class Jitter(enum.StrEnum):
    """Backoff jitter variants (Brooker, "Exponential Backoff And Jitter", AWS 2015)."""

    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


_JITTER = member(Jitter, "jitter")


def _to_jitter(value: object) -> Jitter:
    return _JITTER(value)


@attrs.frozen(kw_only=True)
class BackoffPolicy:
    """Exponential backoff with jitter between connection attempts.

    With ``ceiling(n) = min(maximum, initial * multiplier ** (n - 1))`` for the n-th consecutive
    failure (n >= 1), full jitter waits within ``[0, ceiling(n)]``, equal jitter within its upper
    half, and decorrelated jitter within ``[initial, 3 * previous]`` capped at ``maximum``. The
    count resets only after a healthy session.
    """

    #: 1 s first ceiling, as gRPC and alpaca-py: quick recovery from a one-off drop.
    initial: float = attrs.field(default=1.0, validator=seconds())
    #: Doubling, as alpaca-py; gRPC's 1.6 is gentler but slower to spread out.
    multiplier: float = attrs.field(default=2.0, validator=factor())
    #: 30 s cap, as alpaca-py: a desk would rather retry twice a minute than wait gRPC's 120 s.
    maximum: float = attrs.field(default=30.0, validator=seconds())
    #: Full jitter spends the least total work for the herd (AWS analysis).
    jitter: Jitter = attrs.field(default=Jitter.FULL, converter=_to_jitter)

    def __attrs_post_init__(self) -> None:
        if self.maximum < self.initial:
            raise ConfigurationError(
                "maximum", f"a number >= initial ({self.initial:g})", self.maximum
            )


@attrs.frozen(kw_only=True)
class BreakerPolicy:
    """The circuit breaker: trips after consecutive failed sessions, then cools down.

    While open, no connection is attempted. When the cool-down elapses exactly one probe attempt
    runs (half-open); its failure re-opens the breaker with the cool-down multiplied.
    """

    #: Five consecutive failures, the default of pybreaker, aiobreaker and circuitbreaker.
    failure_threshold: int = attrs.field(default=5, validator=count())
    #: 60 s, the default of resilience4j and pybreaker.
    cooldown: float = attrs.field(default=60.0, validator=seconds())
    #: Each failed probe doubles the cool-down, so a long outage costs few attempts.
    cooldown_multiplier: float = attrs.field(default=2.0, validator=factor())
    #: Ten minutes at most between probes, so recovery is noticed within a trading window.
    max_cooldown: float = attrs.field(default=600.0, validator=seconds())

    def __attrs_post_init__(self) -> None:
        if self.max_cooldown < self.cooldown:
            raise ConfigurationError(
                "max_cooldown", f"a number >= cooldown ({self.cooldown:g})", self.max_cooldown
            )


_threshold = seconds(low=MIN_STALE_THRESHOLD, optional=True)
#: Every subscription channel, each a threshold of :class:`StalePolicy`.
CHANNEL_NAMES: Final = tuple(WIRE_NAMES)


@attrs.frozen(kw_only=True)
class StalePolicy:
    """The stale-connection watchdog: per-channel silence thresholds in seconds.

    Only market data counts (acks, errors and pings do not). A channel with no subscribed symbols,
    or whose threshold is None, is not watched. When a stale reconnect finds the market quiet too
    (the new session also stays silent), the thresholds grow by ``escalation`` up to
    ``max_threshold``, so a legitimately quiet market does not churn, and reset when data flows.
    """

    #: Quotes of any liquid symbol tick many times a minute in session; 60 s of silence is a fault.
    quotes: float | None = attrs.field(default=60.0, validator=_threshold)
    #: Trades can be minutes apart on thin symbols; not watched unless asked.
    trades: float | None = attrs.field(default=None, validator=_threshold)
    #: Minute bars come only for minutes with trades; not watched unless asked.
    bars: float | None = attrs.field(default=None, validator=_threshold)
    #: Updated and daily bars follow late trades and the day's trading: not watched unless asked.
    updated_bars: float | None = attrs.field(default=None, validator=_threshold)
    daily_bars: float | None = attrs.field(default=None, validator=_threshold)
    #: Statuses and LULD bands change a few times a day: never a sign of a mute socket.
    statuses: float | None = attrs.field(default=None, validator=_threshold)
    lulds: float | None = attrs.field(default=None, validator=_threshold)
    #: Crypto order books update many times a second on liquid pairs; not watched unless asked.
    orderbooks: float | None = attrs.field(default=None, validator=_threshold)
    #: News is quiet for hours: never judged stale unless asked.
    news: float | None = attrs.field(default=None, validator=_threshold)
    #: Doubling after each quiet reconnect keeps off-hours churn logarithmic.
    escalation: float = attrs.field(default=2.0, validator=factor())
    #: At most one quiet-market reconnect every 15 minutes.
    max_threshold: float = attrs.field(default=900.0, validator=seconds(low=MIN_STALE_THRESHOLD))

    def __attrs_post_init__(self) -> None:
        for channel in CHANNEL_NAMES:
            value = self.threshold(channel)
            if value is not None and value > self.max_threshold:
                expected = f"a threshold <= max_threshold ({self.max_threshold:g})"
                raise ConfigurationError(channel, expected, value)

    def threshold(self, channel: str) -> float | None:
        """The threshold for ``channel`` (a subscription channel); None: not watched."""
        value: float | None = getattr(self, channel, None)
        return value


#: Each market's watchdog defaults (see docs/decisions.md, "Markets"). Stocks: quotes of a liquid
#: symbol tick many times a minute in session. Crypto trades around the clock, so quotes and order
#: books are watched at all hours with the same 60 s. Options quotes are the heaviest channel
#: (market makers requote with every move of the underlying): 30 s. News: nothing is watched.
MARKET_STALE_DEFAULTS: Final[dict[Market, dict[str, Any]]] = {
    Market.STOCKS: {"quotes": 60.0},
    Market.CRYPTO: {"quotes": 60.0, "orderbooks": 60.0},
    Market.OPTIONS: {"quotes": 30.0},
    Market.NEWS: {"quotes": None},
}


def default_stale(market: Market | str) -> StalePolicy:
    """The stale-watchdog policy a :class:`StreamConfig` of ``market`` gets by default."""
    return StalePolicy(**MARKET_STALE_DEFAULTS[Market(market)])
