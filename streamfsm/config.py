"""Configuration: every tunable number of streamfsm lives here, with the reason for its default.

All classes are frozen ``attrs`` values validated at construction. An invalid value raises
:class:`~streamfsm.errors.ConfigurationError` naming the field, what was expected and what came.
Policies (backoff, breaker, stale watchdog) are separate values so they can be swapped whole.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import attrs

from streamfsm.errors import ConfigurationError

__all__ = [
    "ALPACA_STREAM_BASE",
    "MAX_SUBSCRIBE_FRAGMENT",
    "BackoffPolicy",
    "BreakerPolicy",
    "Encoding",
    "Feed",
    "Jitter",
    "ModelMode",
    "OverflowPolicy",
    "StalePolicy",
    "StreamConfig",
]

#: Alpaca's market-data stream host (alpaca-py's ``BaseURL.MARKET_DATA_STREAM``).
ALPACA_STREAM_BASE: Final = "wss://stream.data.alpaca.markets"
#: Subscribe payloads are sent as fragments of at most this many bytes, as alpaca-py does.
MAX_SUBSCRIBE_FRAGMENT: Final = 32_768


class Feed(enum.StrEnum):
    """The stock data feeds served at ``/v2/{feed}``."""

    IEX = "iex"
    SIP = "sip"
    DELAYED_SIP = "delayed_sip"
    TEST = "test"


class Encoding(enum.StrEnum):
    """Frame encoding, chosen by the ``Content-Type`` header of the WebSocket handshake."""

    MSGPACK = "msgpack"
    JSON = "json"


class ModelMode(enum.StrEnum):
    """What market-data callbacks receive.

    ``alpaca``: alpaca-py's own ``Quote``/``Trade``/``Bar`` (drop-in for ``StockDataStream``).
    ``fast``: streamfsm's frozen structs with the same attribute names, about ten times cheaper.
    ``raw``: dicts with the wire keys (alpaca-py's ``raw_data=True``).
    """

    ALPACA = "alpaca"
    FAST = "fast"
    RAW = "raw"


class Jitter(enum.StrEnum):
    """Backoff jitter variants (Brooker, "Exponential Backoff And Jitter", AWS 2015)."""

    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


class OverflowPolicy(enum.StrEnum):
    """What the dispatch queue does when a consumer falls behind by more than its bound.

    ``conflate``: quotes that have a newer quote of the same symbol queued behind them are dropped
    first (the latest quote per symbol wins); if that is not enough, the oldest messages go.
    ``drop_oldest``: the oldest messages go, whatever their channel.
    Every drop is counted in ``health().dropped_messages``. Callbacks that fall behind let the
    socket reader drain what arrived into the queue, so the policy, not a slow-client disconnect
    by the server, decides what a slow consumer misses.
    """

    CONFLATE = "conflate"
    DROP_OLDEST = "drop_oldest"


# ---------------------------------------------------------------- validators


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    number = _number(value)
    if number is None or number <= 0:
        raise ConfigurationError(attribute.name, "a finite number > 0", value)


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    number = _number(value)
    if number is None or number < 0:
        raise ConfigurationError(attribute.name, "a finite number >= 0", value)


def _optional_positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive(_instance, attribute, value)


def _at_least(minimum: float) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        number = _number(value)
        if number is None or number < minimum:
            raise ConfigurationError(attribute.name, f"a finite number >= {minimum:g}", value)

    return check


def _positive_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(attribute.name, "an integer >= 1", value)


_E = TypeVar("_E", bound=enum.Enum)


def _member(kind: type[_E], field: str, value: object) -> _E:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise ConfigurationError(field, f"one of {choices}", value) from None


def _to_feed(value: object) -> Feed:
    return _member(Feed, "feed", value)


def _to_encoding(value: object) -> Encoding:
    return _member(Encoding, "encoding", value)


def _to_jitter(value: object) -> Jitter:
    return _member(Jitter, "jitter", value)


def _to_overflow(value: object) -> OverflowPolicy:
    return _member(OverflowPolicy, "overflow", value)


# ---------------------------------------------------------------- policies


@attrs.frozen(kw_only=True)
class BackoffPolicy:
    """Exponential backoff with jitter between connection attempts.

    With ``ceiling(n) = min(maximum, initial * multiplier ** (n - 1))`` for the n-th consecutive
    failure (n >= 1), full jitter waits within ``[0, ceiling(n)]``, equal jitter within its upper
    half, and decorrelated jitter within ``[initial, 3 * previous]`` capped at ``maximum``. The
    count resets only after a healthy session.
    """

    #: 1 s first ceiling, as gRPC and alpaca-py: quick recovery from a one-off drop.
    initial: float = attrs.field(default=1.0, validator=_positive)
    #: Doubling, as alpaca-py; gRPC's 1.6 is gentler but slower to spread out.
    multiplier: float = attrs.field(default=2.0, validator=_at_least(1.0))
    #: 30 s cap, as alpaca-py: a desk would rather retry twice a minute than wait gRPC's 120 s.
    maximum: float = attrs.field(default=30.0, validator=_positive)
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
    failure_threshold: int = attrs.field(default=5, validator=_positive_int)
    #: 60 s, the default of resilience4j and pybreaker.
    cooldown: float = attrs.field(default=60.0, validator=_positive)
    #: Each failed probe doubles the cool-down, so a long outage costs few attempts.
    cooldown_multiplier: float = attrs.field(default=2.0, validator=_at_least(1.0))
    #: Ten minutes at most between probes, so recovery is noticed within a trading window.
    max_cooldown: float = attrs.field(default=600.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_cooldown < self.cooldown:
            raise ConfigurationError(
                "max_cooldown", f"a number >= cooldown ({self.cooldown:g})", self.max_cooldown
            )


@attrs.frozen(kw_only=True)
class StalePolicy:
    """The stale-connection watchdog: per-channel silence thresholds in seconds.

    Only market data counts (acks, errors and pings do not). A channel with no subscribed symbols,
    or whose threshold is None, is not watched. When a stale reconnect finds the market quiet too
    (the new session also stays silent), the thresholds grow by ``escalation`` up to
    ``max_threshold``, so a legitimately quiet market does not churn, and reset when data flows.
    """

    #: Quotes of any liquid symbol tick many times a minute in session; 60 s of silence is a fault.
    quotes: float | None = attrs.field(default=60.0, validator=_optional_positive)
    #: Trades can be minutes apart on thin symbols; not watched unless asked.
    trades: float | None = attrs.field(default=None, validator=_optional_positive)
    #: Minute bars come only for minutes with trades; not watched unless asked.
    bars: float | None = attrs.field(default=None, validator=_optional_positive)
    #: Doubling after each quiet reconnect keeps off-hours churn logarithmic.
    escalation: float = attrs.field(default=2.0, validator=_at_least(1.0))
    #: At most one quiet-market reconnect every 15 minutes.
    max_threshold: float = attrs.field(default=900.0, validator=_positive)

    def threshold(self, channel: str) -> float | None:
        """The configured threshold for ``channel`` (``quotes``, ``trades`` or ``bars``)."""
        value: float | None = getattr(self, channel)
        return value


# ---------------------------------------------------------------- the stream


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigurationError(attribute.name, "a ws:// or wss:// URL string", value)
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigurationError(attribute.name, "a ws:// or wss:// URL with a host", value)
    if parts.scheme == "ws" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            attribute.name, "wss:// for any host that is not loopback (ws:// is unencrypted)", value
        )


def _optional_path(value: object) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value)
    raise ConfigurationError("journal_path", "a path or None", value)


@attrs.frozen(kw_only=True)
class StreamConfig:
    """Everything a :class:`~streamfsm.StreamController` needs besides credentials and callbacks.

    ``url`` overrides the Alpaca endpoint, for example the simulator's ``ws://127.0.0.1:PORT/v2/iex``;
    a ``ws://`` URL is only accepted for loopback hosts.
    """

    feed: Feed = attrs.field(default=Feed.IEX, converter=_to_feed)
    url: str | None = attrs.field(default=None, validator=_check_url)
    #: msgpack is what alpaca-py negotiates and the cheaper of the two to decode.
    encoding: Encoding = attrs.field(default=Encoding.MSGPACK, converter=_to_encoding)

    #: TCP plus WebSocket handshake; Alpaca answers in well under a second when healthy.
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Alpaca drops a connection that has not authenticated within 10 s.
    auth_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: The subscription ack follows the request within one round trip when healthy.
    subscribe_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Closing never waits out a dead peer's close handshake: stop() has a 50 ms budget.
    close_timeout: float = attrs.field(default=0.02, validator=_non_negative)
    #: Keepalive pings, as alpaca-py; they catch a dead TCP peer, not a mute feed.
    ping_interval: float | None = attrs.field(default=10.0, validator=_optional_positive)
    #: A pong overdue by this long means the peer is gone.
    ping_timeout: float | None = attrs.field(default=20.0, validator=_optional_positive)
    #: Largest frame accepted; Alpaca batches many messages per frame, 8 MiB leaves room.
    max_frame_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=_positive_int)
    #: Frames buffered by the socket reader before TCP pushes back (alpaca-py uses 1024).
    receive_queue_frames: int = attrs.field(default=1024, validator=_positive_int)

    backoff: BackoffPolicy = attrs.field(factory=BackoffPolicy)
    breaker: BreakerPolicy = attrs.field(factory=BreakerPolicy)
    stale: StalePolicy = attrs.field(factory=StalePolicy)
    #: A session must stay subscribed this long to count as healthy and reset backoff and breaker;
    #: a server that accepts and drops at once would otherwise cause a reconnect storm.
    healthy_after: float = attrs.field(default=10.0, validator=_non_negative)
    #: Cool-down after 406 "connection limit exceeded": the server reaps a half-dead session
    #: after about 90 s, and reconnecting sooner only earns another 406.
    connection_limit_cooldown: float = attrs.field(default=90.0, validator=_non_negative)

    #: Undelivered messages held for slow callbacks before the overflow policy applies.
    dispatch_queue_size: int = attrs.field(default=100_000, validator=_positive_int)
    overflow: OverflowPolicy = attrs.field(default=OverflowPolicy.CONFLATE, converter=_to_overflow)
    #: How long a sync API call waits for the controller's loop to take a command.
    command_timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Transition records kept in memory by ``journal()``.
    journal_size: int = attrs.field(default=1000, validator=_positive_int)
    #: Append every transition record to this JSON Lines file, flushed at each transition.
    journal_path: Path | None = attrs.field(default=None, converter=_optional_path)

    @property
    def endpoint(self) -> str:
        """The URL the controller connects to."""
        return self.url if self.url is not None else f"{ALPACA_STREAM_BASE}/v2/{self.feed.value}"
