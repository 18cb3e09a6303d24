"""The pricing service against the simulator: exact prices, staleness, concurrent reads, stop."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from pricing_support import (
    CENT,
    CREDENTIALS,
    SYMBOLS,
    WAIT,
    FakeMonotonic,
    RestFake,
    Watch,
    fresh,
    make,
    simulator,
)

from streamfsm._core.machine import State
from streamfsm.errors import ConfigurationError, InvalidSymbolError
from streamfsm.models import Quote
from streamfsm.pricing import AlpacaLatestQuotes, PricingService, StaleReason
from streamfsm.sim import SimulatorThread

#: Quotes the stream must deliver while eight threads read as fast as they can.
STREAMED_WHILE_READING = 100


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes and trades quickly."""
    with simulator() as running:
        yield running


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


def test_a_symbol_quiet_across_two_outages_turns_fresh_with_its_next_quote(
    sim: SimulatorThread,
) -> None:
    """A quote from before two outages stays GAP-stale through both; one gap report, then fresh."""
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


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("max_symbols", 0),
        ("max_symbols", True),
        ("max_symbols", 1.5),
        ("max_age", -1),
        ("max_age", math.nan),
        ("max_age", True),
        ("max_age", 10**9),
        ("trades", "yes"),
        ("on_quote", 5),
        ("on_refresh", "print"),
        ("refresher", object()),
        ("clock", None),
        ("config", "iex"),
    ],
)
def test_a_bad_constructor_argument_is_a_configuration_error_naming_it(
    argument: str, value: object
) -> None:
    """Each constructor argument is checked at the call, and the error names it."""
    with pytest.raises(ConfigurationError, match=argument):
        PricingService(CREDENTIALS, **{argument: value})


def test_bad_method_arguments_raise_typed_errors_and_change_nothing() -> None:
    """A bad priority, a non-string read or an invalid refresh symbol raise typed errors."""
    service = PricingService(CREDENTIALS, trades=True)
    for priority in (1.5, True, 2**40):
        with pytest.raises(ConfigurationError, match="priority"):
            service.track("AAPL", priority=priority)  # type: ignore[arg-type]
    assert service.tracked() == {}
    with pytest.raises(InvalidSymbolError):
        service.quote(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidSymbolError):
        service.last_trade(["AAPL"])  # type: ignore[arg-type]
    assert service.quote("NOPE") is None


#: Each quote callback takes this long, so the feed outruns the consumer and frames wait.
SLOW_CALLBACK = 0.02
#: A quote delivered after another callback of its frame waited at least SLOW_CALLBACK.
VISIBLE_WAIT = SLOW_CALLBACK / 2


def test_a_quote_that_waited_behind_slow_callbacks_is_dated_by_its_arrival(
    sim: SimulatorThread,
) -> None:
    """Read in its own callback, a quote that waited behind slower callbacks shows its wait."""
    watch = Watch()
    service = make(sim, watch, trades=False)
    ages: list[float] = []

    def slow(quote: Quote) -> None:
        snapshot = service.quote(quote.symbol)
        if snapshot is not None:
            ages.append(snapshot.age)
        time.sleep(SLOW_CALLBACK)  # a consumer slower than the feed

    watch.hook = slow
    service.track(SYMBOLS)
    service.start()
    try:
        assert watch.wait(lambda: any(age > VISIBLE_WAIT for age in ages))
    finally:
        service.stop()


def test_the_controller_tells_pricing_its_desired_set_and_no_arrival_outside_a_callback() -> None:
    """desired() follows track() without a loop; arrival_time() is None outside a delivery."""
    service = PricingService(CREDENTIALS, trades=False)
    service.track(["AAPL", "MSFT"])
    assert service.controller.desired().quotes == {"AAPL", "MSFT"}
    assert service.controller.desired().trades == frozenset()
    assert service.controller.arrival_time() is None
