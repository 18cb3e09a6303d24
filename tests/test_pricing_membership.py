"""Membership: validation, deterministic eviction, the hand-over to the controller and server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from pricing_support import CREDENTIALS, FAST, WAIT, Watch, fresh, make, server_has, simulator

from streamfsm.errors import (
    ConfigurationError,
    ControllerStoppedError,
    InvalidSymbolError,
    LocalProtocolError,
    StreamError,
    SymbolLimitError,
)
from streamfsm.logs import StreamLogger, capture_events
from streamfsm.models import Quote
from streamfsm.pricing import PricingService, TrackResult
from streamfsm.pricing.membership import Membership, explicit_symbols
from streamfsm.sim import SimConfig, SimulatorThread


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes and trades quickly."""
    with simulator() as running:
        yield running


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
    with capture_events() as logs:
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


# ---------------------------------------------------------------- the hand-over, with a fake port


class FakeController:
    """Records what the membership asks for; can refuse once or call back into the membership."""

    def __init__(self) -> None:
        self.desired: frozenset[str] = frozenset()
        self.calls: list[frozenset[str]] = []
        self.refuse_next = False
        self.during: Callable[[], None] | None = None

    def apply(self, wanted: frozenset[str]) -> None:
        self.calls.append(wanted)
        if self.refuse_next:
            self.refuse_next = False
            raise ControllerStoppedError("the loop did not take the command")
        if self.during is not None:
            during, self.during = self.during, None
            during()
        self.desired = wanted


def membership(port: FakeController, max_symbols: int | None = None) -> tuple[Membership, list]:
    forgotten: list[str] = []
    return (
        Membership(
            max_symbols,
            clock=lambda: 1.0,
            apply=port.apply,
            forget=forgotten.append,
            log=StreamLogger(component="pricing"),
        ),
        forgotten,
    )


def test_every_change_reaches_the_controller_before_track_returns() -> None:
    """track() and untrack() hand the whole membership over; dropped symbols are forgotten."""
    port = FakeController()
    members, forgotten = membership(port, max_symbols=2)
    members.track(("AAPL", "MSFT"), 1)
    assert port.desired == {"AAPL", "MSFT"}
    result = members.track("TSLA", 5)
    assert result.evicted == ("MSFT",)
    assert port.desired == {"AAPL", "TSLA"}
    assert members.untrack(["AAPL", "SPY"]) == ("AAPL",)
    assert port.desired == {"TSLA"}
    assert forgotten == ["MSFT", "AAPL"]


def test_a_change_the_controller_refused_is_handed_over_again_next_time() -> None:
    """A StreamError from the controller reaches the caller; the next change carries both."""
    port = FakeController()
    members, _forgotten = membership(port)
    port.refuse_next = True
    with pytest.raises(ControllerStoppedError):
        members.track("AAPL", 0)
    assert port.desired == frozenset()
    members.track("MSFT", 0)
    assert port.desired == {"AAPL", "MSFT"}


def test_a_change_made_during_a_hand_over_is_carried_by_the_thread_handing_over() -> None:
    """A nested track() (from a callback) returns at once; the running hand-over applies it."""
    port = FakeController()
    members, _forgotten = membership(port)
    nested: list[TrackResult] = []
    port.during = lambda: nested.append(members.track("TSLA", 0))
    members.track("AAPL", 0)
    assert nested[0].added == ("TSLA",)
    assert port.desired == {"AAPL", "TSLA"}
    assert port.calls == [frozenset({"AAPL"}), frozenset({"AAPL", "TSLA"})]


def test_symbols_are_validated_before_anything_changes() -> None:
    """An invalid symbol or the wildcard anywhere in a call changes nothing."""
    port = FakeController()
    members, _forgotten = membership(port)
    for bad in (["AAPL", "*"], ["AAPL", "aapl"], ["AAPL", 7]):
        with pytest.raises(InvalidSymbolError):
            members.track(bad, 0)  # type: ignore[arg-type]
    assert members.ranked() == {}
    assert port.calls == []
    assert explicit_symbols(["MSFT", "AAPL", "MSFT"]) == ("MSFT", "AAPL")
