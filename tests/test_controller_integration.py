"""The controller against the simulator over real loopback sockets, one test per fault.

Every test ends by stopping the controller and asserting that no streamfsm thread, no session
and no open server-side connection is left. Waits are bounded waits on conditions, never sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from transition_log import TransitionLog

from streamfsm import BackoffPolicy, BreakerPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.machine import State
from streamfsm._core.subscriptions import Subscription
from streamfsm.audit.verify import verify_records
from streamfsm.config import MIN_STALE_THRESHOLD, Transport
from streamfsm.controller import StreamController
from streamfsm.errors import (
    AuthenticationError,
    ConnectTimeoutError,
    ControllerStoppedError,
    InsufficientSubscriptionError,
    InternalError,
    InvalidSymbolError,
    InvalidTransitionError,
    StreamError,
    SymbolLimitError,
)
from streamfsm.logs import capture_events
from streamfsm.models import Quote as FastQuote
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 5.0
#: A consumer this slow per quote handles 2k quotes/s, a tenth of the simulator's 20k.
SLOW_CALLBACK_SECONDS = 0.0005
FAST = StreamConfig(
    backoff=BackoffPolicy(initial=0.05, maximum=0.2),
    breaker=BreakerPolicy(failure_threshold=50, cooldown=0.5),
    stale=StalePolicy(quotes=None),
    healthy_after=0.3,
    connection_limit_cooldown=0.1,
    connect_timeout=2.0,
    auth_timeout=0.5,
    subscribe_timeout=2.0,
)
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
#: Below the shortest timer test_stop_from_each_state arms (2.5 s), far above stop()'s budget.
STOP_WAITS_NO_TIMER = 2.0
#: The transport the running test uses; every test runs on each (see the ``transport`` fixture).
ACTIVE: dict[str, Transport] = {"transport": Transport.WEBSOCKETS}


@pytest.fixture(autouse=True, params=list(Transport))
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """Run the test once on each transport: websockets and picows."""
    ACTIVE["transport"] = request.param
    yield request.param
    ACTIVE["transport"] = Transport.WEBSOCKETS


def fast() -> StreamConfig:
    """FAST on the transport of the running test."""
    return attrs.evolve(FAST, transport=ACTIVE["transport"])


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes and trades quickly."""
    with SimulatorThread(SimConfig(rate=400, batch=4, seed=3, symbol_limit=5)) as simulator:
        yield simulator


class Recorder:
    """Collects what the callbacks receive, and lets a test wait for more."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.errors: list[StreamError] = []
        self._condition = threading.Condition()

    def __call__(self, item: Any) -> None:
        with self._condition:
            self.items.append(item)
            self._condition.notify_all()

    def error(self, error: StreamError) -> None:
        with self._condition:
            self.errors.append(error)
            self._condition.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)

    def more_than(self, count: int, timeout: float = WAIT) -> bool:
        return self.wait(lambda: len(self.items) > count, timeout)


def make(
    sim: SimulatorThread,
    recorder: Recorder,
    config: StreamConfig = FAST,
    symbols: tuple[str, ...] = ("AAPL", "MSFT"),
    **kwargs: Any,
) -> StreamController:
    return StreamController(
        kwargs.pop("credentials", CREDENTIALS),
        attrs.evolve(config, url=sim.url("iex"), transport=ACTIVE["transport"]),
        on_quote=recorder,
        on_error=recorder.error,
        symbols=symbols,
        **kwargs,
    )


def server_set(sim: SimulatorThread) -> Subscription:
    (connection,) = sim.stats().open_connections
    subs = connection.subscriptions
    return Subscription(trades=subs.trades, quotes=subs.quotes, bars=subs.bars)


def assert_clean(ctl: StreamController, sim: SimulatorThread) -> None:
    """After stop() the server holds no connection; after close() no controller thread runs."""
    assert ctl.state is State.STOPPED
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)
    ctl.close()
    assert f"streamfsm-{ctl.correlation_id}" not in {t.name for t in threading.enumerate()}


def test_streams_alpaca_models_and_stops_cleanly(sim: SimulatorThread) -> None:
    """Callbacks get alpaca-py Quote objects; stop leaves no thread, task or socket."""
    from alpaca.data.models import Quote

    recorder = Recorder()
    ctl = make(sim, recorder)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    assert ctl.is_connected()
    assert recorder.more_than(5)
    assert isinstance(recorder.items[0], Quote)
    assert {q.symbol for q in recorder.items} <= {"AAPL", "MSFT"}
    assert server_set(sim) == Subscription(quotes={"AAPL", "MSFT"})
    ctl.stop()
    assert_clean(ctl, sim)


def test_resubscribes_after_drop(sim: SimulatorThread) -> None:
    """After a TCP reset the controller reconnects and the server's set equals the desired set."""
    recorder = Recorder()
    ctl = make(sim, recorder, models="fast")
    log = TransitionLog(ctl)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    ctl.subscribe(quotes=["SPY"])
    assert ctl.wait_synced(WAIT)
    sim.drop()
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    assert ctl.wait_synced(WAIT)
    assert server_set(sim) == Subscription(quotes={"AAPL", "MSFT", "SPY"})
    assert ctl.health().reconnects == 1
    count = len(recorder.items)
    assert recorder.more_than(count)
    assert isinstance(recorder.items[-1], FastQuote)
    ctl.stop()
    assert_clean(ctl, sim)


