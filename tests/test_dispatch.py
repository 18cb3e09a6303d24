"""The dispatcher: isolated callbacks, order, close between messages, and the bounded backlog."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from streamfsm._aio.dispatch import Delivery, Dispatcher
from streamfsm.config import OverflowPolicy
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote, Trade

T0 = datetime(2026, 1, 2, tzinfo=UTC)
#: Generous bound on waits for another thread (never an assertion on speed).
WAIT = 10.0


def quote(symbol: str, bid: float) -> Quote:
    return Quote(
        symbol=symbol, timestamp=T0, bid_price=bid, bid_size=1, ask_price=bid + 1, ask_size=1
    )


def trade(symbol: str, price: float) -> Trade:
    return Trade(symbol=symbol, timestamp=T0, price=price, size=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    sink: list[Any],
    *,
    bound: int = 1000,
    overflow: OverflowPolicy = OverflowPolicy.CONFLATE,
    max_bytes: int = 1 << 30,
    max_age: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Dispatcher:
    return Dispatcher(
        {Quote: Delivery("on_quote", sink.append), Trade: Delivery("on_trade", sink.append)},
        bound,
        overflow,
        StreamLogger(test="dispatch"),
        max_bytes=max_bytes,
        max_age=max_age,
        clock=clock if clock is not None else FakeClock(),
    )


def hold(dispatcher: Dispatcher) -> None:
    """Queue a notice first, so that what is put next has to wait (a consumer behind)."""
    dispatcher.notify(lambda _argument: None, None)


async def drain(dispatcher: Dispatcher) -> None:
    task = asyncio.create_task(dispatcher.run())
    await dispatcher.wait_idle()
    dispatcher.close()
    await task


def test_a_frame_is_delivered_in_order_at_once_and_survives_a_raising_callback() -> None:
    """With nothing waiting, put() runs the callbacks; a raising one is counted, the rest run."""
    seen: list[Any] = []

    def flaky(item: Any) -> None:
        seen.append(item)
        if item.bid_price == 2:
            raise ValueError("bug")

    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", flaky)}, 10, OverflowPolicy.CONFLATE, StreamLogger()
    )
    batch = [quote("A", 1), quote("A", 2), quote("A", 3)]
    dispatcher.put(list(batch), 0.0, Quote)
    assert seen == batch
    assert dispatcher.callback_errors == 1
    assert dispatcher.delivered == 3
    assert dispatcher.pending == 0


def test_mixed_frames_reach_each_callback_and_unheard_channels_cost_nothing() -> None:
    """A mixed frame goes message by message to its callbacks; an unheard frame is skipped."""
    quotes: list[Any] = []
    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", quotes.append)}, 10, OverflowPolicy.CONFLATE, StreamLogger()
    )
    dispatcher.put([trade("A", 1), quote("A", 1), trade("A", 2)], 0.0, None)
    dispatcher.put([trade("A", 3)], 0.0, Trade)
    assert [q.bid_price for q in quotes] == [1]
    assert dispatcher.delivered == 1


class AsyncCallable:
    def __init__(self, seen: list[float]) -> None:
        self.seen = seen

    async def __call__(self, item: Any) -> None:
        await asyncio.sleep(0)
        self.seen.append(item.bid_price)


def test_every_awaitable_result_is_awaited_in_order() -> None:
    """Coroutine functions, async __call__ objects and lambdas returning coroutines are awaited."""
    seen: list[float] = []

    async def record(item: Any) -> None:
        await asyncio.sleep(0)
        seen.append(item.bid_price)

    handlers: list[Callable[[Any], Awaitable[None] | None]] = [
        record,
        AsyncCallable(seen),
        lambda item: record(item),  # noqa: PLW0108 - a lambda returning a coroutine
    ]
    for handler in handlers:
        seen.clear()
        dispatcher = Dispatcher(
            {Quote: Delivery("on_quote", handler)}, 10, OverflowPolicy.CONFLATE, StreamLogger()
        )

        async def main(dispatcher: Dispatcher = dispatcher) -> None:
            dispatcher.put([quote("A", 1), quote("B", 2)], 0.0, Quote)
            dispatcher.put([quote("C", 3)], 0.0, Quote)
            await drain(dispatcher)

        asyncio.run(main())
        assert seen == [1, 2, 3], handler


def test_a_waiting_quote_is_superseded_at_once_trades_are_kept_in_order() -> None:
    """Conflate: a newer quote of a symbol replaces the waiting one at once, below any bound."""
    sink: list[Any] = []
    dispatcher = make(sink)
    hold(dispatcher)
    dispatcher.put([quote("A", 1), trade("A", 10), quote("B", 1)], 0.0)
    dispatcher.put([quote("A", 2), trade("A", 11), quote("A", 3)], 0.0)
    assert dispatcher.dropped == 2
    assert dispatcher.pending == 4
    asyncio.run(drain(dispatcher))
    assert [(type(m).__name__, m.symbol) for m in sink] == [
        ("Trade", "A"),
        ("Quote", "B"),
        ("Trade", "A"),
        ("Quote", "A"),
    ]
    assert [m.bid_price for m in sink if isinstance(m, Quote)] == [1, 3]


def test_drop_oldest_keeps_every_quote_within_the_bound() -> None:
    """drop_oldest never conflates; over the count bound the oldest go, whatever the channel."""
    sink: list[Any] = []
    dispatcher = make(sink, bound=3, overflow=OverflowPolicy.DROP_OLDEST)
    hold(dispatcher)
    for price in range(10):
        dispatcher.put([trade("A", price)], 0.0)
        assert dispatcher.pending <= 3
    assert dispatcher.dropped == 7
    asyncio.run(drain(dispatcher))
    assert [m.price for m in sink] == [7, 8, 9]


def test_the_backlog_is_bounded_in_bytes() -> None:
    """The byte bound drops the oldest waiting messages even below the count bound."""
    sink: list[Any] = []
    dispatcher = make(sink, overflow=OverflowPolicy.DROP_OLDEST, max_bytes=2_000)
    hold(dispatcher)
    for price in range(50):
        dispatcher.put([trade("A", price)], 0.0)
        assert dispatcher.backlog.bytes <= 2_000
    assert 0 < dispatcher.pending < 50
    assert dispatcher.dropped + dispatcher.pending == 50


def test_messages_older_than_the_age_bound_are_dropped_not_delivered() -> None:
    """A message that waited longer than max_age is counted as dropped and never delivered."""
    sink: list[Any] = []
    clock = FakeClock()
    dispatcher = make(sink, max_age=0.5, clock=clock)
    hold(dispatcher)
    dispatcher.put([trade("A", 1)], clock.now)
    clock.now += 0.4
    dispatcher.put([trade("A", 2)], clock.now)
    clock.now += 0.2
    assert dispatcher.lag(clock.now) > 0.5
    asyncio.run(drain(dispatcher))
    assert [m.price for m in sink] == [2]
    assert dispatcher.backlog.expired == 1


def test_close_inside_a_callback_stops_before_the_next_message_and_counts_the_rest() -> None:
    """close() from a callback: nothing more is delivered; the frame's rest is counted."""
    seen: list[Any] = []
    holder: dict[str, Dispatcher] = {}

    def on_quote(item: Any) -> None:
        seen.append(item)
        if len(seen) == 2:
            holder["d"].close()

    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", on_quote)}, 10, OverflowPolicy.CONFLATE, StreamLogger()
    )
    holder["d"] = dispatcher
    dispatcher.put([quote("A", price) for price in range(5)], 0.0, Quote)
    dispatcher.put([quote("A", 9)], 0.0, Quote)
    assert len(seen) == 2
    assert dispatcher.discarded == 4
    assert dispatcher.dropped == 4


