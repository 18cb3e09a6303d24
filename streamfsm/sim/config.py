"""The simulator's configuration: one frozen, validated value.

Every number has a named default with its reason. An invalid value raises
:class:`~streamfsm.errors.ConfigurationError` (a ``ValueError``) naming the field, what was
expected and what came. Secrets never stay in the configuration: accepted credentials are kept
as SHA-256 digests, and the ``repr`` shows key-id fingerprints only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from streamfsm._validate import boolean, count, instance_of, number, seconds
from streamfsm.config import Feed
from streamfsm.credentials import FINGERPRINT_CHARS, Credentials
from streamfsm.errors import ConfigurationError
from streamfsm.markets import Market

__all__ = [
    "ALPACA_AUTH_TIMEOUT",
    "ALPACA_REAP_DELAY",
    "CRYPTO_UNIVERSE",
    "DEFAULT_ENTITLED_FEEDS",
    "DEFAULT_UNIVERSE",
    "DEMO_KEY_ID",
    "DEMO_SECRET",
    "IEX_SYMBOL_LIMIT",
    "OPTIONS_UNIVERSE",
    "Replay",
    "SimConfig",
    "fingerprint",
    "is_valid_symbol",
    "secret_digest",
]

#: The key id the simulator accepts by default. Obviously fake: it is public.
DEMO_KEY_ID: Final = "PKSIMDEMO00000000001"
#: The secret paired with :data:`DEMO_KEY_ID`. Public, so worthless anywhere but the simulator.
DEMO_SECRET: Final = "streamfsm-simulator-demo-secret"

#: Alpaca holds a "partially dead" connection's slot for about 90 s before reaping it (forum
#: answer quoted in QuantConnect/Lean.Brokerages.Alpaca PR #39). Pass it as ``reap_delay`` to
#: reproduce 406 storms; tests use 0.
ALPACA_REAP_DELAY: Final = 90.0

#: Symbols ``"*"`` expands to: liquid names plus Alpaca's always-on test symbol FAKEPACA.
DEFAULT_UNIVERSE: Final = (
    "AAPL",
    "AMD",
    "AMZN",
    "FAKEPACA",
    "GOOGL",
    "JPM",
    "META",
    "MSFT",
    "NVDA",
    "QQQ",
    "SPY",
    "TSLA",
)

#: Pairs ``"*"`` expands to on the crypto stream.
CRYPTO_UNIVERSE: Final = ("BTC/USD", "ETH/BTC", "ETH/USD", "LTC/USD", "SOL/USD")
#: OCC contracts ``"*"`` expands to on the options stream (trades only: quotes refuse ``*``).
OPTIONS_UNIVERSE: Final = (
    "AAPL250620C00200000",
    "AAPL250620P00180000",
    "SPY250620C00550000",
    "SPY250620P00500000",
)
#: What the free plans give every key: IEX, delayed SIP and the test stream for stocks, every
#: crypto location, indicative options and news. SIP, BOATS, overnight and OPRA need a paid plan
#: (409 otherwise), as on Alpaca.
DEFAULT_ENTITLED_FEEDS: Final = frozenset(
    {
        Feed.IEX,
        Feed.DELAYED_SIP,
        Feed.TEST,
        Feed.US,
        Feed.US_1,
        Feed.EU_1,
        Feed.INDICATIVE,
        Feed.NEWS,
    }
)

#: Alpaca's limit for the free IEX plan: 30 trade and quote subscriptions at a time.
IEX_SYMBOL_LIMIT: Final = 30
#: "You must authenticate within 10 seconds" (Alpaca's stream documentation).
ALPACA_AUTH_TIMEOUT: Final = 10.0
#: A gentle default feed: enough to see data move, cheap enough to leave running.
DEFAULT_RATE: Final = 50.0
#: Bounds a server-side close handshake with a client that does not answer, so shutdown is quick.
DEFAULT_CLOSE_TIMEOUT: Final = 1.0
#: Highest TCP port number.
MAX_PORT: Final = 65_535
#: Seeds are non-negative and fit 64 bits: plenty of distinct walks, and a larger one is a typo.
MAX_SEED: Final = 2**64 - 1
#: Fastest paced feed accepted, in messages per second per connection; beyond it the pacing timer
#: cannot keep up anyway, and ``rate=None`` (as fast as the client reads) is the way to ask for it.
MAX_RATE: Final = 1_000_000.0
#: Largest batch accepted: Alpaca sends a few hundred messages per frame at most, and a huge batch
#: would build one enormous frame in memory.
MAX_BATCH: Final = 10_000

#: Ticker grammar the simulator accepts: upper-case letters and digits with class separators
#: (BRK.B, BF/B, XYZ-W), at most 21 characters, as streamfsm's client validates them.
_SYMBOL: Final = re.compile(r"^[A-Z0-9][A-Z0-9./\-]{0,20}$")


def is_valid_symbol(value: object) -> bool:
    """True when ``value`` is a ticker the simulator accepts (the wildcard ``*`` is not one)."""
    return isinstance(value, str) and _SYMBOL.match(value) is not None


def secret_digest(secret: str) -> bytes:
    """The SHA-256 digest the simulator keeps instead of a secret."""
    return hashlib.sha256(secret.encode()).digest()


def fingerprint(key_id: str) -> str:
    """A key id's non-secret identifier, as :attr:`Credentials.fingerprint` shows it."""
    return "..." + key_id[-FINGERPRINT_CHARS:]


