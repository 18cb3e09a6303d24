"""The checks of a pricing service's arguments, in one place; each error names the argument.

Every check raises :class:`~streamfsm.errors.ConfigurationError` (or
:class:`~streamfsm.errors.InvalidSymbolError` for a symbol) at the call that brought the value
in, so a bad argument never reaches the stream's loop. Numbers follow the rules of
:mod:`streamfsm._validate`, shared with the stream's configuration and the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from streamfsm._validate import MAX_COUNT, require_count, require_instance, require_seconds
from streamfsm.config import StreamConfig
from streamfsm.errors import ConfigurationError, InvalidSymbolError
from streamfsm.markets import MARKETS, Market

__all__ = [
    "clock",
    "flag",
    "hooks",
    "optional_count",
    "optional_seconds",
    "priced_config",
    "priority",
    "readable_symbol",
    "source",
]

_F = TypeVar("_F", bound=Callable[..., object])


def optional_count(name: str, value: object) -> int | None:
    """An integer >= 1 (not a bool), or None."""
    return None if value is None else require_count(name, value, low=1)


def optional_seconds(name: str, value: object) -> float | None:
    """A finite number of seconds > 0 and at most a week (not a bool), as a float, or None."""
    return None if value is None else require_seconds(name, value)


def priority(value: object) -> int:
    """A priority: an integer (not a bool) within a C ``int``, negative ones included."""
    return require_count("priority", value, low=-MAX_COUNT, high=MAX_COUNT)


def flag(name: str, value: object) -> bool:
    """Exactly True or False (not 0, 1 or "yes")."""
    if not isinstance(value, bool):
        raise ConfigurationError(name, "True or False", value)
    return value


def clock(name: str, value: _F) -> _F:
    """A callable that reads a clock."""
    if not callable(value):
        raise ConfigurationError(name, "a callable", type(value).__name__)
    return value


def hooks(**values: object) -> None:
    """User callbacks, each callable or None."""
    for name, value in values.items():
        if value is not None and not callable(value):
            raise ConfigurationError(name, "a callable or None", type(value).__name__)


def source(name: str, value: object) -> None:
    """A refresher source has a callable ``latest_quotes``; None disables the refresher."""
    if value is not None and not callable(getattr(value, "latest_quotes", None)):
        expected = "a LatestQuoteSource (with latest_quotes) or None"
        raise ConfigurationError(name, expected, type(value).__name__)


def priced_config(value: object) -> tuple[StreamConfig | None, Market]:
    """A :class:`~streamfsm.config.StreamConfig` of a market with quotes (not news), or None
    for the defaults; with its market (stocks by default)."""
    if value is None:
        return None, Market.STOCKS
    config = require_instance("config", value, StreamConfig, "a StreamConfig or None")
    if "quotes" not in MARKETS[config.market].channels:
        expected = "a StreamConfig of a market with quotes (stocks, crypto or options)"
        raise ConfigurationError("config", expected, f"market={config.market.value!r}")
    return config, config.market


def readable_symbol(symbol: object) -> None:
    """A read of an unknown symbol is normal (None); a read of a non-string is the caller's bug."""
    if not isinstance(symbol, str):
        raise InvalidSymbolError(symbol, "a symbol must be a string")
