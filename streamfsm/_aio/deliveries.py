"""Which user callback receives each market-data type, converted as the model mode asks.

The controller builds this table once from its ``on_*`` arguments; the dispatcher looks each
message's type up in it (the fast struct type, or ``dict`` for the raw mode's wire dicts).

Per-symbol handlers (alpaca-py's ``subscribe_quotes(handler, "AAPL")`` style) live in a
:class:`Route` per handler name: the handler of the message's symbol, else the ``*`` handler,
else the constructor's ``on_*`` callback. A type without per-symbol handlers is delivered to its
callback directly, with no routing cost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from streamfsm._aio.dispatch import Delivery
from streamfsm._validate import member
from streamfsm.config import ModelMode
from streamfsm.errors import ConfigurationError
from streamfsm.models import (
    Bar,
    DailyBar,
    Luld,
    MarketData,
    News,
    Orderbook,
    Quote,
    Trade,
    TradeCancel,
    TradeCorrection,
    TradingStatus,
    UpdatedBar,
    alpaca_converter,
    load_alpaca_models,
)

__all__ = [
    "HANDLERS",
    "Callback",
    "Deliveries",
    "Route",
    "model_mode",
]

_MODEL_MODE = member(ModelMode, "models")

Callback = Callable[[Any], object]

#: Each handler name, the struct type it receives, and its wire tag.
HANDLERS: Final[dict[str, tuple[type[MarketData], str]]] = {
    "on_quote": (Quote, "q"),
    "on_trade": (Trade, "t"),
    "on_bar": (Bar, "b"),
    "on_updated_bar": (UpdatedBar, "u"),
    "on_daily_bar": (DailyBar, "d"),
    "on_status": (TradingStatus, "s"),
    "on_luld": (Luld, "l"),
    "on_correction": (TradeCorrection, "c"),
    "on_cancel_error": (TradeCancel, "x"),
    "on_orderbook": (Orderbook, "o"),
    "on_news": (News, "n"),
}
#: Updated and daily bars reach ``on_bar`` when they have no handler of their own.
_FALLBACK: Final = {"on_updated_bar": "on_bar", "on_daily_bar": "on_bar"}
_WILDCARD: Final = "*"
#: The handlers that receive each subscription channel's data.
_RECEIVERS: Final = {
    "quotes": ("on_quote",),
    "trades": ("on_trade", "on_correction", "on_cancel_error"),
    "bars": ("on_bar",),
    "updated_bars": ("on_updated_bar",),
    "daily_bars": ("on_daily_bar",),
    "statuses": ("on_status",),
    "lulds": ("on_luld",),
    "orderbooks": ("on_orderbook",),
    "news": ("on_news",),
}


def model_mode(models: ModelMode | str) -> ModelMode:
    """The model mode named by ``models``.

    Raises:
        ConfigurationError: when it names none.
    """
    return _MODEL_MODE(models)


def _symbols_of(item: Any) -> Iterable[str]:
    """The symbols a delivered item is about: a struct, an alpaca-py model or a wire dict."""
    if type(item) is dict:
        if item.get("T") == "n":
            return item.get("symbols") or (_WILDCARD,)
        return (item["S"],)
    symbols = getattr(item, "symbols", None)
    if symbols is not None:
        return symbols or (_WILDCARD,)
    return (item.symbol,)


async def _each(results: list[Awaitable[object]]) -> None:
    for result in results:
        await result


class Route:
    """The handlers of one handler name: per symbol, for ``*``, and the default.

    Calling it delivers one item the way alpaca-py's stream does: to the handler of its symbol,
    else the ``*`` handler, else the default. A news article about several symbols reaches each
    of their handlers once, and the ``*`` handler at most once.
    """

    __slots__ = ("by_symbol", "default")

    def __init__(self, default: Callback | None) -> None:
        self.default = default
        self.by_symbol: dict[str, Callback] = {}

    def __call__(self, item: Any) -> object:
        by_symbol = self.by_symbol
        symbols = _symbols_of(item)
        chosen: list[Callback] = []
        fallback = by_symbol.get(_WILDCARD, self.default)
        for symbol in dict.fromkeys(symbols):
            handler = by_symbol.get(symbol)
            if handler is None:
                handler, fallback = fallback, None
            if handler is not None and handler not in chosen:
                chosen.append(handler)
        results = [result for handler in chosen if (result := handler(item)) is not None]
        awaitables = [result for result in results if isinstance(result, Awaitable)]
        return _each(awaitables) if awaitables else None


class Deliveries:
    """The dispatcher's table and the routes behind it, for one controller.

    Args:
        mode: the model mode.
        callbacks: handler name (``on_quote``...) -> callback, None where not given.
    """

    def __init__(self, mode: ModelMode, callbacks: dict[str, Callback | None]) -> None:
        unknown = set(callbacks) - set(HANDLERS)
        if unknown:
            raise ConfigurationError("handlers", "on_* names of HANDLERS", sorted(unknown))
        self.mode = mode
        if mode is ModelMode.ALPACA:
            # Now, at construction: the import takes about a second and must never stall the
            # loop when a per-symbol handler is added later.
            load_alpaca_models()
        self.routes: dict[str, Route] = {}
        self._callbacks = dict(callbacks)
        #: What the dispatcher reads: type -> Delivery (``dict`` in raw mode).
        self.table: dict[type, Delivery] = {}
        self._by_tag: dict[str, Callback] = {}
        for name in HANDLERS:
            self._install(name)

    def handler_of(self, name: str) -> Callback | None:
        """The callback ``name`` resolves to (its own, else ``on_bar`` for updated/daily bars)."""
        route = self.routes.get(name)
        if route is not None:
            return route
        callback = self._callbacks.get(name)
        if callback is None and name in _FALLBACK:
            return self.handler_of(_FALLBACK[name])
        return callback

    def receives(self, channel: str) -> bool:
        """True when some handler gets ``channel``'s data (trades: corrections and cancels too)."""
        names = _RECEIVERS.get(channel, ())
        return any(self.handler_of(name) is not None for name in names)

    def set_symbol_handler(self, name: str, handler: Callback, symbols: Iterable[str]) -> None:
        """Route ``name``'s items about ``symbols`` to ``handler`` (call on the loop)."""
        route = self.routes.get(name)
        if route is None:
            route = self.routes[name] = Route(self.handler_of(name))
        for symbol in symbols:
            route.by_symbol[symbol] = handler
        self._install(name)
        for dependent, base in _FALLBACK.items():
            if base == name and dependent not in self.routes and not self._callbacks.get(dependent):
                self._install(dependent)

    def remove_symbol_handlers(self, name: str, symbols: Iterable[str]) -> None:
        """Forget ``name``'s per-symbol handlers of ``symbols`` (call on the loop)."""
        route = self.routes.get(name)
        if route is None:
            return
        for symbol in symbols:
            route.by_symbol.pop(symbol, None)

    def _install(self, name: str) -> None:
        kind, tag = HANDLERS[name]
        callback = self.handler_of(name)
        if self.mode is ModelMode.RAW:
            if callback is None:
                self._by_tag.pop(tag, None)
            else:
                self._by_tag[tag] = callback
            if self._by_tag:
                self.table[dict] = Delivery("on_*", self._raw)
            return
        if callback is None:
            self.table.pop(kind, None)
            return
        convert = alpaca_converter(kind) if self.mode is ModelMode.ALPACA else None
        self.table[kind] = Delivery(name, callback, convert)

    def _raw(self, message: dict[str, Any]) -> object:
        handler = self._by_tag.get(message["T"])
        return None if handler is None else handler(message)