# ---------------------------------------------------------------- validators and converters


def _loopback_host(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    try:
        loopback = isinstance(value, str) and ipaddress.ip_address(value).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            attribute.name, "a loopback IP address such as 127.0.0.1 or ::1", value
        )


def _feed(value: object, field: str) -> Feed:
    for member in Feed:
        if value == member.value:  # a Feed is a str enum: members compare equal too
            return member
    choices = ", ".join(repr(member.value) for member in Feed)
    raise ConfigurationError(field, f"one of {choices}", value)


def _feeds(value: object, field: str) -> frozenset[Feed]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(field, "a collection of feeds", value)
    return frozenset(_feed(item, field) for item in value)


def _to_entitled_feeds(value: object) -> frozenset[Feed]:
    return _feeds(value, "entitled_feeds")


def _to_entitlements(value: object) -> Mapping[str, frozenset[Feed]]:
    if not isinstance(value, Mapping):
        raise ConfigurationError("entitlements", "a mapping of key id to feeds", value)
    table: dict[str, frozenset[Feed]] = {}
    for key_id, feeds in value.items():
        if not isinstance(key_id, str) or not key_id:
            raise ConfigurationError("entitlements", "non-blank key ids", key_id)
        table[key_id] = _feeds(feeds, "entitlements")
    return MappingProxyType(table)


def _to_key_table(value: object) -> Mapping[str, bytes]:
    """Key id -> SHA-256 of the secret, from a mapping or an iterable of Credentials."""
    pairs: Iterable[tuple[object, object]]
    if isinstance(value, Mapping):
        pairs = value.items()
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = list(value)
        if not all(isinstance(item, Credentials) for item in items):
            raise ConfigurationError(
                "credentials", "a mapping of key id to secret, or Credentials", "<other>"
            )
        pairs = [(item.key_id, item.reveal()) for item in items]
    else:
        raise ConfigurationError("credentials", "a mapping of key id to secret", type(value))
    table: dict[str, bytes] = {}
    for key_id, secret in pairs:
        if not isinstance(key_id, str) or not key_id.strip():
            raise ConfigurationError("credentials", "non-blank string key ids", "<blank>")
        if not isinstance(secret, str) or not secret.strip():
            # The value is a secret: never echo it.
            raise ConfigurationError("credentials", "non-blank string secrets", "<redacted>")
        table[key_id] = secret_digest(secret)
    return MappingProxyType(table)


def _show_keys(table: Mapping[str, bytes]) -> str:
    return "{" + ", ".join(repr(fingerprint(key_id)) for key_id in table) + "}"


