"""Configuration: every tunable number of streamfsm lives here, with the reason for its default.

All classes are frozen ``attrs`` values validated at construction. An invalid value raises
:class:`~streamfsm.errors.ConfigurationError` naming the field, what was expected and what came.
Policies (backoff, breaker, stale watchdog) are separate values so they can be swapped whole;
they live in :mod:`streamfsm.config.policies` and are importable from here as before.
"""

from __future__ import annotations

import enum
import importlib.util
import ipaddress
import os
from pathlib import Path
from typing import Any, Final

import attrs
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from streamfsm._validate import count, instance_of, member, require_text, seconds
from streamfsm.config.policies import (
    CHANNEL_NAMES,
    MARKET_STALE_DEFAULTS,
    MIN_STALE_THRESHOLD,
    BackoffPolicy,
    BreakerPolicy,
    Jitter,
    StalePolicy,
    default_stale,
)
from streamfsm.errors import ConfigurationError
from streamfsm.markets import ALPACA_STREAM_BASE, MARKETS, Encoding, Feed, Market

__all__ = [
    "ALPACA_STREAM_BASE",
    "CHANNEL_NAMES",
    "MARKET_STALE_DEFAULTS",
    "MAX_SUBSCRIBE_FRAGMENT",
    "MIN_FRAME_BYTES",
    "MIN_STALE_THRESHOLD",
    "MIN_TIMEOUT",
    "BackoffPolicy",
    "BreakerPolicy",
    "Encoding",
    "EventLoop",
    "Feed",
    "Jitter",
    "JournalFsync",
    "Market",
    "ModelMode",
    "OverflowPolicy",
    "StalePolicy",
    "StreamConfig",
    "Transport",
    "default_stale",
]

#: Subscribe payloads are sent as fragments of at most this many bytes, as alpaca-py does.
MAX_SUBSCRIBE_FRAGMENT: Final = 32_768
#: The shortest handshake, command or keepalive timeout accepted: a loopback handshake takes
#: milliseconds and a WAN one tens of them; below half a second a healthy endpoint times out under
#: load and the controller would cycle through backoff instead of failing at the call.
MIN_TIMEOUT: Final = 0.5
#: The smallest frame limit accepted: the server's own acks for a few thousand symbols must fit,
#: or every session would fail on its first acknowledgement.
MIN_FRAME_BYTES: Final = 65_536
#: URLs longer than this are refused: real endpoints are under a hundred characters.
MAX_URL_CHARS: Final = 2048


class Transport(enum.StrEnum):
    """The WebSocket implementation a session runs on.

    ``websockets``: the pure-Python reference, always installed.
    ``picows``: a C frame parser, installed with ``streamfsm[fast]``; it lowers the client CPU per
    frame. streamfsm adds permessage-deflate to it, so both speak the same protocol.
    """

    WEBSOCKETS = "websockets"
    PICOWS = "picows"


class EventLoop(enum.StrEnum):
    """The event loop of the sync controller's own loop thread.

    ``asyncio``: asyncio's own loop. ``uvloop``: uvloop's (installed with ``streamfsm[fast]``).
    The async API runs on the caller's loop whatever this says: run the program under uvloop
    (``uvloop.run(main())``) to have it there. picows on uvloop does not notice a TCP reset
    (see docs/decisions.md), so uvloop is not the default with picows.
    """

    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


class ModelMode(enum.StrEnum):
    """What market-data callbacks receive.

    ``alpaca``: alpaca-py's own ``Quote``/``Trade``/``Bar`` (drop-in for ``StockDataStream``).
    ``fast``: streamfsm's frozen structs with the same attribute names, about ten times cheaper.
    ``raw``: dicts with the wire keys (alpaca-py's ``raw_data=True``).
    """

    ALPACA = "alpaca"
    FAST = "fast"
    RAW = "raw"


class OverflowPolicy(enum.StrEnum):
    """What happens to market data that waits because callbacks fall behind.

    A frame whose callbacks keep up is delivered whole, at once. What has to wait is bounded by
    ``dispatch_queue_size`` messages, ``dispatch_queue_bytes`` (estimated) and
    ``dispatch_max_age`` seconds since its frame arrived; over a bound the oldest go.
    ``conflate``: besides, a waiting quote is dropped the moment a newer quote of the same symbol
    arrives, so a slow consumer always gets the newest price; trades, bars and statuses are
    never conflated and keep their order.
    ``drop_oldest``: only the bounds apply.
    Every drop is counted in ``health().dropped_messages``. Callbacks that fall behind let the
    socket reader drain what arrived into the queue, so the policy, not a slow-client disconnect
    by the server, decides what a slow consumer misses.
    """

    CONFLATE = "conflate"
    DROP_OLDEST = "drop_oldest"