@pytest.mark.parametrize("code", [1000, 1001, 1011])
def test_clean_close_codes_reconnect(sim: SimulatorThread, code: int) -> None:
    """A close frame with 1000, 1001 or 1011 is transient: back off, then subscribed again."""
    recorder = Recorder()
    ctl = make(sim, recorder)
    log = TransitionLog(ctl)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    sim.close_connections(code, "maintenance")
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    lost = log.matching(trigger="connection_lost")
    assert lost[-1].error == "ConnectionClosedError"
    ctl.stop()
    assert_clean(ctl, sim)


def test_mute_socket_is_detected_and_replaced(sim: SimulatorThread) -> None:
    """A socket that stays open but sends nothing is declared stale and replaced."""
    recorder = Recorder()
    config = attrs.evolve(fast(), stale=StalePolicy(quotes=MIN_STALE_THRESHOLD))
    ctl = make(sim, recorder, config=config)
    log = TransitionLog(ctl)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    assert recorder.more_than(0)
    sim.mute()
    started = time.monotonic()
    assert log.wait(WAIT, dst="backoff", trigger="data_stale")
    detected = time.monotonic() - started
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    stale = log.matching(trigger="data_stale")
    assert stale[-1].error == "StaleConnectionError"
    assert detected >= MIN_STALE_THRESHOLD * 0.9
    ctl.stop()
    assert_clean(ctl, sim)


def test_refused_connections_back_off_then_recover(sim: SimulatorThread) -> None:
    """While the server refuses connections, attempts back off; then the stream resumes."""
    recorder = Recorder()
    sim.refuse(0.4)
    ctl = make(sim, recorder)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    failed = [r for r in ctl.journal() if r.trigger == "attempt_failed"]
    assert failed
    assert all(r.dst == "backoff" for r in failed)
    ctl.stop()
    assert_clean(ctl, sim)


def test_connection_limit_three_times_then_success(sim: SimulatorThread) -> None:
    """Three 406s each wait the connection-limit cool-down, then the fourth attempt succeeds."""
    recorder = Recorder()
    sim.fail_auth(3, 406)
    ctl = make(sim, recorder)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    limited = [r for r in ctl.journal() if r.code == 406]
    assert len(limited) == 3
    assert all(r.delay is not None and r.delay >= FAST.connection_limit_cooldown for r in limited)
    assert ctl.health().attempts == 4
    ctl.stop()
    assert_clean(ctl, sim)


