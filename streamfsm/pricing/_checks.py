"""The checks of a pricing service's arguments, in one place; each error names the argument.

Every check raises :class:`~streamfsm.errors.ConfigurationError` (or
:class:`~streamfsm.errors.InvalidSymbolError` for a symbol) at the call that brought the value
in, so a bad argument never reaches the stream's loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from streamfsm.errors import ConfigurationError, InvalidSymbolError

__all__ = [
    "clock",
    "flag",
    "hooks",
    "optional_count",
    "optional_seconds",
    "priority",
    "readable_symbol",
    "source",
]

_F = TypeVar("_F", bound=Callable[..., object])


def optional_count(name: str, value: object) -> int | None:
    """An integer >= 1 (not a bool), or None."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(name, "an integer >= 1 or None", value)
    return value


def optional_seconds(name: str, value: object) -> float | None:
    """A finite number of seconds > 0 (not a bool), as a float, or None."""
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(name, "a number of seconds > 0 or None", value)
    return None if value is None else float(value)


def priority(value: object) -> int:
    """A priority: any integer, not a bool."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError("priority", "an integer", value)
    return value


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


def readable_symbol(symbol: object) -> None:
    """A read of an unknown symbol is normal; a read of a non-string is the caller's bug."""
    if not isinstance(symbol, str):
        raise InvalidSymbolError(symbol, "a symbol must be a string")