def _to_universe(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError("universe", "a collection of symbols", value)
    symbols = tuple(dict.fromkeys(value))
    if not symbols:
        raise ConfigurationError("universe", "at least one symbol", value)
    for symbol in symbols:
        if not is_valid_symbol(symbol):
            raise ConfigurationError("universe", "upper-case tickers", symbol)
    return symbols


def _to_frames(value: object) -> tuple[bytes | str, ...]:
    if isinstance(value, bytes | str) or not isinstance(value, Iterable):
        raise ConfigurationError("frames", "a sequence of pre-encoded frames", type(value))
    frames = tuple(
        bytes(item) if isinstance(item, bytearray | memoryview) else item for item in value
    )
    if not frames or not all(isinstance(frame, bytes | str) and frame for frame in frames):
        raise ConfigurationError("frames", "at least one non-empty bytes or str frame", "<frames>")
    return frames


# ---------------------------------------------------------------- values


@attrs.frozen(kw_only=True)
class Replay:
    """Pre-encoded frames a connection receives, ``repeat`` times, once it has subscribed.

    The frames are sent as they are (``bytes`` as binary frames, ``str`` as text frames), as
    fast as the socket takes them, instead of the random walk; after the last one the connection
    goes quiet. Benchmarks use it so that the client, not the simulator, sets the pace.
    """

    frames: tuple[bytes | str, ...] = attrs.field(
        converter=_to_frames, repr=lambda f: f"<{len(f)}>"
    )
    repeat: int = attrs.field(default=1, validator=count())


@attrs.frozen(kw_only=True)
class SimConfig:
    """Everything a :class:`~streamfsm.sim.Simulator` needs. All fields are keyword-only.

    Raises:
        ConfigurationError: naming the field, when a value is invalid; in particular when
            ``host`` is not a loopback address (the simulator never listens on a network).
    """

    #: Loopback only: the simulator serves tests and demos, never a network.
    host: str = attrs.field(default="127.0.0.1", validator=_loopback_host)
    #: 0 lets the operating system pick a free port; read it back with ``Simulator.port``.
    port: int = attrs.field(default=0, validator=count(low=0, high=MAX_PORT))
    #: Accepted keys: a mapping key id -> secret, or Credentials. Kept as digests only.
    credentials: Mapping[str, bytes] = attrs.field(
        default={DEMO_KEY_ID: DEMO_SECRET}, converter=_to_key_table, repr=_show_keys
    )
    #: Feeds every key may use: the free plans' (:data:`DEFAULT_ENTITLED_FEEDS`).
    entitled_feeds: frozenset[Feed] = attrs.field(
        default=DEFAULT_ENTITLED_FEEDS, converter=_to_entitled_feeds
    )
    #: Per-key overrides of ``entitled_feeds`` (key id -> feeds).
    entitlements: Mapping[str, frozenset[Feed]] = attrs.field(
        factory=dict, converter=_to_entitlements
    )
    #: Subscriptions allowed per connection on the market's limited channels (405 beyond):
    #: trades plus quotes on stocks and crypto, quotes on options; None: no limit (SIP).
    symbol_limit: int | None = attrs.field(default=IEX_SYMBOL_LIMIT, validator=count(optional=True))
    #: Authenticated connections per key at a time (406 beyond); Alpaca allows 1 on most plans.
    connection_limit: int = attrs.field(default=1, validator=count())
    #: The stock symbols ``"*"`` stands for (stocks and news; crypto and options have their own
    #: universes). Any valid symbol may be subscribed and gets data.
    universe: tuple[str, ...] = attrs.field(default=DEFAULT_UNIVERSE, converter=_to_universe)
    #: Seeds every per-symbol random walk: the same seed gives the same prices.
    seed: int = attrs.field(default=0, validator=count(low=0, high=MAX_SEED))
    #: Data messages per second per connection; 0: quiet; None: as fast as the client reads.
    rate: float | None = attrs.field(
        default=DEFAULT_RATE, validator=number(high=MAX_RATE, optional=True)
    )
    #: Data messages per frame, as Alpaca batches them.
    batch: int = attrs.field(default=1, validator=count(high=MAX_BATCH))
    #: Seconds a connection may stay unauthenticated before 404 and close.
    auth_timeout: float = attrs.field(default=ALPACA_AUTH_TIMEOUT, validator=seconds())
    #: Seconds a closed connection keeps holding its key's slot (Alpaca: ALPACA_REAP_DELAY).
    reap_delay: float = attrs.field(default=0.0, validator=seconds(allow_zero=True))
    #: permessage-deflate (RFC 7692), as Alpaca negotiates it.
    compression: bool = attrs.field(default=True, validator=boolean())
    #: Seconds the server waits for a client to answer its close frame before dropping it.
    close_timeout: float = attrs.field(default=DEFAULT_CLOSE_TIMEOUT, validator=seconds())
    #: Every n-th stock trade is followed by a correction of it and a cancel of the one before,
    #: so clients see both kinds of message; None: never.
    corrections_every: int | None = attrs.field(default=None, validator=count(optional=True))
    #: Pre-encoded frames sent instead of the random walk; see :class:`Replay`.
    replay: Replay | None = attrs.field(
        default=None, validator=instance_of(Replay, "a Replay or None", optional=True)
    )

    def universe_for(self, market: Market) -> tuple[str, ...]:
        """The symbols ``"*"`` stands for on ``market``'s stream."""
        if market is Market.CRYPTO:
            return CRYPTO_UNIVERSE
        if market is Market.OPTIONS:
            return OPTIONS_UNIVERSE
        return self.universe

    def feeds_for(self, key_id: str) -> frozenset[Feed]:
        """The feeds ``key_id`` is entitled to."""
        return self.entitlements.get(key_id, self.entitled_feeds)