@pytest.mark.parametrize(
    ("credentials", "feed", "error"),
    [
        (Credentials(DEMO_KEY_ID, "wrong-secret"), "iex", AuthenticationError),
        (CREDENTIALS, "sip", InsufficientSubscriptionError),
    ],
    ids=["402", "409"],
)
def test_fatal_errors_stop_after_one_attempt(
    sim: SimulatorThread, credentials: Credentials, feed: str, error: type[StreamError]
) -> None:
    """402 and 409 stop the controller with the typed error after exactly one attempt."""
    recorder = Recorder()
    config = attrs.evolve(fast(), url=sim.url(feed))
    ctl = StreamController(
        credentials, config, on_quote=recorder, on_error=recorder.error, symbols=["AAPL"]
    )
    ctl.start()
    assert ctl.wait_for(State.STOPPED, WAIT)
    assert isinstance(ctl.last_error, error)
    assert recorder.wait(lambda: bool(recorder.errors))
    assert isinstance(recorder.errors[0], error)
    assert sim.stats().auth_attempts == 1
    assert ctl.health().attempts == 1
    ctl.stop()
    assert_clean(ctl, sim)


def test_symbol_limit_rejects_the_change_and_keeps_the_stream(sim: SimulatorThread) -> None:
    """A 405 on a later subscribe rejects that change; the session and old symbols stay."""
    recorder = Recorder()
    ctl = make(sim, recorder)
    ctl.start()
    assert ctl.wait_synced(WAIT)
    ctl.subscribe(quotes=["SPY", "TSLA", "NVDA", "AMD"])
    assert recorder.wait(lambda: any(isinstance(e, SymbolLimitError) for e in recorder.errors))
    assert ctl.wait_synced(WAIT)
    assert ctl.state is State.SUBSCRIBED
    assert ctl.health().desired == Subscription(quotes={"AAPL", "MSFT"})
    assert server_set(sim) == Subscription(quotes={"AAPL", "MSFT"})
    assert isinstance(ctl.last_error, SymbolLimitError)
    ctl.stop()
    assert_clean(ctl, sim)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "bare_object", "unknown_type"])
def test_malformed_frames_are_skipped(sim: SimulatorThread, kind: str) -> None:
    """A malformed frame is counted and skipped; the stream goes on."""
    recorder = Recorder()
    ctl = make(sim, recorder)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    sim.send_malformed(kind)
    count = len(recorder.items)
    assert recorder.more_than(count + 5)
    health = ctl.health()
    assert health.malformed_frames + health.skipped_messages >= 1
    assert ctl.state is State.SUBSCRIBED
    assert health.attempts == 1
    ctl.stop()
    assert_clean(ctl, sim)


def test_slow_auth_past_the_timeout_is_retried(sim: SimulatorThread) -> None:
    """An auth reply slower than auth_timeout fails the attempt; the next one succeeds."""
    recorder = Recorder()
    sim.delay_auth(1.0)
    ctl = make(sim, recorder)
    log = TransitionLog(ctl)
    ctl.start()
    assert log.wait(WAIT, dst="backoff", trigger="attempt_failed")
    failed = log.matching(trigger="attempt_failed")[0]
    assert failed.error == ConnectTimeoutError.__name__
    sim.delay_auth(0.0)
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    ctl.stop()
    assert_clean(ctl, sim)


def test_raising_callback_keeps_stream(sim: SimulatorThread) -> None:
    """A callback that raises is counted; state, session and the rest of each frame survive."""
    seen: list[Any] = []
    enough = threading.Event()

    def flaky(quote: Any) -> None:
        seen.append(quote)
        if len(seen) >= 20:
            enough.set()
        if len(seen) % 2:
            raise ValueError("handler bug")

    ctl = StreamController(
        CREDENTIALS,
        attrs.evolve(fast(), url=sim.url("iex")),
        on_quote=flaky,
        symbols=["AAPL", "MSFT"],
    )
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    assert enough.wait(WAIT)
    health = ctl.health()
    assert health.callback_errors >= 10
    assert health.state is State.SUBSCRIBED
    assert health.attempts == 1
    ctl.stop()
    assert_clean(ctl, sim)


def test_subscribe_from_inside_a_callback(sim: SimulatorThread) -> None:
    """Subscribing from inside a callback neither deadlocks nor reconnects."""
    recorder = Recorder()
    done = threading.Event()
    holder: dict[str, StreamController] = {}

    def on_quote(quote: Any) -> None:
        recorder(quote)
        if not done.is_set():
            done.set()
            holder["ctl"].subscribe(trades=["SPY"])

    ctl = StreamController(
        CREDENTIALS,
        attrs.evolve(fast(), url=sim.url("iex")),
        on_quote=on_quote,
        on_trade=recorder,
        symbols=["AAPL"],
    )
    holder["ctl"] = ctl
    ctl.start()
    assert done.wait(WAIT)
    assert ctl.wait_synced(WAIT)
    assert server_set(sim) == Subscription(quotes={"AAPL"}, trades={"AAPL", "SPY"})
    assert ctl.health().attempts == 1
    ctl.stop()
    assert_clean(ctl, sim)