def test_close_discards_and_counts_what_waits() -> None:
    """Waiting messages are never delivered after close(), and they are counted."""
    sink: list[Any] = []
    dispatcher = make(sink)
    hold(dispatcher)
    dispatcher.put([trade("A", 1), trade("A", 2)], 0.0)
    dispatcher.close()
    asyncio.run(dispatcher.run())
    assert sink == []
    assert dispatcher.discarded == 2
    assert dispatcher.pending == 0


def test_close_from_another_thread_takes_effect_between_messages() -> None:
    """While a slow callback runs, close() from another thread returns after it; none starts."""
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []
    after_close: list[int] = []
    closed = threading.Event()

    def slow(_item: Any) -> None:
        calls.append(1)
        if closed.is_set():
            after_close.append(1)
        started.set()
        release.wait(WAIT)

    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", slow)}, 1000, OverflowPolicy.DROP_OLDEST, StreamLogger()
    )

    def closer() -> None:
        assert started.wait(WAIT)
        release.set()
        assert dispatcher.close(timeout=WAIT)
        closed.set()

    thread = threading.Thread(target=closer)
    thread.start()
    dispatcher.put([quote("A", price) for price in range(300)], 0.0, Quote)
    thread.join(WAIT)
    assert closed.is_set()
    assert after_close == []
    assert len(calls) + dispatcher.discarded + dispatcher.pending == 300
    assert len(calls) < 300


def test_a_slow_frame_yields_to_the_reader_and_its_rest_is_conflated() -> None:
    """Callbacks slower than yield_after: the frame's rest waits, and newer quotes replace it."""
    seen: list[Any] = []
    clock = FakeClock()
    gate = threading.Event()

    def slow(item: Any) -> None:
        seen.append(item)
        gate.wait(0.002)  # slower than yield_after

    dispatcher = Dispatcher(
        {Quote: Delivery("on_quote", slow)},
        1000,
        OverflowPolicy.CONFLATE,
        StreamLogger(),
        yield_after=0.001,
        clock=clock,
    )

    async def main() -> None:
        task = asyncio.create_task(dispatcher.run())
        dispatcher.put([quote("A", price) for price in range(5)], clock.now, Quote)
        assert dispatcher.pending > 0  # the frame was interrupted; its rest waits
        dispatcher.put([quote("A", 99)], clock.now, Quote)
        await dispatcher.wait_idle()
        dispatcher.close()
        await task

    asyncio.run(main())
    assert seen[-1].bid_price == 99
    assert len(seen) < 6
    assert dispatcher.dropped == 6 - len(seen)
