"""Every market's stream through the controller, against the simulator over loopback sockets.

For crypto, options and news (and the stock channels beyond quotes, trades and bars): the right
models reach the right handlers in each model mode, alpaca-py's handler style works unchanged,
and each fault (drop, mute, 406, the market's symbol limit) ends with the server holding the
full acknowledged set again. Waits are bounded waits on conditions, never sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import msgpack
import pytest
from alpaca.data.models import News, Orderbook, Quote
from transition_log import TransitionLog

from streamfsm import BackoffPolicy, BreakerPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.machine import State
from streamfsm._core.subscriptions import Subscription
from streamfsm._core.tracking import GapReport
from streamfsm.config import MIN_STALE_THRESHOLD, default_stale
from streamfsm.controller import StreamController
from streamfsm.errors import InvalidSymbolError, StreamError, SymbolLimitError
from streamfsm.models import Luld, TradeCancel, TradeCorrection, TradingStatus, UpdatedBar
from streamfsm.models import Orderbook as FastOrderbook
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread
from streamfsm.sim.requests import ALL_CHANNELS

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

WAIT = 5.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
CALL = "AAPL250620C00200000"
PUT = "SPY250620P00500000"


def fast(market: str, feed: str, sim: SimulatorThread, **changes: Any) -> StreamConfig:
    """A quick-recovering configuration of ``market`` pointed at the simulator."""
    config = StreamConfig(
        market=market,
        feed=feed,
        url=sim.url(feed),
        backoff=BackoffPolicy(initial=0.05, maximum=0.2),
        breaker=BreakerPolicy(failure_threshold=50, cooldown=0.5),
        healthy_after=0.3,
        connection_limit_cooldown=0.1,
        connect_timeout=2.0,
        auth_timeout=0.5,
        subscribe_timeout=2.0,
    )
    return attrs.evolve(config, **changes)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quickly, with a symbol limit of two."""
    with SimulatorThread(SimConfig(rate=400, batch=4, seed=5, symbol_limit=2)) as simulator:
        yield simulator


class Recorder:
    """Collects what handlers receive (any number of them), and waits for more."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.errors: list[StreamError] = []
        self.gaps: list[GapReport] = []
        self._condition = threading.Condition()

    async def __call__(self, item: Any) -> None:  # async, as alpaca-py requires its handlers
        self._add(self.items, item)

    def error(self, error: StreamError) -> None:
        self._add(self.errors, error)

    def gap(self, report: GapReport) -> None:
        self._add(self.gaps, report)

    def _add(self, into: list[Any], item: Any) -> None:
        with self._condition:
            into.append(item)
            self._condition.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)

    def more_than(self, count: int) -> bool:
        return self.wait(lambda: len(self.items) > count)


def server_set(sim: SimulatorThread) -> Subscription:
    """The open connection's subscription, as streamfsm names the channels."""
    (connection,) = sim.stats().open_connections
    subs = connection.subscriptions
    return Subscription.from_wire({name: sorted(subs.channel(name)) for name in ALL_CHANNELS})


def close(ctl: StreamController, sim: SimulatorThread) -> None:
    ctl.stop()
    assert ctl.state is State.STOPPED
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)
    ctl.close()


#: (market, feed, subscription) of each market's fault cases.
MARKETS = [
    ("crypto", "us", Subscription(quotes={"BTC/USD"}, orderbooks={"ETH/USD"})),
    ("options", "indicative", Subscription(quotes={CALL}, trades={PUT})),
    ("news", "news", Subscription(news={"AAPL", "MSFT"})),
    ("stocks", "iex", Subscription(quotes={"AAPL"}, statuses={"AAPL"}, lulds={"SPY"})),
]
IDS = [market for market, _, _ in MARKETS]


def started(
    sim: SimulatorThread, market: str, feed: str, wanted: Subscription, **changes: Any
) -> tuple[StreamController, Recorder]:
    recorder = Recorder()
    handlers = {
        "on_quote": recorder,
        "on_trade": recorder,
        "on_orderbook": recorder,
        "on_news": recorder,
        "on_status": recorder,
        "on_luld": recorder,
    }
    ctl = StreamController(
        CREDENTIALS,
        fast(market, feed, sim, **changes),
        on_error=recorder.error,
        on_gap=recorder.gap,
        models="fast",
        **handlers,
    )
    ctl.subscribe(
        **{
            channel: wanted.channel(channel)
            for channel in ("quotes", "trades", "orderbooks", "news", "statuses", "lulds")
            if wanted.channel(channel)
        }
    )
    ctl.start()
    assert ctl.wait_synced(WAIT)
    assert recorder.more_than(3)
    return ctl, recorder