class JournalFsync(enum.StrEnum):
    """When the journal file is forced to disk (``fsync``), beyond the flush after every record.

    ``always``: after every record; a power loss loses at most the transition in progress.
    ``interval``: at most once per ``journal_fsync_interval``, on the record that crosses it, and
    when the controller stops; a power loss loses at most that interval's records.
    ``never``: flushed to the operating system only; a process crash loses nothing, a power loss
    whatever the kernel had not written. ``docs/benchmarks.md`` gives the measured cost of each.
    """

    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"


# ---------------------------------------------------------------- converters

_FEED = member(Feed, "feed")
_MARKET = member(Market, "market")
_ENCODING = member(Encoding, "encoding")
_OVERFLOW = member(OverflowPolicy, "overflow")
_TRANSPORT = member(Transport, "transport")
_JOURNAL_FSYNC = member(JournalFsync, "journal_fsync")
_EVENT_LOOP = member(EventLoop, "loop")


def _to_feed(value: object) -> Feed:
    return _FEED(value)


def _to_market(value: object) -> Market:
    return _MARKET(value)


def _to_encoding(value: object) -> Encoding:
    return _ENCODING(value)


def _to_overflow(value: object) -> OverflowPolicy:
    return _OVERFLOW(value)


def _to_transport(value: object) -> Transport:
    transport = _TRANSPORT(value)
    if transport is Transport.PICOWS and importlib.util.find_spec("picows") is None:
        raise ConfigurationError(
            "transport", "'websockets', or 'picows' with streamfsm[fast] installed", value
        )
    return transport


def _to_event_loop(value: object) -> EventLoop:
    loop = _EVENT_LOOP(value)
    if loop is EventLoop.UVLOOP and importlib.util.find_spec("uvloop") is None:
        raise ConfigurationError(
            "loop", "'asyncio', or 'uvloop' with streamfsm[fast] installed", value
        )
    return loop


def _to_journal_fsync(value: object) -> JournalFsync:
    return _JOURNAL_FSYNC(value)


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
    url = require_text(attribute.name, value, max_length=MAX_URL_CHARS)
    try:
        parts = parse_uri(url)
    except (InvalidURI, ValueError):
        # ValueError: urllib's verdict on a port out of range or not a number.
        raise ConfigurationError(
            attribute.name, "a ws:// or wss:// URL with a host", value
        ) from None
    if not parts.host or parts.username is not None:
        raise ConfigurationError(
            attribute.name, "a ws:// or wss:// URL with a host and no user:password", value
        )
    if not parts.secure and not _is_loopback(parts.host):
        raise ConfigurationError(
            attribute.name, "wss:// for any host that is not loopback (ws:// is unencrypted)", value
        )


def _encodable(path: str) -> bool:
    """Whether the operating system can name ``path`` (lone surrogates, say, it cannot)."""
    try:
        os.fsencode(path)
    except UnicodeError:
        return False
    return True


def _optional_path(value: object) -> Path | None:
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        raw = os.fspath(value)
        if isinstance(raw, str) and raw.strip() and "\0" not in raw and _encodable(raw):
            return Path(raw)
    raise ConfigurationError("journal_path", "a file path (str or os.PathLike) or None", value)


_timeout = seconds(low=MIN_TIMEOUT)
_keepalive = seconds(low=MIN_TIMEOUT, optional=True)


