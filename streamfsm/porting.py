"""alpaca-py's stream methods on :class:`~streamfsm.StreamController`, so a port is a constructor.

``ctl.subscribe_quotes(handler, "AAPL", "MSFT")`` registers ``handler`` for those symbols and
subscribes them, as alpaca-py's ``StockDataStream.subscribe_quotes`` does; ``"*"`` registers the
handler for every symbol without one of its own. Every ``subscribe_*``, ``unsubscribe_*`` and
``register_*`` method of alpaca-py's ``StockDataStream``, ``CryptoDataStream``,
``OptionDataStream`` and ``NewsDataStream`` is here under its name and signature; handlers may be
coroutine functions (as alpaca-py requires) or plain functions. Per-symbol handlers win over the
``*`` handler, which wins over the constructor's ``on_*`` callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from streamfsm._aio.arguments import CHANNEL_OF_HANDLER
from streamfsm._aio.deliveries import HANDLERS, Callback, Deliveries
from streamfsm._core.subscriptions import CHANNELS, Subscription, check_market
from streamfsm.errors import ConfigurationError
from streamfsm.markets import Market

if TYPE_CHECKING:
    from streamfsm.config import StreamConfig

__all__ = ["AlpacaStreamMethods", "requested_change"]


def requested_change(channels: Mapping[str, Iterable[str] | str], market: Market) -> Subscription:
    """The subscription ``subscribe()``'s keywords name, checked against ``market``.

    Raises:
        ConfigurationError: for a keyword that names no channel.
        InvalidSymbolError: for a symbol or channel ``market`` does not serve.
    """
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise ConfigurationError(unknown[0], f"a channel: one of {', '.join(CHANNELS)}", "")
    change = Subscription(**channels)
    check_market(change, market)
    return change


class AlpacaStreamMethods:
    """The alpaca-py stream methods; the controller supplies the four primitives below."""

    config: StreamConfig

    def subscribe(self, **channels: Iterable[str] | str) -> None:
        raise NotImplementedError  # the controller's

    def unsubscribe(self, **channels: Iterable[str] | str) -> None:
        raise NotImplementedError  # the controller's

    def _on_routes(self, action: Callable[[Deliveries], None]) -> None:
        raise NotImplementedError  # the controller's

    def _handle(self, name: str, handler: Callback, symbols: tuple[str, ...]) -> None:
        channel = CHANNEL_OF_HANDLER[name]
        check_market(Subscription(**{channel: symbols}), self.config.market)
        self._on_routes(lambda routes: routes.set_symbol_handler(name, handler, symbols))
        if symbols:
            self.subscribe(**{channel: symbols})

    def _drop(self, name: str, symbols: tuple[str, ...]) -> None:
        self.unsubscribe(**{CHANNEL_OF_HANDLER[name]: symbols})
        self._on_routes(lambda routes: routes.remove_symbol_handlers(name, symbols))

    # ------------------------------------------------------------ subscribe_*

    def subscribe_trades(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_trades``: ``handler`` gets the trades of ``symbols``."""
        self._handle("on_trade", handler, symbols)

    def subscribe_quotes(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_quotes``: ``handler`` gets the quotes of ``symbols``."""
        self._handle("on_quote", handler, symbols)

    def subscribe_bars(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_bars``: ``handler`` gets the minute bars of ``symbols``."""
        self._handle("on_bar", handler, symbols)

    def subscribe_updated_bars(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_updated_bars`` (stocks, crypto)."""
        self._handle("on_updated_bar", handler, symbols)

    def subscribe_daily_bars(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_daily_bars`` (stocks, crypto)."""
        self._handle("on_daily_bar", handler, symbols)

    def subscribe_trading_statuses(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_trading_statuses`` (stocks): halts and resumes."""
        self._handle("on_status", handler, symbols)

    def subscribe_lulds(self, handler: Callback, *symbols: str) -> None:
        """LULD price bands (stocks); alpaca-py has no method for them, the wire has a channel."""
        self._handle("on_luld", handler, symbols)

    def subscribe_orderbooks(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_orderbooks`` (crypto): snapshots and updates."""
        self._handle("on_orderbook", handler, symbols)

    def subscribe_news(self, handler: Callback, *symbols: str) -> None:
        """alpaca-py's ``subscribe_news``: ``handler`` gets the news about ``symbols``."""
        self._handle("on_news", handler, symbols)

    def register_trade_corrections(self, handler: Callback) -> None:
        """alpaca-py's ``register_trade_corrections``: corrections of subscribed trades."""
        self._on_routes(lambda routes: routes.set_symbol_handler("on_correction", handler, ("*",)))

    def register_trade_cancels(self, handler: Callback) -> None:
        """alpaca-py's ``register_trade_cancels``: cancel errors of subscribed trades."""
        self._on_routes(
            lambda routes: routes.set_symbol_handler("on_cancel_error", handler, ("*",))
        )

    # ------------------------------------------------------------ unsubscribe_*

    def unsubscribe_trades(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_trades``."""
        self._drop("on_trade", symbols)

    def unsubscribe_quotes(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_quotes``."""
        self._drop("on_quote", symbols)

    def unsubscribe_bars(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_bars``."""
        self._drop("on_bar", symbols)

    def unsubscribe_updated_bars(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_updated_bars``."""
        self._drop("on_updated_bar", symbols)

    def unsubscribe_daily_bars(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_daily_bars``."""
        self._drop("on_daily_bar", symbols)

    def unsubscribe_trading_statuses(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_trading_statuses``."""
        self._drop("on_status", symbols)

    def unsubscribe_lulds(self, *symbols: str) -> None:
        """Stop LULD bands of ``symbols``."""
        self._drop("on_luld", symbols)

    def unsubscribe_orderbooks(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_orderbooks``."""
        self._drop("on_orderbook", symbols)

    def unsubscribe_news(self, *symbols: str) -> None:
        """alpaca-py's ``unsubscribe_news``."""
        self._drop("on_news", symbols)


assert set(CHANNEL_OF_HANDLER) == set(HANDLERS)
