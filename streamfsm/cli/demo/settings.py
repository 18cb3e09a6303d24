"""The settings of ``streamfsm demo``: its timings, symbols, rates and durations.

The timings are short on purpose so that every recovery fits in seconds; production defaults
are far more patient (1 s backoff, 60 s stale threshold, 90 s cool-down after a 406), see
:class:`~streamfsm.config.StreamConfig`.
"""

from __future__ import annotations

from typing import Final

from streamfsm.config import BackoffPolicy, BreakerPolicy, StalePolicy, StreamConfig

__all__ = [
    "AUTH_TIMEOUT",
    "BACKOFF_INITIAL",
    "BACKOFF_MAXIMUM",
    "BREAKER_COOLDOWN",
    "BREAKER_THRESHOLD",
    "CONNECTION_LIMIT_CODE",
    "CONNECTION_LIMIT_COOLDOWN",
    "CONNECTION_LIMIT_REFUSALS",
    "CONNECT_TIMEOUT",
    "DEFAULT_DURATION",
    "DEFAULT_SEED",
    "DEMO_CONFIG",
    "HEALTHY_AFTER",
    "JOIN_TIMEOUT",
    "MAX_QUOTE_AGE",
    "MAX_SYMBOLS",
    "MUTE_SECONDS",
    "RECOMMENDED_DURATION",
    "SETTLE",
    "SIM_RATE",
    "SLOW_AUTH_DELAY",
    "STALE_QUOTES",
    "STARTUP_BUDGET",
    "STATUS_INTERVAL",
    "SYMBOLS",
    "TAIL",
    "WARMUP",
    "WATCHLIST",
    "WATCHLIST_PRIORITY",
]

#: Short on purpose: every recovery fits in seconds. Production defaults are in StreamConfig.
BACKOFF_INITIAL: Final = 0.2
BACKOFF_MAXIMUM: Final = 1.0
STALE_QUOTES: Final = 1.0
HEALTHY_AFTER: Final = 0.5
CONNECTION_LIMIT_COOLDOWN: Final = 0.5
AUTH_TIMEOUT: Final = 1.0
CONNECT_TIMEOUT: Final = 2.0
BREAKER_THRESHOLD: Final = 5
BREAKER_COOLDOWN: Final = 1.0

DEMO_CONFIG: Final = StreamConfig(
    backoff=BackoffPolicy(initial=BACKOFF_INITIAL, maximum=BACKOFF_MAXIMUM),
    breaker=BreakerPolicy(failure_threshold=BREAKER_THRESHOLD, cooldown=BREAKER_COOLDOWN),
    stale=StalePolicy(quotes=STALE_QUOTES),
    healthy_after=HEALTHY_AFTER,
    connection_limit_cooldown=CONNECTION_LIMIT_COOLDOWN,
    auth_timeout=AUTH_TIMEOUT,
    connect_timeout=CONNECT_TIMEOUT,
    subscribe_timeout=CONNECT_TIMEOUT,
)

#: The mute outlasts the stale threshold three times over, so only the watchdog can end it.
MUTE_SECONDS: Final = 3 * STALE_QUOTES
#: The auth reply is held back past the client's auth timeout.
SLOW_AUTH_DELAY: Final = AUTH_TIMEOUT + 0.5
#: How many auths the simulator refuses with 406.
CONNECTION_LIMIT_REFUSALS: Final = 3
CONNECTION_LIMIT_CODE: Final = 406

#: Time to connect and price every symbol before the first fault.
WARMUP: Final = 1.5
#: Calm time left after the last fault's slot.
TAIL: Final = 1.5
#: Pause after a recovery before the next fault may start: the new session must turn healthy
#: first, or back-to-back faults look like a flapping server and trip the circuit breaker.
SETTLE: Final = HEALTHY_AFTER + 0.2
#: How long the demo waits for the first prices before it gives up.
STARTUP_BUDGET: Final = 5.0

#: Long enough to watch every fault and its recovery, short enough for ``make demo``.
DEFAULT_DURATION: Final = 20.0
DEFAULT_SEED: Final = 7
#: The eight symbols the demo prices, with their priorities (higher is kept longer).
SYMBOLS: Final = (
    ("AAPL", 10),
    ("MSFT", 10),
    ("NVDA", 8),
    ("AMZN", 8),
    ("GOOG", 6),
    ("META", 6),
    ("TSLA", 4),
    ("AMD", 4),
)
#: Offered at the lowest priority on top of the eight: ``max_symbols`` evicts them.
WATCHLIST: Final = ("SPY", "QQQ")
WATCHLIST_PRIORITY: Final = 1
MAX_SYMBOLS: Final = len(SYMBOLS)
#: Messages per second from the simulator, over all symbols and both channels.
SIM_RATE: Final = 200.0

#: A quote older than this is stale for the pricing service.
MAX_QUOTE_AGE: Final = 1.0

#: Below this --duration the fault script may not finish: about 8 s of recoveries and settling
#: after the warm-up, plus margin.
RECOMMENDED_DURATION: Final = 12.0

#: Seconds between status lines when the output is not a terminal.
STATUS_INTERVAL: Final = 2.0
#: Bounds the wait for the script thread after the run ends (it only waits on events).
JOIN_TIMEOUT: Final = 5.0
