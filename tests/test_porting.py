"""A port from alpaca-py is a change of constructor: the same methods, routed the same way."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from alpaca.data.live import CryptoDataStream, NewsDataStream, OptionDataStream, StockDataStream

from streamfsm import StreamController
from streamfsm._aio.deliveries import HANDLERS, Deliveries, Route
from streamfsm.config import ModelMode
from streamfsm.errors import ConfigurationError
from streamfsm.models import News, Quote

STREAMS = [StockDataStream, CryptoDataStream, OptionDataStream, NewsDataStream]


def stream_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(getattr(cls, name))
        for name in dir(cls)
        if name.startswith(("subscribe_", "unsubscribe_", "register_"))
    }


@pytest.mark.parametrize("stream", STREAMS, ids=lambda cls: cls.__name__)
def test_every_alpaca_py_stream_method_exists_with_its_parameters(stream: type) -> None:
    """Each subscribe_*/unsubscribe_*/register_* of the four alpaca-py streams is on the
    controller, with the same parameter names and kinds."""
    for name, theirs in stream_methods(stream).items():
        ours = inspect.signature(getattr(StreamController, name))
        shape = [(p.name, p.kind) for p in theirs.parameters.values()]
        assert [(p.name, p.kind) for p in ours.parameters.values()] == shape, name


def quote(symbol: str) -> Quote:
    import datetime as dt

    return Quote(
        symbol=symbol,
        timestamp=dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
        bid_price=1.0,
        bid_size=1,
        ask_price=1.1,
        ask_size=1,
    )


def news(*symbols: str) -> News:
    import datetime as dt

    when = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    return News(id=1, headline="h", created_at=when, updated_at=when, symbols=list(symbols))


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def handler(self, name: str) -> Any:
        return lambda item: self.seen.append((name, item))


def test_a_route_prefers_the_symbol_then_the_wildcard_then_the_default() -> None:
    """The symbol's handler wins, then ``*``, then the constructor's callback."""
    calls = Calls()
    route = Route(calls.handler("default"))
    route.by_symbol["AAPL"] = calls.handler("aapl")
    route(quote("AAPL"))
    route(quote("MSFT"))
    route.by_symbol["*"] = calls.handler("star")
    route(quote("MSFT"))
    assert [name for name, _ in calls.seen] == ["aapl", "default", "star"]


def test_news_reaches_each_symbols_handler_once_and_the_wildcard_at_most_once() -> None:
    """An article about AAPL, MSFT and TSLA: AAPL's handler once, ``*`` once for the others."""
    calls = Calls()
    route = Route(None)
    route.by_symbol["AAPL"] = calls.handler("aapl")
    route.by_symbol["*"] = calls.handler("star")
    route(news("AAPL", "MSFT", "TSLA"))
    route(news())
    assert [name for name, _ in calls.seen] == ["aapl", "star", "star"]


def test_async_handlers_are_awaited_in_turn() -> None:
    """A route over coroutine handlers returns one awaitable that runs them all."""
    import asyncio

    seen: list[str] = []

    async def first(_item: Any) -> None:
        seen.append("first")

    async def star(_item: Any) -> None:
        seen.append("star")

    route = Route(None)
    route.by_symbol.update({"AAPL": first, "*": star})
    result = route(news("AAPL", "MSFT"))
    assert inspect.isawaitable(result)
    asyncio.run(result)  # type: ignore[arg-type]
    assert seen == ["first", "star"]


def test_updated_and_daily_bars_fall_back_to_on_bar() -> None:
    """Without their own handlers, updated and daily bars reach on_bar, as before."""
    on_bar = print
    deliveries = Deliveries(ModelMode.FAST, {"on_bar": on_bar})
    assert {delivery.callback for delivery in deliveries.table.values()} == {on_bar}
    assert len(deliveries.table) == 3


def test_raw_mode_has_one_delivery_routing_by_tag() -> None:
    """In raw mode the dispatcher sees one delivery for dicts, which routes by ``T``."""
    calls = Calls()
    deliveries = Deliveries(
        ModelMode.RAW, {"on_quote": calls.handler("q"), "on_news": calls.handler("n")}
    )
    (delivery,) = deliveries.table.values()
    delivery.callback({"T": "q", "S": "AAPL"})
    delivery.callback({"T": "n", "symbols": []})
    delivery.callback({"T": "t", "S": "AAPL"})
    assert [name for name, _ in calls.seen] == ["q", "n"]


def test_unknown_handler_names_are_refused() -> None:
    """A handler name outside the table is a configuration error."""
    with pytest.raises(ConfigurationError):
        Deliveries(ModelMode.FAST, {"on_trades": print})
    assert "on_orderbook" in HANDLERS
