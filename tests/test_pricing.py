"""The pricing service: exact snapshots, eviction, staleness, concurrent reads, REST refresh.

Integration tests run a :class:`~streamfsm.pricing.service.PricingService` against the simulator
over
loopback; the REST refresher talks to a stdlib ``http.server`` fake on 127.0.0.1. Every wait is a
bounded wait on a condition that the service's hooks or transition listener signal.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
import structlog

from streamfsm import BackoffPolicy, BreakerPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm.errors import (
    ConfigurationError,
    InvalidSymbolError,
    LocalProtocolError,
    StreamError,
    SymbolLimitError,
)
from streamfsm.models import Quote, Trade
from streamfsm.pricing.service import (
    AlpacaLatestQuotes,
    PricingService,
    QuoteSnapshot,
    Source,
    StaleReason,
    TradeSnapshot,
)
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 5.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
FAST = StreamConfig(
    backoff=BackoffPolicy(initial=0.05, maximum=0.2),
    breaker=BreakerPolicy(failure_threshold=50, cooldown=0.5),
    stale=StalePolicy(quotes=None),
    healthy_after=0.3,
    connection_limit_cooldown=0.1,
)
SYMBOLS = ("AAPL", "MSFT", "TSLA", "NVDA", "AMD", "AMZN", "GOOG", "META")
CENT = Decimal("0.01")
NOW = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)
#: How often the REST fake checks for shutdown.
POLL_INTERVAL = 0.05
#: Quotes the stream must deliver while eight threads read as fast as they can.
STREAMED_WHILE_READING = 100


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes and trades quickly."""
    with SimulatorThread(SimConfig(rate=400, batch=4, seed=11)) as simulator:
        yield simulator


class Watch:
    """Signals a condition on every quote and transition, so tests can wait on predicates."""

    def __init__(self) -> None:
        self.quotes = 0
        self.records: list[TransitionRecord] = []
        self.hook: Callable[[Quote], None] | None = None
        self._condition = threading.Condition()

    def on_quote(self, quote: Quote) -> None:
        if self.hook is not None:
            self.hook(quote)
        with self._condition:
            self.quotes += 1
            self._condition.notify_all()

    def on_transition(self, record: TransitionRecord) -> None:
        with self._condition:
            self.records.append(record)
            self._condition.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)

    def losses(self) -> int:
        return sum(1 for r in self.records if r.src == "subscribed" and r.dst != "subscribed")


def make(sim: SimulatorThread, watch: Watch, **kwargs: Any) -> PricingService:
    config = kwargs.pop("config", FAST)
    service = PricingService(
        CREDENTIALS, attrs.evolve(config, url=sim.url("iex")), on_quote=watch.on_quote, **kwargs
    )
    service.controller.add_listener(watch.on_transition)
    return service


def fresh(service: PricingService, symbols: tuple[str, ...]) -> Callable[[], bool]:
    def check() -> bool:
        snapshots = [service.quote(symbol) for symbol in symbols]
        return all(s is not None and not s.stale for s in snapshots)

    return check


def quote(bid: float, ask: float, **fields: Any) -> Quote:
    return Quote(
        symbol="AAPL",
        timestamp=NOW,
        bid_price=bid,
        bid_size=fields.pop("bid_size", 3.0),
        ask_price=ask,
        ask_size=fields.pop("ask_size", 5.0),
        **fields,
    )


# ---------------------------------------------------------------- snapshots (pure)


def test_snapshot_prices_are_exact_decimals() -> None:
    """Prices come from the shortest decimal form, so mid and spread carry no float error."""
    snapshot = QuoteSnapshot.from_quote(
        quote(0.1, 0.2), received_at=10.0, received_wall=NOW.timestamp(), now=10.25
    )
    assert snapshot.bid == Decimal("0.1")
    assert snapshot.ask == Decimal("0.2")
    assert snapshot.mid == Decimal("0.15")
    assert snapshot.spread == Decimal("0.1")
    assert (snapshot.bid_size, snapshot.ask_size) == (Decimal(3), Decimal(5))
    assert str(snapshot.bid_size) == "3"
    assert snapshot.age == pytest.approx(0.25)
    assert snapshot.received_wall == NOW
    assert not snapshot.stale
    assert snapshot.source is Source.STREAM


