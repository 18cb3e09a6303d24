"""The checks a controller's arguments pass where they enter, and the subscription they ask for.

Every check raises :class:`~streamfsm.errors.ConfigurationError` naming the argument, at the call
that brought the value in, never later on the loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm._validate import require_instance, require_text
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import ConfigurationError
from streamfsm.handlers import check_handler

__all__ = ["HANDLER_OF", "check_arguments", "check_channels_handled", "check_listener"]

#: Longest correlation id accepted; it is stamped on every log event and journal record.
MAX_CORRELATION_ID = 128
#: The constructor argument that receives each channel's data.
HANDLER_OF = {"quotes": "on_quote", "trades": "on_trade", "bars": "on_bar"}


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

    ``handlers`` maps ``on_quote``, ``on_trade``, ``on_bar``, ``on_error`` and ``on_gap`` to the
    callbacks given (or None); ``symbols`` go to every channel that has a data handler.

    Raises:
        ConfigurationError: naming the first argument that is not what it must be.
        InvalidSymbolError: when a symbol is invalid.
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
    data = [handlers.get(HANDLER_OF[channel]) for channel in CHANNELS]
    if not any(data) and Subscription(quotes=symbols):
        raise ConfigurationError("symbols", "on_quote, on_trade or on_bar to receive them", symbols)
    return Subscription(
        quotes=symbols if handlers.get("on_quote") else (),
        trades=symbols if handlers.get("on_trade") else (),
        bars=symbols if handlers.get("on_bar") else (),
    )


def check_channels_handled(change: Subscription, handlers: dict[str, Any]) -> None:
    """Refuse symbols for a channel without a handler: their data would go nowhere.

    Raises:
        ConfigurationError: naming the missing handler (``on_trade`` for trades, ...).
    """
    for channel in CHANNELS:
        name = HANDLER_OF[channel]
        if change.channel(channel) and handlers.get(name) is None:
            raise ConfigurationError(name, f"a handler, to receive the {channel} subscribed", None)


def check_listener(listener: Callable[[TransitionRecord], object]) -> None:
    """Refuse a transition listener that cannot be called.

    Raises:
        ConfigurationError: when ``listener`` is not callable.
    """
    check_handler("listener", listener)
