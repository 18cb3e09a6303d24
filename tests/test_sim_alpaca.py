"""alpaca-py's own ``StockDataStream``, unchanged, is the reference client of the simulator.

Each test runs the simulator in a ``SimulatorThread`` and alpaca-py's ``run()`` (which calls
``asyncio.run``) in a thread of its own, then stops both and joins the threads. Waits are
bounded and event-driven: the simulator's ``wait_for`` and a condition the handlers notify.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream
from alpaca.data.models import Quote, Trade

from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

#: Upper bound of any wait; alpaca-py's first reconnect backoff is at most 1 s, the second 2 s.
TIMEOUT = 8.0
#: Data fast enough that alpaca-py notices a stop request within milliseconds.
RATE = 400.0


pytestmark = pytest.mark.usefixtures("no_leaked_threads")


class AlpacaClient:
    """alpaca-py's StockDataStream in a thread, with handlers that record what arrives."""

    def __init__(
        self,
        sim: SimulatorThread,
        *,
        secret: str = DEMO_SECRET,
        feed: DataFeed = DataFeed.IEX,
        quotes: tuple[str, ...] = ("AAPL", "MSFT"),
        trades: tuple[str, ...] = ("SPY",),
    ) -> None:
        self.sim = sim
        self.stream = StockDataStream(
            DEMO_KEY_ID, secret, feed=feed, url_override=sim.url(feed.value)
        )
        self.received: list[Any] = []
        self._changed = threading.Condition()
        if quotes:
            self.stream.subscribe_quotes(self._record, *quotes)
        if trades:
            self.stream.subscribe_trades(self._record, *trades)
        self.thread = threading.Thread(target=self.stream.run, name="alpaca-py-stream")

    async def _record(self, item: Any) -> None:
        with self._changed:
            self.received.append(item)
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[list[Any]], bool]) -> None:
        """Block until ``condition(received)`` holds."""
        with self._changed:
            assert self._changed.wait_for(lambda: condition(self.received), TIMEOUT)

    def count(self) -> int:
        with self._changed:
            return len(self.received)

    def __enter__(self) -> AlpacaClient:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop alpaca-py and join its thread.

        ``stop()`` only queues a request that alpaca-py reads between frames, so the
        simulator then resets the connection: the read fails and the loop sees the request.
        """
        if self.thread.is_alive():
            self.sim.wait_for_connections(1, TIMEOUT)  # run() has set up alpaca-py's loop
            self.stream.stop()
            self.sim.drop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "alpaca-py did not stop"


def test_alpaca_py_receives_typed_quotes_and_trades_for_exactly_its_symbols() -> None:
    """alpaca-py authenticates over msgpack and gets Quote and Trade models for its symbols."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim, AlpacaClient(sim) as alpaca:
        alpaca.wait_until(lambda items: len(items) >= 30)
        quotes = [item for item in alpaca.received if isinstance(item, Quote)]
        trades = [item for item in alpaca.received if isinstance(item, Trade)]
        assert len(quotes) + len(trades) == len(alpaca.received)
        assert {quote.symbol for quote in quotes} == {"AAPL", "MSFT"}
        assert {trade.symbol for trade in trades} == {"SPY"}
        assert all(quote.bid_price < quote.ask_price for quote in quotes)
        assert all(quote.timestamp.tzinfo is not None for quote in quotes)
        (info,) = sim.connections()
        assert info.encoding.value == "msgpack"
        assert info.key == "..." + DEMO_KEY_ID[-4:]
        assert info.subscriptions.quotes == {"AAPL", "MSFT"}
        assert info.subscriptions.trades == {"SPY"}


@pytest.mark.parametrize("fault", ["drop", "close 1011", "close 1001"])
def test_alpaca_py_reconnects_and_resubscribes_after_the_connection_ends(fault: str) -> None:
    """After a reset or a 1011/1001 close, alpaca-py reconnects, resubscribes and gets data."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim, AlpacaClient(sim) as alpaca:
        alpaca.wait_until(lambda items: len(items) >= 5)
        if fault == "drop":
            sim.drop()
        else:
            sim.close_connections(int(fault.split()[1]), "fault injected")
        first, second = sim.wait_for_connections(2, TIMEOUT, subscribed=True)
        assert first.close_code == (1006 if fault == "drop" else int(fault.split()[1]))
        assert second.subscriptions == first.subscriptions
        before = second.messages_sent
        sim.wait_for(lambda stats: stats.connection(second.id).messages_sent >= before + 10)
        settled = alpaca.count()
        alpaca.wait_until(lambda items: len(items) > settled)


def test_alpaca_py_never_gets_data_with_a_bad_secret() -> None:
    """A wrong secret gets 402 on every attempt; alpaca-py retries and receives nothing."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        with AlpacaClient(sim, secret="not-the-secret") as alpaca:
            stats = sim.wait_for(lambda stats: stats.errors_sent.get(402, 0) >= 1, TIMEOUT)
            assert stats.auth_successes == 0
            assert all(not info.authenticated for info in stats.connections)
        assert alpaca.received == []
        assert sim.stats().frames_sent == 0


def test_alpaca_py_stops_by_itself_on_409_for_sip() -> None:
    """Without the sip entitlement, auth gets 409 and alpaca-py ends its run() by itself."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim:
        alpaca = AlpacaClient(sim, feed=DataFeed.SIP)
        with alpaca:
            alpaca.thread.join(TIMEOUT)
            assert not alpaca.thread.is_alive()
        assert sim.stats().errors_sent == {409: 1}
        assert alpaca.received == []


def test_alpaca_py_gets_data_again_after_a_mute_ends() -> None:
    """During a mute alpaca-py gets nothing new; after the mute, data flows on the same socket."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim, AlpacaClient(sim) as alpaca:
        alpaca.wait_until(lambda items: len(items) >= 5)
        sim.mute()
        sent = sim.connections()[0].messages_sent  # stable while muted
        alpaca.wait_until(lambda items: len(items) >= sent)  # what was in flight arrived
        assert alpaca.count() == sent
        sim.unmute()
        alpaca.wait_until(lambda items: len(items) > sent + 10)
        assert len(sim.connections()) == 1  # no reconnect was needed


def test_alpaca_py_recovers_from_406_connection_limit() -> None:
    """A 406 on reconnect makes alpaca-py back off and retry; the next auth succeeds."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim, AlpacaClient(sim) as alpaca:
        alpaca.wait_until(lambda items: len(items) >= 5)
        sim.fail_auth(count=1, code=406)
        sim.drop()
        stats = sim.wait_for(lambda stats: stats.auth_successes >= 2, TIMEOUT)
        assert stats.errors_sent == {406: 1}
        settled = alpaca.count()
        alpaca.wait_until(lambda items: len(items) > settled)


@pytest.mark.parametrize("kind", ["garbage", "unknown_type", "missing_fields"])
def test_alpaca_py_survives_a_malformed_frame(kind: str) -> None:
    """A malformed frame is logged by alpaca-py, which keeps reading the same connection."""
    with SimulatorThread(SimConfig(rate=RATE)) as sim, AlpacaClient(sim) as alpaca:
        alpaca.wait_until(lambda items: len(items) >= 5)
        sim.send_malformed(kind)
        settled = alpaca.count()
        alpaca.wait_until(lambda items: len(items) > settled + 10)
        assert len(sim.connections()) == 1