def test_one_sided_quote_has_no_mid_or_spread() -> None:
    """A side quoted at zero gives no mid and no spread rather than a misleading number."""
    snapshot = QuoteSnapshot.from_quote(quote(0.0, 187.35), received_at=1, received_wall=1, now=1)
    assert snapshot.mid is None
    assert snapshot.spread is None
    assert snapshot.ask == Decimal("187.35")


def test_snapshots_are_immutable() -> None:
    """A snapshot cannot be changed after it was read."""
    snapshot = QuoteSnapshot.from_quote(quote(1.5, 1.6), received_at=1, received_wall=1, now=1)
    with pytest.raises(AttributeError):
        snapshot.bid = Decimal(0)  # type: ignore[misc]


def test_trade_snapshot_is_exact() -> None:
    """Trade prices and sizes are exact Decimals too."""
    trade = Trade(symbol="AAPL", timestamp=NOW, price=187.33, size=100.0, id=7, exchange="V")
    snapshot = TradeSnapshot.from_trade(trade, received_at=1, received_wall=1, now=3)
    assert (snapshot.price, snapshot.size, snapshot.trade_id) == (Decimal("187.33"), 100, 7)
    assert snapshot.age == 2


def test_invalid_arguments_are_rejected() -> None:
    """Wildcards, bad limits and bad priorities raise typed errors and change nothing."""
    service = PricingService(CREDENTIALS, FAST, max_symbols=2)
    with pytest.raises(InvalidSymbolError):
        service.track("*")
    with pytest.raises(InvalidSymbolError):
        service.track(["AAPL", "not a symbol"])
    with pytest.raises(ConfigurationError):
        service.track("AAPL", priority=1.5)  # type: ignore[arg-type]
    assert service.tracked() == {}
    with pytest.raises(ConfigurationError):
        PricingService(CREDENTIALS, FAST, max_symbols=0)
    with pytest.raises(ConfigurationError):
        PricingService(CREDENTIALS, FAST, max_age=-1)


def test_unknown_symbol_reads_none_and_trades_can_be_disabled() -> None:
    """An untracked or unquoted symbol reads None; last_trade without trades is misuse."""
    service = PricingService(CREDENTIALS, FAST, trades=False)
    service.track("AAPL")
    assert service.quote("AAPL") is None
    assert service.quote("MSFT") is None
    with pytest.raises(LocalProtocolError):
        service.last_trade("AAPL")


def test_eviction_is_deterministic_without_a_connection() -> None:
    """Lowest priority goes first; among equals the most recently tracked goes first."""
    service = PricingService(CREDENTIALS, FAST, max_symbols=3)
    assert service.track(["AAPL", "MSFT"], priority=5).added == ("AAPL", "MSFT")
    service.track("TSLA", priority=1)
    with structlog.testing.capture_logs() as logs:
        result = service.track("NVDA", priority=3)
    assert (result.added, result.evicted, result.refused) == (("NVDA",), ("TSLA",), ())
    assert service.tracked() == {"AAPL": 5, "MSFT": 5, "NVDA": 3}
    result = service.track("AMD", priority=3)
    assert (result.added, result.evicted, result.refused) == ((), (), ("AMD",))
    result = service.track("AMD", priority=6)
    assert (result.added, result.evicted) == (("AMD",), ("NVDA",))
    assert list(service.tracked()) == ["AMD", "AAPL", "MSFT"]
    evictions = [entry for entry in logs if entry["event"] == "symbol_evicted"]
    assert [(e["symbol"], e["reason"], e["limit"]) for e in evictions] == [
        ("TSLA", "max_symbols", 3)
    ]
    assert service.statistics().evictions == 3


def test_rest_url_never_sends_the_key_in_clear_text() -> None:
    """Only https:// or a loopback http:// URL is accepted for the REST refresher."""
    with pytest.raises(ConfigurationError, match="url_override"):
        AlpacaLatestQuotes(CREDENTIALS, url_override="http://example.com")
    with pytest.raises(ConfigurationError, match="feed"):
        AlpacaLatestQuotes(CREDENTIALS, feed="test")


# ---------------------------------------------------------------- against the simulator


