"""Edge cases of the controller's lifecycle found in review, each pinned by a test."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streamfsm import BackoffPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.commands import RestartRequested, StopRequested, SymbolsRequested
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import State
from streamfsm._core.runner import Runner
from streamfsm._core.subscriptions import Subscription
from streamfsm.audit.verify import ViolationKind, verify_file
from streamfsm.config import Encoding
from streamfsm.controller import StreamController
from streamfsm.errors import (
    ConfigurationError,
    ControllerStoppedError,
    InvalidTransitionError,
    StreamError,
)
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, Simulator, SimulatorThread
from streamfsm.testing import FakeClock, FakeSessionPort

CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
WAIT = 5.0
#: A callback this slow per quote falls behind a 2000 quotes/s feed.
SLOW_SECONDS = 0.002
SAMPLES = 200


def config(url: str, **changes: Any) -> StreamConfig:
    values: dict[str, Any] = {
        "url": url,
        "backoff": BackoffPolicy(initial=0.05, maximum=0.1),
        "stale": StalePolicy(quotes=None),
        "healthy_after": 0.2,
    }
    values.update(changes)
    return StreamConfig(**values)


@pytest.fixture
def sim() -> Any:
    """A simulator streaming quotes quickly."""
    with SimulatorThread(SimConfig(rate=2000, batch=20, seed=9)) as simulator:
        yield simulator


def test_stop_inside_a_callback_delivers_nothing_more(sim: SimulatorThread) -> None:
    """After stop() returns inside a callback, no further callback runs."""
    after_stop: list[Any] = []
    stopped = threading.Event()
    holder: dict[str, StreamController] = {}

    def on_quote(quote: Any) -> None:
        if stopped.is_set():
            after_stop.append(quote)
            return
        holder["ctl"].stop()
        stopped.set()

    ctl = StreamController(CREDENTIALS, config(sim.url()), on_quote=on_quote, symbols=["AAPL"])
    holder["ctl"] = ctl
    ctl.start()
    assert stopped.wait(WAIT)
    assert ctl.wait_for(State.STOPPED, WAIT)
    ctl.stop()
    assert after_stop == []


def test_start_after_a_stop_inside_a_callback_really_starts(sim: SimulatorThread) -> None:
    """start() from outside, right after a callback stopped the controller, connects again."""
    stopped = threading.Event()
    holder: dict[str, StreamController] = {}

    def on_quote(_quote: Any) -> None:
        if not stopped.is_set():
            holder["ctl"].stop()
            stopped.set()

    ctl = StreamController(CREDENTIALS, config(sim.url()), on_quote=on_quote, symbols=["AAPL"])
    holder["ctl"] = ctl
    ctl.start()
    assert stopped.wait(WAIT)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    ctl.stop()
    assert ctl.state is State.STOPPED


def test_astop_awaited_inside_an_async_callback_does_not_deadlock() -> None:
    """An async callback may await astop(); the engine then winds down after it."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=500, seed=9)) as simulator:
            done = asyncio.Event()
            holder: dict[str, StreamController] = {}

            async def on_quote(_quote: Any) -> None:
                if not done.is_set():
                    done.set()
                    await holder["ctl"].astop()

            ctl = StreamController(
                CREDENTIALS, config(simulator.url()), on_quote=on_quote, symbols=["AAPL"]
            )
            holder["ctl"] = ctl
            await ctl.astart()
            async with asyncio.timeout(WAIT):
                await done.wait()
                await ctl.await_state(State.STOPPED)
            await ctl.astop()
            assert ctl.state is State.STOPPED

    asyncio.run(main())