@attrs.frozen(kw_only=True)
class StreamConfig:
    """Everything a :class:`~streamfsm.StreamController` needs besides credentials and callbacks.

    ``url`` overrides the Alpaca endpoint, for example the simulator's ``ws://127.0.0.1:PORT/v2/iex``;
    a ``ws://`` URL is only accepted for loopback hosts.
    """

    #: Which of Alpaca's four streams: ``stocks``, ``crypto``, ``options`` or ``news``.
    market: Market = attrs.field(default=Market.STOCKS, converter=_to_market)
    #: A feed of ``market`` (stocks: iex, sip, delayed_sip, test, boats, overnight; crypto: us,
    #: us-1, eu-1; options: indicative, opra; news: news); the market's first when not given.
    feed: Feed = attrs.field(
        default=attrs.Factory(lambda self: MARKETS[self.market].default_feed, takes_self=True),
        converter=_to_feed,
    )
    url: str | None = attrs.field(default=None, validator=_check_url)
    #: msgpack is what alpaca-py negotiates and the cheaper of the two to decode.
    encoding: Encoding = attrs.field(default=Encoding.MSGPACK, converter=_to_encoding)
    #: websockets is always installed; picows (``streamfsm[fast]``) spends less CPU per frame.
    transport: Transport = attrs.field(default=Transport.WEBSOCKETS, converter=_to_transport)
    #: The sync controller's event loop; uvloop (``streamfsm[fast]``) on request only.
    loop: EventLoop = attrs.field(default=EventLoop.ASYNCIO, converter=_to_event_loop)

    #: TCP plus WebSocket handshake; Alpaca answers in well under a second when healthy.
    connect_timeout: float = attrs.field(default=10.0, validator=_timeout)
    #: Alpaca drops a connection that has not authenticated within 10 s.
    auth_timeout: float = attrs.field(default=10.0, validator=_timeout)
    #: The subscription ack follows the request within one round trip when healthy.
    subscribe_timeout: float = attrs.field(default=10.0, validator=_timeout)
    #: Closing never waits out a dead peer's close handshake: stop() has a 50 ms budget.
    close_timeout: float = attrs.field(default=0.02, validator=seconds(allow_zero=True))
    #: Keepalive pings, as alpaca-py; they catch a dead TCP peer, not a mute feed.
    ping_interval: float | None = attrs.field(default=10.0, validator=_keepalive)
    #: A pong overdue by this long means the peer is gone.
    ping_timeout: float | None = attrs.field(default=20.0, validator=_keepalive)
    #: Largest frame accepted; Alpaca batches many messages per frame, 8 MiB leaves room.
    max_frame_bytes: int = attrs.field(
        default=8 * 1024 * 1024, validator=count(low=MIN_FRAME_BYTES)
    )
    #: Frames buffered by the socket reader before TCP pushes back (alpaca-py uses 1024).
    receive_queue_frames: int = attrs.field(default=1024, validator=count())

    backoff: BackoffPolicy = attrs.field(
        factory=BackoffPolicy,
        validator=instance_of(BackoffPolicy, "a BackoffPolicy, e.g. BackoffPolicy(initial=1.0)"),
    )
    breaker: BreakerPolicy = attrs.field(
        factory=BreakerPolicy,
        validator=instance_of(BreakerPolicy, "a BreakerPolicy, e.g. BreakerPolicy(cooldown=60.0)"),
    )
    #: A bare number is refused: it would not say which channels to watch (see decisions.md).
    #: The market's defaults (:data:`MARKET_STALE_DEFAULTS`) when not given.
    stale: StalePolicy = attrs.field(
        default=attrs.Factory(lambda self: default_stale(self.market), takes_self=True),
        validator=instance_of(StalePolicy, "a StalePolicy, e.g. StalePolicy(quotes=60.0)"),
    )
    #: A session must stay subscribed this long to count as healthy and reset backoff and breaker;
    #: a server that accepts and drops at once would otherwise cause a reconnect storm.
    healthy_after: float = attrs.field(default=10.0, validator=seconds(allow_zero=True))
    #: Cool-down after 406 "connection limit exceeded": the server reaps a half-dead session
    #: after about 90 s, and reconnecting sooner only earns another 406.
    connection_limit_cooldown: float = attrs.field(default=90.0, validator=seconds(allow_zero=True))

    #: Undelivered messages held for slow callbacks before the oldest go.
    dispatch_queue_size: int = attrs.field(default=100_000, validator=count())
    #: Estimated bytes of undelivered messages held (about 600 bytes a quote): 64 MiB.
    dispatch_queue_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=count())
    #: Seconds a message may wait for a slow callback since its frame arrived; None for no bound.
    #: A quarter second keeps a slow pricing callback on prices younger than a blink.
    dispatch_max_age: float | None = attrs.field(default=0.25, validator=seconds(optional=True))
    overflow: OverflowPolicy = attrs.field(default=OverflowPolicy.CONFLATE, converter=_to_overflow)
    #: How long a sync API call waits for the controller's loop to take a command.
    command_timeout: float = attrs.field(default=5.0, validator=_timeout)
    #: Transition records kept in memory by ``journal()``.
    journal_size: int = attrs.field(default=1000, validator=count())
    #: Append every transition record to this JSON Lines file, flushed at each transition.
    journal_path: Path | None = attrs.field(default=None, converter=_optional_path)
    #: An audit trail that a power loss can cut is a weak one, and transitions are rare (the
    #: backoff policy bounds them), so every record is forced to disk by default.
    journal_fsync: JournalFsync = attrs.field(
        default=JournalFsync.ALWAYS, converter=_to_journal_fsync
    )
    #: Under ``journal_fsync="interval"``: at most one forced write per this many seconds.
    journal_fsync_interval: float = attrs.field(default=1.0, validator=seconds())

    def __attrs_post_init__(self) -> None:
        spec = MARKETS[self.market]
        if self.feed not in spec.feeds:
            choices = ", ".join(repr(feed.value) for feed in spec.feeds)
            raise ConfigurationError("feed", f"a {self.market} feed: one of {choices}", self.feed)
        if self.encoding not in spec.encodings:
            raise ConfigurationError(
                "encoding", f"msgpack (the {self.market} stream speaks msgpack only)", self.encoding
            )

    @property
    def endpoint(self) -> str:
        """The URL the controller connects to: ``url``, or the market's documented endpoint."""
        if self.url is not None:
            return self.url
        return ALPACA_STREAM_BASE + MARKETS[self.market].path(self.feed)