def _reach(ctl: StreamController, sim: SimulatorThread, state: State) -> None:
    if state is State.IDLE:
        return
    if state is State.CONNECTING:
        sim.delay_auth(5.0)
        ctl.start()
        assert ctl.state is State.CONNECTING
        return
    if state is State.BACKOFF:
        sim.refuse(5.0)
        ctl.start()
        assert ctl.wait_for(State.BACKOFF, WAIT)
        return
    if state is State.CIRCUIT_OPEN:
        sim.refuse(5.0)
        ctl.start()
        assert ctl.wait_for(State.CIRCUIT_OPEN, WAIT)
        return
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    if state is State.STOPPED:
        ctl.stop()


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_stop_from_each_state(sim: SimulatorThread, state: State) -> None:
    """stop() returns at once from every state (waits out no timer) and leaves nothing running."""
    recorder = Recorder()
    config = attrs.evolve(
        FAST,
        backoff=BackoffPolicy(initial=5.0, maximum=5.0, jitter="equal"),
        breaker=BreakerPolicy(
            failure_threshold=1 if state is State.CIRCUIT_OPEN else 5, cooldown=30.0
        ),
        auth_timeout=10.0,
    )
    ctl = make(sim, recorder, config=config)
    _reach(ctl, sim, state)
    assert ctl.state is state
    started = time.perf_counter()
    ctl.stop()
    elapsed = time.perf_counter() - started
    assert ctl.state is State.STOPPED
    # Not a speed test (the 50 ms budget is measured by `make bench`): stop() must not wait out
    # the state's timer, the shortest of which is the 2.5 s floor of the 5 s equal-jitter backoff.
    assert elapsed < STOP_WAITS_NO_TIMER, elapsed
    count = len(recorder.items)
    sim.accept()
    sim.delay_auth(0.0)
    assert_clean(ctl, sim)
    assert len(recorder.items) == count


def test_commands_hammered_from_eight_threads(sim: SimulatorThread) -> None:
    """start/stop/restart/subscribe from 8 threads at once: typed errors only, clean end."""
    recorder = Recorder()
    ctl = make(sim, recorder)
    unexpected: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        barrier.wait()
        for step in range(15):
            try:
                match (index + step) % 5:
                    case 0:
                        ctl.start()
                    case 1:
                        ctl.subscribe(quotes=[f"S{index}"])
                    case 2:
                        ctl.restart()
                    case 3:
                        ctl.unsubscribe(quotes=[f"S{index}"])
                    case _:
                        ctl.health()
            except (InvalidTransitionError, ControllerStoppedError):
                continue  # a command in the wrong state: typed, and nothing changed
            except BaseException as exc:
                unexpected.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert unexpected == []
    ctl.stop()
    assert_clean(ctl, sim)
    assert verify_records(ctl.journal()) == []


def test_invalid_symbols_are_refused_before_anything_changes(sim: SimulatorThread) -> None:
    """A bad symbol raises a typed error in the caller and changes nothing."""
    ctl = make(sim, Recorder())
    with pytest.raises(InvalidSymbolError):
        ctl.subscribe(quotes=["aapl lower"])
    assert ctl.health().desired == Subscription(quotes={"AAPL", "MSFT"})
    ctl.stop()


def test_secret_never_appears_in_logs(sim: SimulatorThread) -> None:
    """Across a whole life with faults, no log event, journal record or repr holds the secret."""
    recorder = Recorder()
    with capture_events() as logs:
        ctl = make(sim, recorder)
        log = TransitionLog(ctl)
        ctl.start()
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        sim.drop()
        assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        ctl.stop()
    text = repr(logs) + repr(ctl) + repr(ctl.journal()) + repr(ctl.health())
    assert DEMO_SECRET not in text
    assert '"action":"auth"' not in text
    changes = [e for e in logs if e["event"] == "state_changed"]
    assert len(changes) == len(ctl.journal())


