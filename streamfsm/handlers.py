"""Typed callbacks per channel, and the check every handler passes where it enters.

A handler may be a function, a coroutine function, or any callable object; whatever its call
returns, if it is awaitable it is awaited (``async def __call__``, a lambda returning a
coroutine). Anything that is not callable is refused with
:class:`~streamfsm.errors.ConfigurationError` naming the argument, at construction.

For type checkers, each channel has its own alias, so ``mypy --strict`` refuses a quote handler
passed as ``on_trade``: a handler takes what its channel delivers in one of the model modes
(alpaca-py's model, streamfsm's fast struct, or the raw wire dict), or anything (``object``,
``Any``). At run time the aliases are plain ``Callable[[Any], object]``: alpaca-py's models are
imported for type checking only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from streamfsm.errors import ConfigurationError

__all__ = [
    "BarHandler",
    "CancelErrorHandler",
    "CorrectionHandler",
    "ErrorHandler",
    "GapHandler",
    "LuldHandler",
    "NewsHandler",
    "OrderbookHandler",
    "QuoteHandler",
    "StatusHandler",
    "TradeHandler",
    "check_handler",
]

if TYPE_CHECKING:
    from alpaca.data import models as alpaca

    from streamfsm import models
    from streamfsm._core.tracking import GapReport
    from streamfsm.errors import StreamError

    _Raw: TypeAlias = dict[str, Any]
    #: Receives quotes: alpaca-py ``Quote``, streamfsm ``Quote`` or a raw dict, by model mode.
    QuoteHandler: TypeAlias = (
        Callable[[alpaca.Quote], object]
        | Callable[[models.Quote], object]
        | Callable[[_Raw], object]
    )
    #: Receives trades: alpaca-py ``Trade``, streamfsm ``Trade`` or a raw dict.
    TradeHandler: TypeAlias = (
        Callable[[alpaca.Trade], object]
        | Callable[[models.Trade], object]
        | Callable[[_Raw], object]
    )
    #: Receives minute, updated and daily bars: alpaca-py ``Bar``, a streamfsm bar or a raw dict.
    BarHandler: TypeAlias = (
        Callable[[alpaca.Bar], object]
        | Callable[[models.Bar | models.UpdatedBar | models.DailyBar], object]
        | Callable[[_Raw], object]
    )
    #: Receives trading statuses: alpaca-py ``TradingStatus``, streamfsm's, or a raw dict.
    StatusHandler: TypeAlias = (
        Callable[[alpaca.TradingStatus], object]
        | Callable[[models.TradingStatus], object]
        | Callable[[_Raw], object]
    )
    #: Receives LULD bands: a dict in ``alpaca`` and ``raw`` modes (alpaca-py has no model).
    LuldHandler: TypeAlias = Callable[[models.Luld], object] | Callable[[_Raw], object]
    #: Receives trade corrections (they come with ``trades``).
    CorrectionHandler: TypeAlias = (
        Callable[[alpaca.TradeCorrection], object]
        | Callable[[models.TradeCorrection], object]
        | Callable[[_Raw], object]
    )
    #: Receives trade cancels and errors (they come with ``trades``).
    CancelErrorHandler: TypeAlias = (
        Callable[[alpaca.TradeCancel], object]
        | Callable[[models.TradeCancel], object]
        | Callable[[_Raw], object]
    )
    #: Receives crypto order books, snapshots (``reset``) and updates.
    OrderbookHandler: TypeAlias = (
        Callable[[alpaca.Orderbook], object]
        | Callable[[models.Orderbook], object]
        | Callable[[_Raw], object]
    )
    #: Receives news articles.
    NewsHandler: TypeAlias = (
        Callable[[alpaca.News], object] | Callable[[models.News], object] | Callable[[_Raw], object]
    )
    #: Receives the errors the user must know about.
    ErrorHandler: TypeAlias = Callable[[StreamError], object]
    #: Receives a gap report after an outage.
    GapHandler: TypeAlias = Callable[[GapReport], object]
else:
    QuoteHandler = TradeHandler = BarHandler = ErrorHandler = GapHandler = Callable[[Any], object]
    StatusHandler = LuldHandler = CorrectionHandler = CancelErrorHandler = Callable[[Any], object]
    OrderbookHandler = NewsHandler = Callable[[Any], object]

_H = TypeVar("_H")


def check_handler(name: str, handler: _H | None) -> _H | None:
    """Return ``handler`` when it is None or callable.

    Raises:
        ConfigurationError: naming ``name`` when ``handler`` is neither (for example a number,
            a string, or the result of calling the handler instead of the handler itself).
    """
    if handler is not None and not callable(handler):
        expected = "a function, coroutine function or callable object (or None)"
        raise ConfigurationError(name, expected, type(handler).__name__)
    return handler
