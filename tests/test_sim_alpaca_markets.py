"""alpaca-py's own crypto, option and news streams, unchanged, read the simulator's new markets.

As in ``test_sim_alpaca.py``: the simulator runs in a ``SimulatorThread``, alpaca-py's ``run()``
in a thread of its own; waits are bounded and event-driven.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from alpaca.data.enums import CryptoFeed, OptionsFeed
from alpaca.data.live import CryptoDataStream, NewsDataStream, OptionDataStream
from alpaca.data.live.websocket import DataStream
from alpaca.data.models import Bar, News, Orderbook, Quote, Trade

from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

TIMEOUT = 8.0
RATE = 400.0
pytestmark = pytest.mark.usefixtures("no_leaked_threads")

CALL = "AAPL250620C00200000"
PUT = "SPY250620P00500000"


class Client:
    """One alpaca-py stream in a thread; ``record`` is the handler to subscribe with."""

    def __init__(self, sim: SimulatorThread, stream: DataStream) -> None:
        self.sim = sim
        self.stream = stream
        self.received: list[Any] = []
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=stream.run, name="alpaca-py-stream")

    async def record(self, item: Any) -> None:
        with self._changed:
            self.received.append(item)
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[list[Any]], bool]) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: condition(self.received), TIMEOUT)

    def __enter__(self) -> Client:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.thread.is_alive():
            self.sim.wait_for_connections(1, TIMEOUT)
            self.stream.stop()
            self.sim.drop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "alpaca-py did not stop"


def crypto(sim: SimulatorThread, **kwargs: Any) -> CryptoDataStream:
    return CryptoDataStream(DEMO_KEY_ID, DEMO_SECRET, url_override=sim.url("us"), **kwargs)


def test_crypto_stream_gets_typed_quotes_trades_bars_and_books() -> None:
    """CryptoDataStream gets Quote, Trade, Bar and Orderbook models; the first book is a reset."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        client = Client(sim, crypto(sim))
        client.stream.subscribe_quotes(client.record, "BTC/USD")
        client.stream.subscribe_trades(client.record, "ETH/USD")
        client.stream.subscribe_bars(client.record, "BTC/USD")
        client.stream.subscribe_orderbooks(client.record, "BTC/USD")
        with client:
            client.wait_until(
                lambda items: {type(item) for item in items} >= {Quote, Trade, Bar, Orderbook}
            )
            books = [item for item in client.received if isinstance(item, Orderbook)]
            assert books[0].reset is True
            assert len(books[0].bids) > 1
            assert all(not book.reset for book in books[1:])
            trades = [item for item in client.received if isinstance(item, Trade)]
            assert {trade.symbol for trade in trades} == {"ETH/USD"}
            assert any(trade.size != int(trade.size) for trade in trades)  # fractional sizes
            quotes = [item for item in client.received if isinstance(item, Quote)]
            assert all(quote.bid_exchange is None for quote in quotes)
            (info,) = sim.connections()
            assert info.subscriptions.orderbooks == {"BTC/USD"}


def test_crypto_raw_data_keeps_the_wire_values() -> None:
    """With raw_data=True alpaca-py hands out the wire dicts: fractional sizes, the taker side."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        client = Client(sim, crypto(sim, raw_data=True))
        client.stream.subscribe_trades(client.record, "BTC/USD")
        with client:
            client.wait_until(lambda items: len(items) >= 5)
            trade = client.received[0]
            assert trade["T"] == "t"
            assert trade["tks"] in {"B", "S"}
            assert isinstance(trade["s"], float)


@pytest.mark.parametrize("feed", [CryptoFeed.US, "us-1", "eu-1"])
def test_every_crypto_location_is_served(feed: str) -> None:
    """Each documented crypto location has its own path on the simulator."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        stream = CryptoDataStream(DEMO_KEY_ID, DEMO_SECRET, url_override=sim.url(feed))
        client = Client(sim, stream)
        stream.subscribe_quotes(client.record, "SOL/USD")
        with client:
            client.wait_until(lambda items: len(items) >= 3)
            assert sim.connections()[0].feed.value == str(getattr(feed, "value", feed))


def test_option_stream_gets_typed_quotes_and_trades() -> None:
    """OptionDataStream (msgpack) gets Quote and Trade models with one condition code."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        stream = OptionDataStream(
            DEMO_KEY_ID,
            DEMO_SECRET,
            feed=OptionsFeed.INDICATIVE,
            url_override=sim.url("indicative"),
        )
        client = Client(sim, stream)
        stream.subscribe_quotes(client.record, CALL)
        stream.subscribe_trades(client.record, PUT)
        with client:
            client.wait_until(lambda items: {type(item) for item in items} >= {Quote, Trade})
            quotes = [item for item in client.received if isinstance(item, Quote)]
            trades = [item for item in client.received if isinstance(item, Trade)]
            assert {quote.symbol for quote in quotes} == {CALL}
            assert {trade.symbol for trade in trades} == {PUT}
            assert all(isinstance(quote.conditions, str) for quote in quotes)


def test_option_stream_refuses_opra_without_the_plan() -> None:
    """OPRA needs a paid plan: auth gets 409 and alpaca-py ends its run() by itself."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        stream = OptionDataStream(
            DEMO_KEY_ID, DEMO_SECRET, feed=OptionsFeed.OPRA, url_override=sim.url("opra")
        )
        client = Client(sim, stream)
        stream.subscribe_quotes(client.record, CALL)
        with client:
            client.thread.join(TIMEOUT)
            assert not client.thread.is_alive()
        assert sim.stats().errors_sent == {409: 1}


def test_news_stream_gets_typed_news_for_every_symbol() -> None:
    """NewsDataStream subscribed to '*' gets News models with their symbols and times."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        stream = NewsDataStream(DEMO_KEY_ID, DEMO_SECRET, url_override=sim.url("news"))
        client = Client(sim, stream)
        stream.subscribe_news(client.record, "*")
        with client:
            client.wait_until(lambda items: len(items) >= 10)
            assert all(isinstance(item, News) for item in client.received)
            assert len({tuple(item.symbols) for item in client.received}) > 1
            assert all(item.created_at.tzinfo is not None for item in client.received)


def test_news_stream_reconnects_after_a_drop() -> None:
    """After a reset, NewsDataStream reconnects, resubscribes and gets news again."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        stream = NewsDataStream(DEMO_KEY_ID, DEMO_SECRET, url_override=sim.url("news"))
        client = Client(sim, stream)
        stream.subscribe_news(client.record, "AAPL")
        with client:
            client.wait_until(lambda items: len(items) >= 3)
            sim.drop()
            first, second = sim.wait_for_connections(2, TIMEOUT, subscribed=True)
            assert second.subscriptions.news == first.subscriptions.news == {"AAPL"}
            settled = len(client.received)
            client.wait_until(lambda items: len(items) > settled + 3)