def test_debug_logging_never_shows_the_auth_frame(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    """With every stdlib logger at DEBUG, no frame (and no piece of the secret) is logged."""
    secret_tail = DEMO_SECRET[-8:]
    with caplog.at_level(logging.DEBUG):
        ctl = StreamController(
            CREDENTIALS,
            config(sim.url(), encoding=Encoding.JSON),
            on_quote=lambda _q: None,
            symbols=["AAPL"],
        )
        ctl.start()
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        ctl.stop()
    assert all(secret_tail not in record.getMessage() for record in caplog.records)
    assert not any('"action"' in record.getMessage() for record in caplog.records)


def test_subscribing_from_eight_threads_before_start_loses_nothing() -> None:
    """Without an engine, concurrent subscribe() calls are serialized: every symbol is kept."""
    ctl = StreamController(
        CREDENTIALS, StreamConfig(url="ws://127.0.0.1:9/v2/iex"), on_quote=lambda _q: None
    )
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        barrier.wait()
        for number in range(50):
            ctl.subscribe(quotes=[f"S{index}X{number}"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(ctl.health().desired.quotes) == 400


def test_restart_before_start_is_refused_and_changes_nothing() -> None:
    """restart() with no running controller raises and leaves it idle with nothing queued."""
    ctl = StreamController(
        CREDENTIALS,
        StreamConfig(url="ws://127.0.0.1:9/v2/iex"),
        on_quote=lambda _q: None,
        symbols=["AAPL"],
    )
    with pytest.raises(ControllerStoppedError):
        ctl.restart()
    assert ctl.state is State.IDLE
    assert ctl.core.drain() == []


def test_a_refused_queued_command_neither_escapes_nor_strands_the_queue() -> None:
    """A command queued during a transition that fails is reported; the next ones still run."""
    clock = FakeClock()
    refused: list[StreamError] = []
    core = ConnectionCore(
        StreamConfig(),
        clock=clock.monotonic,
        wall=lambda: datetime(2026, 1, 2, tzinfo=UTC),
        rng=random.Random(1),
        correlation_id="q",
        on_record=lambda record: None,
    )
    runner = Runner(core, clock, FakeSessionPort(), on_queued_error=refused.append)
    queued = threading.Event()

    def listener(record: Any) -> None:
        if record.dst == "stopped" and not queued.is_set():
            queued.set()
            runner.send(RestartRequested())  # refused: restart from stopped
            runner.send(SymbolsRequested(add=Subscription(quotes={"AAPL"})))

    core.on_record = listener
    runner.send(StopRequested())
    assert core.state is State.STOPPED
    assert [type(e) for e in refused] == [InvalidTransitionError]
    assert core.book.desired == Subscription(quotes={"AAPL"})


def test_callbacks_can_tell_how_late_a_frame_is_delivered(sim: SimulatorThread) -> None:
    """delivery_lag() inside a callback grows when callbacks fall behind the socket."""
    lags: list[float] = []
    holder: dict[str, StreamController] = {}
    enough = threading.Event()

    def slow(_quote: Any) -> None:
        lags.append(holder["ctl"].delivery_lag())
        busy_until = time.perf_counter() + SLOW_SECONDS
        while time.perf_counter() < busy_until:
            continue  # a slow pricing model
        if len(lags) >= SAMPLES:
            enough.set()

    ctl = StreamController(CREDENTIALS, config(sim.url()), on_quote=slow, symbols=["AAPL"])
    holder["ctl"] = ctl
    ctl.start()
    assert enough.wait(WAIT)
    ctl.stop()
    assert max(lags) > SLOW_SECONDS
    assert ctl.delivery_lag() == 0.0


def test_a_journal_torn_by_a_crash_does_not_swallow_the_next_run(tmp_path: Path) -> None:
    """Appending after a torn last line starts the new run on a line of its own."""
    path = tmp_path / "journal.jsonl"
    for _ in range(2):
        ctl = StreamController(
            CREDENTIALS, StreamConfig(url="ws://127.0.0.1:9/v2/iex", journal_path=path)
        )
        ctl.start()
        ctl.stop()
        text = path.read_text(encoding="utf-8")
        path.write_text(text[:-10], encoding="utf-8")  # tear the last record
    violations = verify_file(path)
    kinds = [v.kind for v in violations]
    assert kinds.count(ViolationKind.MALFORMED_LINE) + kinds.count(
        ViolationKind.TRUNCATED_LINE
    ) == len(kinds)


def test_absurd_numbers_in_config_are_configuration_errors() -> None:
    """A number too large for a float is a ConfigurationError, not an OverflowError."""
    with pytest.raises(ConfigurationError):
        BackoffPolicy(initial=10**400, maximum=10**400)


def test_a_price_that_is_not_a_number_is_skipped_and_counted() -> None:
    """NaN, infinite or negative prices never reach a snapshot; they are counted."""
    from streamfsm.models import Quote
    from streamfsm.pricing.service import PricingService

    service = PricingService(CREDENTIALS, StreamConfig(url="ws://127.0.0.1:9/v2/iex"))
    service.track(["AAPL"])
    stamp = datetime(2026, 1, 2, tzinfo=UTC)
    for bid in (float("nan"), float("inf"), -1.0):
        service._on_quote(
            Quote(
                symbol="AAPL", timestamp=stamp, bid_price=bid, bid_size=1, ask_price=2, ask_size=1
            )
        )
    assert service.quote("AAPL") is None
    assert service.statistics().rejected_prices == 3


def test_a_max_age_that_is_not_a_number_is_refused() -> None:
    """max_age=NaN would switch age staleness off; it is a ConfigurationError."""
    from streamfsm.pricing.service import PricingService

    with pytest.raises(ConfigurationError):
        PricingService(CREDENTIALS, max_age=float("nan"))


def test_audit_reports_a_line_json_cannot_hold_as_malformed(tmp_path: Path) -> None:
    """A 5000-digit integer is one malformed line, not a traceback."""
    path = tmp_path / "journal.jsonl"
    path.write_text('{"seq":' + "1" * 5000 + "}\n", encoding="utf-8")
    assert [v.kind for v in verify_file(path)] == [ViolationKind.MALFORMED_LINE]
