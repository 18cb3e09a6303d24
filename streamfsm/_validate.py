"""Input checks shared by every front door: the client's config, the simulator's, the CLI, pricing.

Each check raises :class:`~streamfsm.errors.ConfigurationError` naming the field, what was
expected and what came, at the call that brought the value in. ``require_*`` functions check one
value and return it normalised; the lower-case factories wrap them as ``attrs`` validators.

The rules every numeric check shares: ``bool`` is not a number (``True`` is not a timeout), NaN
and infinities are refused, and every quantity has an upper bound beyond which it means nothing
(and some platform timers overflow), so a typo of three extra zeros is caught at the call.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

import attrs

from streamfsm.errors import ConfigurationError

__all__ = [
    "MAX_COUNT",
    "MAX_FACTOR",
    "MAX_SECONDS",
    "boolean",
    "count",
    "factor",
    "instance_of",
    "member",
    "number",
    "require_count",
    "require_instance",
    "require_number",
    "require_seconds",
    "require_text",
    "require_timeout",
    "seconds",
    "text",
]

#: A week. No timeout, delay or threshold of a market-data client needs more, and beyond about
#: 292 years ``threading`` waits overflow; one bound for every duration keeps typos out.
MAX_SECONDS: Final = 7 * 86_400.0
#: Counts and sizes stay within a C ``int``: beyond it ``deque(maxlen=...)`` and socket buffers
#: overflow, and no queue of this library could hold that much in memory anyway.
MAX_COUNT: Final = 2**31 - 1
#: Growth factors (backoff, cool-down, stale escalation) above this reach their cap on the first
#: step; a larger one says nothing more, so it is taken for a typo.
MAX_FACTOR: Final = 100.0

Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]
_E = TypeVar("_E", bound=enum.Enum)
_T = TypeVar("_T")


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a real number (bool included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _describe(low: float, high: float, *, open_low: bool, unit: str) -> str:
    lower = f"> {low:g}" if open_low else f">= {low:g}"
    suffix = f" ({unit})" if unit else ""
    return f"a finite number {lower} and <= {high:g}{suffix}"


def require_number(
    field: str,
    value: object,
    *,
    low: float = 0.0,
    high: float,
    open_low: bool = False,
    unit: str = "",
) -> float:
    """Return ``value`` as a float within ``[low, high]`` (``(low, high]`` when ``open_low``).

    Raises:
        ConfigurationError: for a bool, a non-number, NaN, an infinity or a value out of range.
    """
    number = _finite(value)
    if number is None or number > high or (number <= low if open_low else number < low):
        raise ConfigurationError(field, _describe(low, high, open_low=open_low, unit=unit), value)
    return number


def require_seconds(
    field: str, value: object, *, low: float = 0.0, allow_zero: bool = False
) -> float:
    """Return ``value`` as a duration in seconds, at most a week.

    It must be > 0 (>= 0 with ``allow_zero``), or >= ``low`` when a ``low`` above 0 is given.

    Raises:
        ConfigurationError: when it is not such a number.
    """
    open_low = low == 0 and not allow_zero
    return require_number(
        field, value, low=low, high=MAX_SECONDS, open_low=open_low, unit="seconds"
    )


def require_timeout(field: str, value: object) -> float | None:
    """Return a method's ``timeout`` argument: None (wait as long as it takes) or 0 .. a week.

    Raises:
        ConfigurationError: for a bool, a non-number, NaN, a negative or a huge value (which
            ``threading`` cannot wait for).
    """
    return None if value is None else require_seconds(field, value, allow_zero=True)


def require_count(field: str, value: object, *, low: int = 1, high: int = MAX_COUNT) -> int:
    """Return ``value`` as an ``int`` within ``[low, high]``; a bool or a float is refused.

    Raises:
        ConfigurationError: when it is not such an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(field, f"an integer in [{low}, {high}]", value)
    return value


def require_text(field: str, value: object, *, max_length: int = 256, secret: bool = False) -> str:
    """Return ``value`` as a non-blank, printable string of at most ``max_length`` characters.

    With ``secret`` the refused value is never echoed in the message.

    Raises:
        ConfigurationError: when it is not such a string.
    """
    ok = (
        isinstance(value, str)
        and bool(value.strip())
        and len(value) <= max_length
        and value.isprintable()
    )
    if not ok:
        shown: object = "<redacted>" if secret else value
        expected = f"a non-blank printable string of at most {max_length} characters"
        raise ConfigurationError(field, expected, shown)
    assert isinstance(value, str)
    return value


def require_instance(field: str, value: object, kind: type[_T], expected: str) -> _T:
    """Return ``value`` when it is a ``kind``.

    Raises:
        ConfigurationError: otherwise; the message says ``expected`` and the type that came.
    """
    if not isinstance(value, kind):
        raise ConfigurationError(field, expected, _type_name(value))
    return value


def _type_name(value: object) -> str:
    return f"{type(value).__name__} {value!r}" if _short(value) else type(value).__name__


def _short(value: object) -> bool:
    return isinstance(value, int | float | str | bytes | type(None)) and len(repr(value)) <= 40


# ---------------------------------------------------------------- attrs validator factories


def seconds(*, low: float = 0.0, allow_zero: bool = False, optional: bool = False) -> Validator:
    """A validator for a duration in seconds (see :func:`require_seconds`); None if ``optional``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        require_seconds(attribute.name, value, low=low, allow_zero=allow_zero)

    return check


def factor(*, low: float = 1.0, high: float = MAX_FACTOR) -> Validator:
    """A validator for a growth factor within ``[low, high]``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        require_number(attribute.name, value, low=low, high=high)

    return check


def number(
    *, low: float = 0.0, high: float, open_low: bool = False, optional: bool = False
) -> Validator:
    """A validator for a finite number within bounds (see :func:`require_number`)."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        require_number(attribute.name, value, low=low, high=high, open_low=open_low)

    return check


def count(*, low: int = 1, high: int = MAX_COUNT, optional: bool = False) -> Validator:
    """A validator for an integer within ``[low, high]``; None too when ``optional``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        require_count(attribute.name, value, low=low, high=high)

    return check


def boolean() -> Validator:
    """A validator accepting exactly ``True`` or ``False`` (not 0, 1 or "yes")."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, bool):
            raise ConfigurationError(attribute.name, "True or False", value)

    return check


def text(*, max_length: int = 256, optional: bool = False) -> Validator:
    """A validator for a non-blank printable string (see :func:`require_text`)."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        require_text(attribute.name, value, max_length=max_length)

    return check


def instance_of(kind: type, expected: str, *, optional: bool = False) -> Validator:
    """A validator accepting instances of ``kind`` (and None when ``optional``).

    ``expected`` is the message's description, e.g. ``"a StalePolicy"``; it should say how to
    build one, since the usual mistake is passing a bare number where a policy belongs.
    """

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        require_instance(attribute.name, value, kind, expected)

    return check


def member(kind: type[_E], field: str) -> Callable[[object], _E]:
    """An ``attrs`` converter: a member of ``kind`` from itself or its value.

    Raises (when called):
        ConfigurationError: naming ``field`` and every valid value.
    """

    def convert(value: object) -> _E:
        if isinstance(value, kind):
            return value
        for candidate in kind:
            # A str enum's members compare equal to their values; exact type avoids 1 == True.
            if type(value) is type(candidate.value) and value == candidate.value:
                return candidate
        choices = ", ".join(repr(candidate.value) for candidate in kind)
        raise ConfigurationError(field, f"one of {choices}", value)

    return convert