def test_eviction_reaches_the_server(sim: SimulatorThread) -> None:
    """The server's subscription follows the tracked set, evictions included."""
    watch = Watch()
    service = make(sim, watch, max_symbols=3, trades=False)
    service.track(["AAPL", "MSFT"], priority=5)
    service.track("TSLA", priority=1)
    service.start()
    try:
        assert service.controller.wait_synced(WAIT)
        service.track("NVDA", priority=3)
        expected = {"AAPL", "MSFT", "NVDA"}
        server_has(sim, expected)
        assert watch.wait(fresh(service, ("AAPL", "MSFT", "NVDA")))
        assert service.health().confirmed.quotes == expected
        assert service.quote("TSLA") is None
        assert service.untrack(["NVDA", "SPY"]) == ("NVDA",)
        server_has(sim, {"AAPL", "MSFT"})
        assert service.quote("NVDA") is None
    finally:
        service.stop()


def server_has(sim: SimulatorThread, quotes: set[str]) -> None:
    """Wait until the simulator's one connection is subscribed to exactly ``quotes``."""
    sim.wait_for(
        lambda stats: [set(c.subscriptions.quotes) for c in stats.open_connections] == [quotes],
        WAIT,
    )


def test_a_refused_symbol_is_asked_for_again_when_room_frees_up() -> None:
    """A 405 reaches on_error; after an untrack frees a slot, the refused symbol streams."""
    errors: list[StreamError] = []
    refused = threading.Event()

    def on_error(error: StreamError) -> None:
        errors.append(error)
        refused.set()

    with SimulatorThread(SimConfig(rate=400, seed=2, symbol_limit=2)) as limited:
        watch = Watch()
        service = make(limited, watch, trades=False, on_error=on_error)
        service.track(["AAPL", "MSFT"])
        service.start()
        try:
            assert watch.wait(fresh(service, ("AAPL", "MSFT")))
            service.track("TSLA")
            assert refused.wait(WAIT)
            assert isinstance(errors[0], SymbolLimitError)
            assert "TSLA" in service.tracked()
            assert service.quote("TSLA") is None
            service.untrack("MSFT")
            assert watch.wait(fresh(service, ("AAPL", "TSLA")))
        finally:
            service.stop()


def test_quotes_from_the_wire_are_exact_cents(sim: SimulatorThread) -> None:
    """Simulated prices are whole cents; their Decimals, mids and spreads are exact."""
    watch = Watch()
    service = make(sim, watch)
    service.track(SYMBOLS)
    service.start()
    try:
        assert watch.wait(fresh(service, SYMBOLS))
        assert watch.wait(lambda: all(service.last_trade(s) is not None for s in SYMBOLS))
        for symbol in SYMBOLS:
            snapshot = service.quote(symbol)
            assert snapshot is not None
            assert snapshot.bid == snapshot.bid.quantize(CENT)
            assert snapshot.ask == snapshot.ask.quantize(CENT)
            assert snapshot.spread == snapshot.ask - snapshot.bid >= CENT
            assert snapshot.mid is not None
            assert snapshot.mid * 2 == snapshot.bid + snapshot.ask
            assert snapshot.bid_exchange == "V"
            trade = service.last_trade(symbol)
            assert trade is not None
            assert trade.price == trade.price.quantize(CENT)
            assert not trade.stale
    finally:
        service.stop()


def test_quotes_are_stale_after_a_drop_until_fresh_data(sim: SimulatorThread) -> None:
    """A drop makes every quote stale: disconnected, then gap after the reconnect, then fresh."""
    watch = Watch()
    service = make(sim, watch)
    service.track(["AAPL", "MSFT"])
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL", "MSFT")))
        before = service.quote("AAPL")
        assert before is not None
        sim.refuse()
        sim.set_rate(0)
        sim.drop()
        assert watch.wait(lambda: watch.losses() == 1)
        outage = service.quote("AAPL")
        assert outage is not None
        assert outage.stale_reason is StaleReason.DISCONNECTED
        assert outage.exchange_time >= before.exchange_time
        trade = service.last_trade("AAPL")
        assert trade is not None
        assert trade.stale_reason is StaleReason.DISCONNECTED

        sim.accept()
        assert service.controller.wait_synced(WAIT)
        gap = service.quote("AAPL")
        assert gap is not None
        assert gap.stale_reason is StaleReason.GAP
        assert service.health().open_gaps == 4

        sim.set_rate(400)
        assert watch.wait(fresh(service, ("AAPL", "MSFT")))
        after = service.quote("AAPL")
        assert after is not None
        assert after.exchange_time > outage.exchange_time
        assert after.received_at > outage.received_at
    finally:
        service.stop()
    stopped = service.quote("AAPL")
    assert stopped is not None
    assert stopped.stale_reason is StaleReason.DISCONNECTED