def test_journal_file_verifies_against_the_table(sim: SimulatorThread, tmp_path: Any) -> None:
    """The JSON Lines journal of a real run with a drop passes `audit verify` and has a timeline."""
    from streamfsm.audit.timeline import build_timelines
    from streamfsm.audit.verify import verify_file

    path = tmp_path / "journal.jsonl"
    config = attrs.evolve(fast(), url=sim.url("iex"), journal_path=path)
    ctl = StreamController(CREDENTIALS, config, on_quote=Recorder(), symbols=["AAPL"])
    log = TransitionLog(ctl)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    sim.drop()
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    ctl.stop()
    assert_clean(ctl, sim)
    assert verify_file(path) == []
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ctl.journal())
    (timeline,) = build_timelines(ctl.journal())
    assert timeline.attempts == 2


def test_slow_consumer_is_bounded_and_conflated() -> None:
    """A consumer ten times slower than the feed: bounded queue, counted drops, order kept."""
    delivered: list[Any] = []
    queue_peak = [0]
    dropping = threading.Event()
    holder: dict[str, StreamController] = {}

    def slow(quote: Any) -> None:
        delivered.append(quote)
        health = holder["ctl"].health()  # on the loop thread: a direct, consistent read
        queue_peak[0] = max(queue_peak[0], health.queued_messages)
        if health.dropped_messages:
            dropping.set()
        busy_until = time.perf_counter() + SLOW_CALLBACK_SECONDS
        while time.perf_counter() < busy_until:
            continue  # simulated work of a slow pricing model

    with SimulatorThread(SimConfig(rate=20_000, batch=100, seed=5)) as simulator:
        config = attrs.evolve(fast(), url=simulator.url("iex"), dispatch_queue_size=500)
        ctl = StreamController(
            CREDENTIALS, config, on_quote=slow, models="fast", symbols=["AAPL", "MSFT"]
        )
        holder["ctl"] = ctl
        ctl.start()
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        assert dropping.wait(WAIT)
        ctl.stop()
        health = ctl.health()
    assert health.dropped_messages > 0
    assert queue_peak[0] <= 500
    assert len(delivered) + health.dropped_messages <= health.messages["quotes"]
    for symbol in ("AAPL", "MSFT"):
        seqs = [q.seq for q in delivered if q.symbol == symbol]
        assert seqs == sorted(seqs)


def test_a_defect_in_a_session_fails_only_that_session(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception on the hot path fails that session as InternalError; it recovers."""
    from streamfsm._core.tracking import DataTracker

    original = DataTracker.observe
    calls = {"n": 0}

    def faulty(self: DataTracker, data: list[Any], now: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("defect on the hot path")
        original(self, data, now)

    monkeypatch.setattr(DataTracker, "observe", faulty)
    recorder = Recorder()
    ctl = make(sim, recorder)
    log = TransitionLog(ctl)
    ctl.start()
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    lost = log.matching(trigger="connection_lost")[0]
    assert lost.error == "InternalError"
    assert recorder.more_than(0)
    assert recorder.wait(lambda: len(recorder.errors) == 1)
    assert isinstance(recorder.errors[0], InternalError)
    assert "defect on the hot path" in str(recorder.errors[0])
    assert (ctl.health().last_error or "").startswith("InternalError")
    ctl.stop()
    assert_clean(ctl, sim)


def test_interpreter_exit_closes_the_session_cleanly(sim: SimulatorThread) -> None:
    """A program that exits without stop(): the atexit stop closes with 1000, not a reset."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        from streamfsm import Credentials, State, StreamConfig, StreamController
        ctl = StreamController(
            Credentials({DEMO_KEY_ID!r}, {DEMO_SECRET!r}),
            StreamConfig(url={sim.url("iex")!r}),
            on_quote=lambda quote: None,
            symbols=["AAPL"],
        )
        ctl.start()
        assert ctl.wait_for(State.SUBSCRIBED, 5)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    stats = sim.wait_for(lambda s: bool(s.connections) and not s.open_connections, WAIT)
    assert [c.close_code for c in stats.connections] == [1000]