@pytest.mark.parametrize(("market", "feed", "wanted"), MARKETS, ids=IDS)
def test_a_drop_ends_with_the_full_set_and_gap_reports(
    sim: SimulatorThread, market: str, feed: str, wanted: Subscription
) -> None:
    """After a TCP reset the server holds the whole set again and each pair reports its gap."""
    ctl, recorder = started(sim, market, feed, wanted)
    log = TransitionLog(ctl)
    assert server_set(sim) == wanted
    sim.drop()
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    assert ctl.wait_synced(WAIT)
    assert server_set(sim) == wanted
    assert recorder.wait(
        lambda: (
            {(g.channel, g.symbol) for g in recorder.gaps}
            >= {(c, s) for c in ("quotes", "orderbooks", "news") for s in wanted.channel(c)}
        )
    )
    close(ctl, sim)


@pytest.mark.parametrize(("market", "feed", "wanted"), MARKETS, ids=IDS)
def test_406_on_reconnect_ends_with_the_full_set(
    sim: SimulatorThread, market: str, feed: str, wanted: Subscription
) -> None:
    """Two 406s after a drop wait their cool-down; then the server holds the whole set again."""
    ctl, _ = started(sim, market, feed, wanted)
    log = TransitionLog(ctl)
    sim.fail_auth(2, 406)
    sim.drop()
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    assert ctl.wait_synced(WAIT)
    assert len([r for r in ctl.journal() if r.code == 406]) == 2
    assert server_set(sim) == wanted
    close(ctl, sim)


@pytest.mark.parametrize(
    ("market", "feed", "wanted"), MARKETS[:2] + MARKETS[3:], ids=["crypto", "options", "stocks"]
)
def test_a_mute_socket_is_replaced_with_the_full_set(
    sim: SimulatorThread, market: str, feed: str, wanted: Subscription
) -> None:
    """A socket that goes quiet is found stale and replaced; the new one holds the whole set."""
    stale = StalePolicy(quotes=MIN_STALE_THRESHOLD)
    ctl, _ = started(sim, market, feed, wanted, stale=stale)
    log = TransitionLog(ctl)
    sim.mute()
    assert log.wait(WAIT, dst="backoff", trigger="data_stale")
    assert ctl.wait_synced(WAIT)
    assert server_set(sim) == wanted
    close(ctl, sim)


def test_news_is_never_judged_stale_by_default() -> None:
    """The news market's default watchdog watches nothing; the others watch their quotes."""
    news = default_stale("news")
    assert [news.threshold(channel) for channel in ("quotes", "trades", "news")] == [
        None,
        None,
        None,
    ]
    assert default_stale("crypto").threshold("orderbooks") == 60.0
    assert default_stale("options").threshold("quotes") == 30.0


@pytest.mark.parametrize(
    ("market", "feed", "first", "extra"),
    [
        ("crypto", "us", {"quotes": ["BTC/USD", "ETH/USD"]}, {"trades": ["SOL/USD"]}),
        ("options", "indicative", {"quotes": [CALL, PUT]}, {"quotes": ["SPY250620C00550000"]}),
    ],
    ids=["crypto", "options"],
)
def test_the_markets_symbol_limit_rejects_the_change_and_keeps_the_set(
    sim: SimulatorThread,
    market: str,
    feed: str,
    first: dict[str, list[str]],
    extra: dict[str, list[str]],
) -> None:
    """Past the market's limit a subscribe gets 405; the session and the earlier set stay."""
    ctl, recorder = started(sim, market, feed, Subscription(**first))
    ctl.subscribe(**extra)
    assert recorder.wait(lambda: any(isinstance(e, SymbolLimitError) for e in recorder.errors))
    assert ctl.wait_synced(WAIT)
    assert ctl.state is State.SUBSCRIBED
    assert server_set(sim) == Subscription(**first)
    close(ctl, sim)


def test_options_trades_take_the_wildcard_beside_limited_quotes(sim: SimulatorThread) -> None:
    """Option trades subscribe ``*`` (they do not count against the quote limit)."""
    ctl, _ = started(sim, "options", "indicative", Subscription(quotes={CALL}))
    ctl.subscribe(trades=["*"])
    assert ctl.wait_synced(WAIT)
    assert server_set(sim) == Subscription(quotes={CALL}, trades={"*"})
    close(ctl, sim)


def test_symbols_and_channels_are_checked_against_the_market() -> None:
    """A stock symbol on crypto, ``*`` for option quotes, order books on stocks: refused at once."""
    crypto = StreamController(CREDENTIALS, StreamConfig(market="crypto"))
    options = StreamController(CREDENTIALS, StreamConfig(market="options"))
    stocks = StreamController(CREDENTIALS, StreamConfig())
    try:
        with pytest.raises(InvalidSymbolError):
            crypto.subscribe(quotes=["AAPL"])
        with pytest.raises(InvalidSymbolError):
            options.subscribe(quotes=["*"])
        with pytest.raises(InvalidSymbolError):
            stocks.subscribe(orderbooks=["AAPL"])
        with pytest.raises(InvalidSymbolError):
            StreamController(
                CREDENTIALS, StreamConfig(market="crypto"), on_quote=print, symbols=["AAPL"]
            )
    finally:
        for ctl in (crypto, options, stocks):
            ctl.close()