class FakeMonotonic:
    """time.monotonic plus an offset that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_a_symbol_quiet_across_two_outages_turns_fresh_with_its_next_quote(
    sim: SimulatorThread,
) -> None:
    """Two outages with no data in between give one gap report; it clears both marks."""
    watch = Watch()
    service = make(sim, watch, trades=False)
    service.track("AAPL")
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL",)))
        sim.set_rate(0)
        for outage in (1, 2):
            sim.drop()
            assert watch.wait(lambda outage=outage: watch.losses() == outage)
            assert service.controller.wait_synced(WAIT)
            snapshot = service.quote("AAPL")
            assert snapshot is not None
            assert snapshot.stale_reason is StaleReason.GAP
        gaps = service.health().recent_gaps
        sim.set_rate(400)
        assert watch.wait(fresh(service, ("AAPL",)))
        (report,) = service.health().recent_gaps[len(gaps) :]
        assert report.symbol == "AAPL"
    finally:
        service.stop()


def test_quotes_older_than_max_age_are_stale(sim: SimulatorThread) -> None:
    """With max_age set, a quiet symbol turns stale by age while the stream stays up."""
    clock = FakeMonotonic()
    watch = Watch()
    service = make(sim, watch, max_age=2.0, clock=clock)
    service.track("AAPL")
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL",)))
        clock.offset = 5.0
        snapshot = service.quote("AAPL")
        assert snapshot is not None
        assert snapshot.stale_reason is StaleReason.AGE
        assert snapshot.age >= 5.0
    finally:
        service.stop()


def test_eight_readers_read_consistent_snapshots_while_quotes_stream(
    no_leaked_threads: None, sim: SimulatorThread
) -> None:
    """Eight threads read without errors while the stream keeps delivering quotes."""
    watch = Watch()
    service = make(sim, watch, trades=False)
    service.track(SYMBOLS)
    service.start()
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0] * 8

    def reader(index: int) -> None:
        last: dict[str, datetime] = {}
        try:
            while not stop.is_set():
                for symbol in SYMBOLS:
                    snapshot = service.quote(symbol)
                    reads[index] += 1
                    if snapshot is None:
                        continue
                    assert snapshot.symbol == symbol
                    assert snapshot.mid is not None
                    assert snapshot.mid * 2 == snapshot.bid + snapshot.ask
                    assert snapshot.spread == snapshot.ask - snapshot.bid > 0
                    assert snapshot.exchange_time >= last.get(symbol, snapshot.exchange_time)
                    last[symbol] = snapshot.exchange_time
        except BaseException as exc:
            errors.append(exc)

    try:
        assert watch.wait(fresh(service, SYMBOLS))
        threads = [threading.Thread(target=reader, args=(i,), name=f"reader-{i}") for i in range(8)]
        start = watch.quotes
        for thread in threads:
            thread.start()
        streamed = watch.wait(lambda: watch.quotes >= start + STREAMED_WHILE_READING, WAIT)
        stop.set()
        for thread in threads:
            thread.join(WAIT)
        assert streamed, "the stream stalled while readers ran"
        assert errors == []
        assert all(count > 0 for count in reads)
        assert service.state is State.SUBSCRIBED
    finally:
        stop.set()
        service.stop()


def test_track_from_inside_a_quote_callback_does_not_deadlock(sim: SimulatorThread) -> None:
    """A hook on the stream's loop may call track(); the new symbol gets quotes."""
    watch = Watch()
    service = make(sim, watch, trades=False)
    called = threading.Event()

    def hook(_quote: Quote) -> None:
        if not called.is_set():
            called.set()
            service.track("TSLA")

    watch.hook = hook
    service.track("AAPL")
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL", "TSLA")))
        assert service.tracked() == {"AAPL": 0, "TSLA": 0}
    finally:
        service.stop()


def test_stop_leaves_nothing_running(no_leaked_threads: None, sim: SimulatorThread) -> None:
    """After stop() no controller, refresher thread or server connection remains."""
    rest = RestFake()
    watch = Watch()
    service = make(sim, watch, refresher=AlpacaLatestQuotes(CREDENTIALS, url_override=rest.url))
    service.track("AAPL")
    with service:
        assert watch.wait(fresh(service, ("AAPL",)))
        assert any(t.name.startswith("streamfsm-refresh") for t in threading.enumerate())
    assert service.state is State.STOPPED
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)
    rest.close()


