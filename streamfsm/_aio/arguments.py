"""The checks a controller's arguments pass where they enter, and the subscription they ask for.

Every check raises :class:`~streamfsm.errors.ConfigurationError` naming the argument, at the call
that brought the value in, never later on the loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import CHANNELS, Subscription, check_market
from streamfsm._validate import require_instance, require_text
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import ConfigurationError
from streamfsm.handlers import check_handler
from streamfsm.markets import MARKETS

__all__ = [
    "CHANNEL_OF_HANDLER",
    "HANDLER_OF",
    "check_arguments",
    "check_channels_handled",
    "check_listener",
]

#: Longest correlation id accepted; it is stamped on every log event and journal record.
MAX_CORRELATION_ID = 128
#: The constructor argument named for each channel's data (trades also reach on_correction and
#: on_cancel_error).
HANDLER_OF = {
    "quotes": "on_quote",
    "trades": "on_trade",
    "bars": "on_bar",
    "updated_bars": "on_updated_bar",
    "daily_bars": "on_daily_bar",
    "statuses": "on_status",
    "lulds": "on_luld",
    "orderbooks": "on_orderbook",
    "news": "on_news",
}
#: The channel each data handler receives.
CHANNEL_OF_HANDLER = {
    **{handler: channel for channel, handler in HANDLER_OF.items()},
    "on_correction": "trades",
    "on_cancel_error": "trades",
}


def check_arguments(
    credentials: object,
    config: object,
    rng: object,
    correlation_id: object,
    *,
    handlers: dict[str, Any],
    symbols: Iterable[str],
) -> Subscription:
    """Check a controller's arguments; return the initial subscription ``symbols`` ask for.

    ``handlers`` maps the ``on_*`` arguments to the callbacks given (or None); ``symbols`` go to
    every channel of the configured market that has a data handler.

    Raises:
        ConfigurationError: naming the first argument that is not what it must be.
        InvalidSymbolError: when a symbol is invalid, or not one of the market's.
    """
    require_instance("credentials", credentials, Credentials, "a streamfsm.Credentials")
    for name, handler in handlers.items():
        check_handler(name, handler)
    if config is not None:
        require_instance("config", config, StreamConfig, "a StreamConfig or None")
    if rng is not None:
        require_instance("rng", rng, random.Random, "a random.Random or None")
    if correlation_id is not None:
        require_text("correlation_id", correlation_id, max_length=MAX_CORRELATION_ID)
    if isinstance(symbols, Iterable) and not isinstance(symbols, str | bytes):
        symbols = tuple(symbols)  # read once: a generator serves every channel
    data = {name: handlers.get(name) for name in CHANNEL_OF_HANDLER}
    if not any(data.values()) and Subscription(quotes=symbols):
        raise ConfigurationError("symbols", "an on_* data handler to receive them", symbols)
    market = config.market if isinstance(config, StreamConfig) else StreamConfig().market
    offered = MARKETS[market].channels
    channels = {
        CHANNEL_OF_HANDLER[name]
        for name, handler in data.items()
        if handler is not None and CHANNEL_OF_HANDLER[name] in offered
    }
    initial = Subscription(**dict.fromkeys(channels, symbols))
    check_market(initial, market)
    return initial


def check_channels_handled(change: Subscription, receives: Callable[[str], bool]) -> None:
    """Refuse symbols for a channel without a handler: their data would go nowhere.

    Args:
        change: the symbols asked for.
        receives: says whether some handler (per-symbol ones included) gets a channel's data.

    Raises:
        ConfigurationError: naming the missing handler (``on_trade`` for trades, ...).
    """
    for channel in CHANNELS:
        if change.channel(channel) and not receives(channel):
            name = HANDLER_OF[channel]
            raise ConfigurationError(name, f"a handler, to receive the {channel} subscribed", None)


def check_listener(listener: Callable[[TransitionRecord], object]) -> None:
    """Refuse a transition listener that cannot be called.

    Raises:
        ConfigurationError: when ``listener`` is not callable.
    """
    check_handler("listener", listener)
