"""The refresher with a fake source: what it stores, when its thread runs, how it fails (unit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta

import pytest
from pricing_support import NOW, WAIT, quote

from streamfsm.logs import StreamLogger
from streamfsm.models import Quote
from streamfsm.pricing import QuoteSnapshot, Source
from streamfsm.pricing.refresher import Refresher


class FakeSource:
    """Answers from a dict, raises ``error`` once when it is set, records every request."""

    def __init__(self, quotes: dict[str, Quote]) -> None:
        self.quotes = quotes
        self.requests: list[tuple[str, ...]] = []
        self.error: Exception | None = None
        self.asked = threading.Event()

    def latest_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        self.requests.append(tuple(symbols))
        self.asked.set()
        error, self.error = self.error, None
        if error is not None:
            raise error
        return {symbol: self.quotes[symbol] for symbol in symbols if symbol in self.quotes}


class Setup:
    """A refresher over a fake source, a membership set and a list of stale symbols."""

    def __init__(self, source: FakeSource) -> None:
        self.members: set[str] = {"AAPL", "MSFT"}
        self.stale: tuple[str, ...] = ("AAPL", "MSFT")
        self.refreshed: list[Mapping[str, QuoteSnapshot]] = []
        self.hook_error: Exception | None = None
        self._condition = threading.Condition()
        self.refresher = Refresher(
            source,
            members=lambda: dict.fromkeys(self.members),
            stale_symbols=lambda: self.stale,
            clock=lambda: 50.0,
            wall=lambda: 1000.0,
            on_refresh=self.on_refresh,
            log=StreamLogger(component="pricing"),
            thread_name="streamfsm-refresh-test",
        )

    def on_refresh(self, stored: Mapping[str, QuoteSnapshot]) -> None:
        with self._condition:
            self.refreshed.append(stored)
            self._condition.notify_all()
        error, self.hook_error = self.hook_error, None
        if error is not None:
            raise error

    def wait_refreshed(self, count: int) -> bool:
        """Wait until on_refresh has been called ``count`` times."""
        with self._condition:
            return self._condition.wait_for(lambda: len(self.refreshed) >= count, WAIT)


@pytest.fixture
def source() -> FakeSource:
    """A source that knows AAPL and MSFT."""
    msft = quote(400.1, 400.2, symbol="MSFT")
    return FakeSource({"AAPL": quote(187.33, 187.35), "MSFT": msft})


@pytest.fixture
def setup(source: FakeSource) -> Iterator[Setup]:
    """The refresher under test; its thread is stopped afterwards."""
    built = Setup(source)
    yield built
    built.refresher.stop()


def test_a_refresh_stores_tracked_symbols_with_the_time_it_returned(
    setup: Setup, source: FakeSource
) -> None:
    """Only tracked symbols are asked for and stored, dated by the refresher's clocks."""
    stored = setup.refresher.refresh(["AAPL", "SPY"])
    assert source.requests == [("AAPL",)]
    assert set(stored) == {"AAPL"}
    assert stored["AAPL"].source is Source.REST
    assert stored["AAPL"].received_at == 50.0
    assert stored["AAPL"].received_wall.timestamp() == 1000.0
    assert setup.refresher.quotes["AAPL"][1] == 50.0
    assert setup.refresher.refreshes == 1


def test_nothing_is_asked_for_when_nothing_tracked_is_requested(
    setup: Setup, source: FakeSource
) -> None:
    """A refresh of untracked symbols makes no call and counts nothing."""
    assert setup.refresher.refresh(["SPY"]) == {}
    assert source.requests == []
    assert setup.refresher.refreshes == 0


def test_an_older_quote_or_one_for_another_symbol_is_not_stored(
    setup: Setup, source: FakeSource
) -> None:
    """A REST answer never replaces a newer stored quote, nor files a quote under another name."""
    newer = quote(190.0, 190.1, timestamp=NOW + timedelta(seconds=5))
    setup.refresher.quotes["AAPL"] = (newer, 40.0)
    source.quotes["MSFT"] = quote(1.0, 1.1)  # symbol AAPL under the key MSFT
    assert setup.refresher.refresh(None) == {}
    assert setup.refresher.quotes["AAPL"][0] is newer
    assert "MSFT" not in setup.refresher.quotes


def test_a_failing_source_is_counted_and_raised_to_the_caller(
    setup: Setup, source: FakeSource
) -> None:
    """refresh() raises what the source raised and counts it."""
    source.error = OSError("connection refused")
    with pytest.raises(OSError, match="connection refused"):
        setup.refresher.refresh(["AAPL"])
    assert setup.refresher.failures == 1


def test_the_thread_refreshes_the_stale_symbols_when_woken(setup: Setup) -> None:
    """wake() makes the thread refresh the stale symbols and hand them to on_refresh."""
    setup.stale = ("MSFT",)
    setup.refresher.start()
    setup.refresher.wake()
    assert setup.wait_refreshed(1)
    assert set(setup.refreshed[0]) == {"MSFT"}


def test_the_thread_survives_a_failing_source_and_a_failing_hook(
    setup: Setup, source: FakeSource
) -> None:
    """Failures of the source or of on_refresh are counted; the next wake-up refreshes again."""
    setup.refresher.start()
    source.error = OSError("down")
    setup.hook_error = RuntimeError("hook")
    setup.refresher.wake()
    assert source.asked.wait(WAIT)  # the first refresh fails in the source
    setup.refresher.wake()
    assert setup.wait_refreshed(1)  # the second stores, and the hook raises
    setup.refresher.wake()
    assert setup.wait_refreshed(2)  # the third stores, the hook is fine
    setup.refresher.stop()
    assert setup.refresher.failures == 2
    assert setup.refresher.refreshes == 2


def test_stop_ends_the_thread_and_is_idempotent(setup: Setup) -> None:
    """After stop() the refresher thread is gone; a second stop() is harmless."""
    setup.refresher.start()
    assert any(t.name == "streamfsm-refresh-test" for t in threading.enumerate())
    setup.refresher.stop()
    setup.refresher.stop()
    assert not any(t.name == "streamfsm-refresh-test" for t in threading.enumerate())