# ---------------------------------------------------------------- REST refresher


class RestFake:
    """Alpaca's latest-quotes endpoint on 127.0.0.1, answering from a dict of prices."""

    def __init__(self) -> None:
        self.prices: dict[str, tuple[float, float]] = {"AAPL": (123.45, 123.47)}
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                fake.requests.append((url.path, query, self.headers.get("APCA-API-KEY-ID")))
                stamp = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
                quotes = {
                    symbol: {"t": stamp, "bp": bid, "bs": 2, "ap": ask, "as": 4, "bx": "V"}
                    for symbol in query.get("symbols", [""])[0].split(",")
                    if (prices := fake.prices.get(symbol)) is not None
                    for bid, ask in [prices]
                }
                body = json.dumps({"quotes": quotes}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name="rest-fake"
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


@pytest.fixture
def rest(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestFake]:
    """The REST fake, with proxies disabled so requests stay on loopback."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fake = RestFake()
    yield fake
    fake.close()


def test_refresh_now_serves_rest_quotes_during_an_outage(
    sim: SimulatorThread, rest: RestFake
) -> None:
    """During an outage a REST quote replaces the stale stream quote, exactly priced."""
    watch = Watch()
    source = AlpacaLatestQuotes(CREDENTIALS, url_override=rest.url)
    service = make(sim, watch, refresher=source, trades=False)
    with pytest.raises(LocalProtocolError):
        PricingService(CREDENTIALS, FAST).refresh_now()
    service.track(["AAPL", "MSFT"])
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL", "MSFT")))
        assert service.refresh_now() == {}  # nothing is stale
        sim.refuse()
        sim.drop()
        assert watch.wait(lambda: watch.losses() == 1)
        stored = service.refresh_now(["AAPL"])
        assert set(stored) == {"AAPL"}
        snapshot = service.quote("AAPL")
        assert snapshot is not None
        assert snapshot.source is Source.REST
        assert not snapshot.stale
        assert (snapshot.bid, snapshot.ask, snapshot.mid) == (
            Decimal("123.45"),
            Decimal("123.47"),
            Decimal("123.46"),
        )
        other = service.quote("MSFT")
        assert other is not None
        assert other.source is Source.STREAM
        assert other.stale_reason is StaleReason.DISCONNECTED
        # The refresher thread asks for every stale symbol on its own; ours asked for AAPL.
        assert (
            "/v2/stocks/quotes/latest",
            {"symbols": ["AAPL"], "feed": ["iex"]},
            DEMO_KEY_ID,
        ) in (rest.requests)
        sim.accept()
        assert watch.wait(lambda: source_of(service, "AAPL") is Source.STREAM)
    finally:
        service.stop()


def source_of(service: PricingService, symbol: str) -> Source | None:
    snapshot = service.quote(symbol)
    return None if snapshot is None else snapshot.source


def test_refresher_fills_stale_symbols_after_a_drop(sim: SimulatorThread, rest: RestFake) -> None:
    """The refresher thread wakes on the outage by itself and fills the stale symbols."""
    watch = Watch()
    refreshed: list[dict[str, QuoteSnapshot]] = []
    done = threading.Event()

    def on_refresh(snapshots: Any) -> None:
        refreshed.append(dict(snapshots))
        done.set()

    service = make(
        sim,
        watch,
        refresher=AlpacaLatestQuotes(CREDENTIALS, url_override=rest.url),
        on_refresh=on_refresh,
    )
    service.track(["AAPL", "MSFT"])
    service.start()
    try:
        assert watch.wait(fresh(service, ("AAPL", "MSFT")))
        sim.refuse()
        sim.drop()
        assert done.wait(WAIT)
        assert set(refreshed[0]) == {"AAPL"}  # the fake knows AAPL only
        snapshot = service.quote("AAPL")
        assert snapshot is not None
        assert snapshot.source is Source.REST
        assert snapshot.bid == Decimal("123.45")
        assert service.statistics().refreshes >= 1
        assert {tuple(q["symbols"]) for _p, q, _k in rest.requests} >= {("AAPL,MSFT",)}
    finally:
        sim.accept()
        service.stop()