# ---------------------------------------------------------------- alpaca-py's handler style


def test_alpaca_style_methods_route_per_symbol_with_alpaca_models(sim: SimulatorThread) -> None:
    """subscribe_quotes(handler, sym) and subscribe_orderbooks route each symbol's alpaca-py
    models to its own handler; ``*`` catches the rest; unsubscribe_* removes them."""
    btc, rest, books = Recorder(), Recorder(), Recorder()
    ctl = StreamController(CREDENTIALS, fast("crypto", "us", sim))
    ctl.subscribe_quotes(btc, "BTC/USD")
    ctl.subscribe_quotes(rest, "*")
    ctl.subscribe_orderbooks(books, "ETH/USD")
    ctl.start()
    assert ctl.wait_synced(WAIT)
    assert btc.more_than(3)
    assert rest.more_than(3)
    assert books.more_than(2)
    assert {q.symbol for q in btc.items} == {"BTC/USD"}
    assert "BTC/USD" not in {q.symbol for q in rest.items}
    assert all(isinstance(q, Quote) for q in btc.items + rest.items)
    assert isinstance(books.items[0], Orderbook)
    assert books.items[0].reset is True
    ctl.unsubscribe_quotes("*")
    assert ctl.wait_synced(WAIT)
    assert server_set(sim) == Subscription(quotes={"BTC/USD"}, orderbooks={"ETH/USD"})
    close(ctl, sim)


def test_alpaca_style_news_and_trade_corrections(sim: SimulatorThread) -> None:
    """subscribe_news gets alpaca-py News; register_trade_corrections/cancels get theirs."""
    news = Recorder()
    ctl = StreamController(CREDENTIALS, fast("news", "news", sim))
    ctl.subscribe_news(news, "AAPL")
    ctl.start()
    assert news.more_than(2)
    assert all(isinstance(item, News) and item.symbols == ["AAPL"] for item in news.items)
    close(ctl, sim)


def test_corrections_and_cancels_reach_their_handlers() -> None:
    """Corrections and cancel errors come with trades, to on_correction and on_cancel_error."""
    with SimulatorThread(SimConfig(rate=400, corrections_every=2)) as sim:
        trades, fixes = Recorder(), Recorder()
        ctl = StreamController(
            CREDENTIALS,
            fast("stocks", "iex", sim),
            on_trade=trades,
            on_correction=fixes,
            on_cancel_error=fixes,
            symbols=["AAPL"],
            models="fast",
        )
        ctl.start()
        assert fixes.wait(
            lambda: {type(item) for item in fixes.items} == {TradeCorrection, TradeCancel}
        )
        assert trades.more_than(2)
        close(ctl, sim)


def test_stock_extras_reach_their_handlers(sim: SimulatorThread) -> None:
    """Statuses, LULD bands and updated bars reach on_status, on_luld and on_updated_bar."""
    got = Recorder()
    ctl = StreamController(
        CREDENTIALS,
        fast("stocks", "iex", sim),
        on_status=got,
        on_luld=got,
        on_updated_bar=got,
        symbols=["AAPL"],
        models="fast",
    )
    ctl.start()
    assert got.wait(lambda: {type(item) for item in got.items} == {TradingStatus, Luld, UpdatedBar})
    close(ctl, sim)


def test_raw_mode_hands_out_alpaca_py_raw_values(sim: SimulatorThread) -> None:
    """models="raw" gives the wire dicts: msgpack Timestamps, integer stock sizes, every key."""
    got = Recorder()
    ctl = StreamController(
        CREDENTIALS, fast("stocks", "iex", sim), on_trade=got, symbols=["AAPL"], models="raw"
    )
    ctl.start()
    assert got.more_than(3)
    trade = got.items[0]
    assert type(trade) is dict
    assert isinstance(trade["t"], msgpack.Timestamp)
    assert type(trade["s"]) is int
    assert "_seq" in trade
    assert ctl.health().messages["trades"] >= 1
    close(ctl, sim)


def test_fast_order_books_carry_snapshot_then_updates(sim: SimulatorThread) -> None:
    """In fast mode the first book of a pair is a reset snapshot, the next ones updates."""
    got = Recorder()
    ctl = StreamController(
        CREDENTIALS, fast("crypto", "us", sim), on_orderbook=got, symbols=["BTC/USD"], models="fast"
    )
    ctl.start()
    assert got.more_than(3)
    assert isinstance(got.items[0], FastOrderbook)
    assert got.items[0].reset
    assert not any(book.reset for book in got.items[1:])
    close(ctl, sim)
