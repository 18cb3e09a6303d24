"""The dispatcher: isolated callbacks, order, and the bounded queue's overflow policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from streamfsm._aio.dispatch import Delivery, Dispatcher
from streamfsm.config import OverflowPolicy
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote, Trade

T0 = datetime(2026, 1, 2, tzinfo=UTC)


def quote(symbol: str, bid: float) -> Quote:
    return Quote(
        symbol=symbol, timestamp=T0, bid_price=bid, bid_size=1, ask_price=bid + 1, ask_size=1
    )


def trade(symbol: str, price: float) -> Trade:
    return Trade(symbol=symbol, timestamp=T0, price=price, size=1)


def make(bound: int, overflow: OverflowPolicy, sink: list[Any]) -> Dispatcher:
    return Dispatcher(
        {Quote: Delivery("on_quote", sink.append), Trade: Delivery("on_trade", sink.append)},
        bound,
        overflow,
        StreamLogger(test="dispatch"),
    )


async def drain(dispatcher: Dispatcher) -> None:
    task = asyncio.create_task(dispatcher.run())
    await dispatcher.wait_idle()
    dispatcher.close()
    await task


def test_delivers_in_order_and_survives_a_raising_callback() -> None:
    """A raising callback is counted; the rest of the frame is still delivered, in order."""
    seen: list[Any] = []

    def flaky(item: Any) -> None:
        seen.append(item)
        if item.bid_price == 2:
            raise ValueError("bug")

    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", flaky)}, 10, OverflowPolicy.CONFLATE, StreamLogger()
    )
    batch = [quote("A", 1), quote("A", 2), quote("A", 3)]

    async def main() -> None:
        dispatcher.put(list(batch), 0.0)
        await drain(dispatcher)

    asyncio.run(main())
    assert seen == batch
    assert dispatcher.callback_errors == 1
    assert dispatcher.delivered == 3


def test_async_callbacks_are_awaited() -> None:
    """Coroutine callbacks run to completion before the next message."""
    seen: list[float] = []

    async def handler(item: Any) -> None:
        await asyncio.sleep(0)
        seen.append(item.bid_price)

    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", handler)}, 10, OverflowPolicy.CONFLATE, StreamLogger()
    )

    async def main() -> None:
        dispatcher.put([quote("A", 1), quote("B", 2)], 0.0)
        await drain(dispatcher)

    asyncio.run(main())
    assert seen == [1, 2]


def test_conflation_keeps_the_newest_quote_per_symbol_and_every_trade() -> None:
    """Over the bound, superseded quotes go first; trades are kept while that suffices."""
    sink: list[Any] = []
    dispatcher = make(4, OverflowPolicy.CONFLATE, sink)
    dispatcher.put([quote("A", 1), trade("A", 10), quote("B", 1)], 0.0)
    dispatcher.put([quote("A", 2), quote("B", 2), trade("A", 11)], 0.0)
    assert dispatcher.dropped == 2
    assert dispatcher.pending == 4

    asyncio.run(drain(dispatcher))
    assert [(type(m).__name__, m.symbol) for m in sink] == [
        ("Trade", "A"),
        ("Quote", "A"),
        ("Quote", "B"),
        ("Trade", "A"),
    ]
    assert [m.bid_price for m in sink if isinstance(m, Quote)] == [2, 2]


def test_drop_oldest_bounds_memory_whatever_the_channel() -> None:
    """With drop_oldest the queue never holds more than its bound; the oldest go first."""
    sink: list[Any] = []
    dispatcher = make(3, OverflowPolicy.DROP_OLDEST, sink)
    for price in range(10):
        dispatcher.put([trade("A", price)], 0.0)
        assert dispatcher.pending <= 3
    assert dispatcher.dropped == 7
    asyncio.run(drain(dispatcher))
    assert [m.price for m in sink] == [7, 8, 9]


def test_closed_dispatcher_delivers_nothing_more() -> None:
    """After close(), queued and new messages are never delivered."""
    sink: list[Any] = []
    dispatcher = make(10, OverflowPolicy.CONFLATE, sink)
    dispatcher.put([quote("A", 1)], 0.0)
    dispatcher.close()
    dispatcher.put([quote("A", 2)], 0.0)
    asyncio.run(dispatcher.run())
    assert sink == []
