"""Hypothesis drives the controller core through arbitrary server behaviour and user commands.

The core runs under the real :class:`~streamfsm._core.runner.Runner` with a fake clock and a fake
session port; rules play the server (accept, reject with each code, drop, go mute, ack or refuse
changes), the user (start, stop, restart, subscribe, unsubscribe) and time. The ten invariants of
the design are checked after every step, against the transition table as the reference model.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streamfsm._aio.dispatch import Delivery, Dispatcher
from streamfsm._core.commands import (
    ChangeAcknowledged,
    ChangeRejected,
    Input,
    RestartRequested,
    SendChange,
    SessionEnded,
    SessionReady,
    StartRequested,
    StopRequested,
    SymbolsRequested,
)
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import TRANSITIONS, State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.runner import Runner
from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm.audit.verify import verify_records
from streamfsm.config import BackoffPolicy, BreakerPolicy, StalePolicy, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    SERVER_ERRORS,
    ConnectionClosedError,
    ConnectionLimitError,
    InvalidTransitionError,
    PredecessorStillConnectedError,
    StreamError,
    SymbolLimitError,
    TransportError,
    server_error,
)
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote
from streamfsm.testing import FakeClock, FakeSessionPort

SECRET = "hypothesis-secret-0123456789"
CREDENTIALS = Credentials("PKHYPOTHESIS", SECRET)
UNIVERSE = ("AAPL", "MSFT", "SPY", "TSLA")
CONFIG = StreamConfig(
    backoff=BackoffPolicy(initial=1.0, maximum=8.0),
    breaker=BreakerPolicy(failure_threshold=3, cooldown=20.0, max_cooldown=80.0),
    stale=StalePolicy(quotes=5.0, trades=None, bars=None, max_threshold=40.0),
    healthy_after=4.0,
    connection_limit_cooldown=30.0,
)
AUTOMATIC = {"backoff_elapsed", "cooldown_elapsed"}
QUIET = {State.IDLE, State.BACKOFF, State.CIRCUIT_OPEN, State.STOPPED}
TRANSIENT_CODES = sorted(code for code, spec in SERVER_ERRORS.items() if not spec.fatal)
FATAL_CODES = sorted(code for code, spec in SERVER_ERRORS.items() if spec.fatal)
#: The cool-downs a takeover 406 asks for: from below the backoff's initial delay to beyond the
#: breaker's longest cool-down. The shortest one sets how many such attempts fit in a window.
MIN_RETRY_AFTER = 0.5
retry_afters = st.floats(min_value=MIN_RETRY_AFTER, max_value=120.0)

symbols = st.frozensets(st.sampled_from(UNIVERSE), max_size=3)
channel_sets = st.builds(Subscription, trades=symbols, quotes=symbols, bars=symbols)


def is_edge(record: TransitionRecord) -> bool:
    """The reference model: a record is legal iff some row of the table allows it."""
    for row in TRANSITIONS:
        sources = {s.value for s in row.sources}
        dest = row.dest.value if row.dest is not None else record.src
        if row.trigger == record.trigger and record.src in sources and record.dst == dest:
            return True
    return False


def most_in_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` (ascending) within any closed window of ``window`` s."""
    most = start = 0
    for end, moment in enumerate(times):
        while times[start] < moment - window:
            start += 1
        most = max(most, end - start + 1)
    return most


class ControllerMachine(RuleBasedStateMachine):
    """The controller core under arbitrary sequences of events."""

    @initialize(seed=st.integers(0, 2**16))
    def build(self, seed: int) -> None:
        self.clock = FakeClock()
        self.records: list[TransitionRecord] = []
        self.core = ConnectionCore(
            CONFIG,
            clock=self.clock.monotonic,
            wall=lambda: datetime(2026, 1, 2, tzinfo=UTC),
            rng=random.Random(seed),
            correlation_id="hyp",
            on_record=self.records.append,
        )
        self.port = FakeSessionPort()
        self.runner = Runner(self.core, self.clock, self.port)
        self.server_set = EMPTY
        self.pending: list[SendChange] = []
        self.attempt_times: list[float] = []
        self.attempts_after_takeover_406: list[float] = []
        self.retry_after_of: dict[int, float] = {}
        self.waits: list[tuple[str, float, float]] = []
        self.fatal_stop = False
        self.entered_wait: tuple[State, float, float, bool] | None = None
        self.loop = asyncio.new_event_loop()
        self.callback_calls = 0
        self.dispatcher = Dispatcher(
            {Quote: Delivery("on_quote", self._raising_callback)},
            bound=100,
            overflow=CONFIG.overflow,
            log=StreamLogger(test="stateful"),
        )
        self.seen_records = 0

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()

    # ------------------------------------------------------------ helpers

    def _raising_callback(self, _message: Any) -> None:
        self.callback_calls += 1
        raise RuntimeError("user bug")

    def _submit(self, event: Input) -> None:
        self.runner.send(event)
        self._observe()

    def _observe(self) -> None:
        """Bookkeeping after each step: attempts, waits, pending server work."""
        for record in self.records[self.seen_records :]:
            if record.dst in ("backoff", "circuit_open") and record.src != record.dst:
                assert record.delay is not None
                takeover = record.error == PredecessorStillConnectedError.__name__
                self.entered_wait = (State(record.dst), record.monotonic, record.delay, takeover)
            if record.trigger in AUTOMATIC:
                assert self.entered_wait is not None
                _, since, delay, takeover = self.entered_wait
                self.waits.append((record.trigger, record.monotonic - since, delay))
                if takeover:
                    self.attempts_after_takeover_406.append(record.monotonic)
                else:
                    self.attempt_times.append(record.monotonic)
        self.seen_records = len(self.records)
        event(f"state={self.core.state.value}")
        self.pending.extend(self.port.changes)
        self.port.changes.clear()

    def _session(self) -> int:
        (epoch,) = self.port.open
        return epoch

    # ------------------------------------------------------------ the user

    @rule()
    def start(self) -> None:
        """The user starts the controller."""
        allowed = self.core.state in (State.IDLE, State.STOPPED)
        try:
            self._submit(StartRequested())
        except InvalidTransitionError:
            assert not allowed
        else:
            assert allowed
            self.fatal_stop = False

    @rule()
    def stop(self) -> None:
        """The user stops the controller from whatever state it is in."""
        self._submit(StopRequested())
        assert self.core.state is State.STOPPED

    @rule(force=st.booleans())
    def restart(self, force: bool) -> None:
        """The user restarts, possibly forcing past an open breaker."""
        before = self.core.state
        try:
            self._submit(RestartRequested(force=force))
        except InvalidTransitionError:
            assert before is State.STOPPED
            return
        if before is State.CIRCUIT_OPEN and not force:
            assert self.core.state is State.CIRCUIT_OPEN

    @rule(change=channel_sets)
    def subscribe(self, change: Subscription) -> None:
        """The user adds symbols."""
        self._submit(SymbolsRequested(add=change))

    @rule(change=channel_sets)
    def unsubscribe(self, change: Subscription) -> None:
        """The user removes symbols."""
        self._submit(SymbolsRequested(remove=change))

    # ------------------------------------------------------------ the server

    @precondition(lambda self: self.core.state is State.CONNECTING)
    @rule()
    def server_accepts(self) -> None:
        """The server authenticates and acknowledges the requested set."""
        epoch = self._session()
        self.server_set = self.port.open[epoch].subscription
        self.pending.clear()
        self._submit(SessionReady(epoch, self.server_set))

    @precondition(lambda self: self.core.state is State.CONNECTING)
    @rule()
    def server_refuses_initial_symbols(self) -> None:
        """The server authenticates but refuses the initial subscription (405)."""
        epoch = self._session()
        self.server_set = EMPTY
        self.pending.clear()
        self._submit(SessionReady(epoch, EMPTY, SymbolLimitError()))

    @precondition(lambda self: self.core.state is State.CONNECTING)
    @rule(code=st.sampled_from(TRANSIENT_CODES + FATAL_CODES))
    def server_rejects(self, code: int) -> None:
        """The attempt fails with an Alpaca error code."""
        error = server_error(code)
        self._submit(SessionEnded(self._session(), error))
        if error.fatal:
            assert self.core.state is State.STOPPED
            assert type(self.core.last_error) is type(error)
            self.fatal_stop = True
        else:
            assert self.core.state in (State.BACKOFF, State.CIRCUIT_OPEN)

    @precondition(lambda self: self.core.state in (State.CONNECTING, State.SUBSCRIBED))
    @rule(retry_after=retry_afters)
    def predecessor_still_connected(self, retry_after: float) -> None:
        """A 406 after a takeover: backoff for retry_after, the breaker's count untouched."""
        plain = ConnectionLimitError()
        error = PredecessorStillConnectedError.after(plain, retry_after=retry_after)
        failures = self.core.breaker.failures
        self._submit(SessionEnded(self._session(), error))
        assert self.core.state is State.BACKOFF
        assert self.core.breaker.failures == failures
        self.retry_after_of[self.records[-1].seq] = retry_after

    @precondition(lambda self: self.core.state in (State.CONNECTING, State.SUBSCRIBED))
    @rule(clean=st.booleans())
    def connection_drops(self, clean: bool) -> None:
        """The socket closes (a close frame, or a reset with none) or the connect fails."""
        error: StreamError = ConnectionClosedError(1011 if clean else None)
        if self.core.state is State.CONNECTING and not clean:
            error = TransportError("connection refused")
        self._submit(SessionEnded(self._session(), error))
        assert self.core.state in (State.BACKOFF, State.CIRCUIT_OPEN)

    @precondition(lambda self: self.core.state is State.SUBSCRIBED and bool(self.pending))
    @rule(accept=st.booleans())
    def server_answers_change(self, accept: bool) -> None:
        """The server acknowledges the change in flight, or refuses it (405)."""
        change = self.pending.pop(0)
        epoch = self._session()
        if accept or change.action == "unsubscribe":
            if change.action == "subscribe":
                self.server_set = self.server_set | change.symbols
            else:
                self.server_set = self.server_set - change.symbols
            self._submit(ChangeAcknowledged(epoch, self.server_set))
        else:
            self._submit(ChangeRejected(epoch, SymbolLimitError()))
        assert self.core.state is State.SUBSCRIBED

    @precondition(lambda self: self.core.state is State.SUBSCRIBED)
    @rule(channel=st.sampled_from(["quotes", "trades", "bars"]))
    def market_data_arrives(self, channel: str) -> None:
        """A market-data frame arrives (what the hot path records)."""
        self.core.activity.last_seen[channel] = self.clock.monotonic()
        self.core.activity.received = True

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 30.0, 90.0]))
    def time_passes(self, seconds: float) -> None:
        """Time passes; due timers fire (backoff, cool-down, healthy, stale watchdog)."""
        self.clock.advance(seconds)
        self._observe()

    @precondition(lambda self: self.clock.next_deadline() is not None)
    @rule()
    def next_timer_fires(self) -> None:
        """Time jumps to the next armed deadline, as a mock clock's autojump would."""
        deadline = self.clock.next_deadline()
        assert deadline is not None
        self.clock.advance(deadline - self.clock.monotonic())
        self._observe()

    @rule()
    def a_callback_raises(self) -> None:
        """A user callback raises on a quote: counted, and the state does not change."""
        before = (self.core.state, len(self.records))
        quote = Quote(
            symbol="AAPL",
            timestamp=datetime(2026, 1, 2, tzinfo=UTC),
            bid_price=1.0,
            bid_size=1.0,
            ask_price=1.1,
            ask_size=1.0,
        )
        errors_before = self.dispatcher.callback_errors

        async def deliver() -> None:
            consumer = asyncio.ensure_future(self.dispatcher.run())
            self.dispatcher.put([quote, quote], self.clock.monotonic())
            await self.dispatcher.wait_idle()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

        self.loop.run_until_complete(deliver())
        assert self.dispatcher.callback_errors == errors_before + 2
        assert (self.core.state, len(self.records)) == before

    # ------------------------------------------------------------ the ten invariants

    @invariant()
    def single_state_and_table_edge(self) -> None:
        """1. Exactly one state, and every recorded change is an edge of the table."""
        assert isinstance(self.core.state, State)
        for record in self.records:
            assert is_edge(record), record
        assert verify_records(self.records, linked=False) == []
        for before, after in zip(self.records, self.records[1:], strict=False):
            assert before.dst == after.src
            assert after.seq == before.seq + 1

    @invariant()
    def connected_iff_subscribed(self) -> None:
        """2. is_connected() is true exactly in subscribed."""
        assert self.core.is_connected() == (self.core.state is State.SUBSCRIBED)

    @invariant()
    def at_most_one_transport(self) -> None:
        """3. At most one session open; none in idle, backoff, circuit_open, stopped."""
        assert self.port.most_open <= 1
        if self.core.state in QUIET:
            assert self.port.open == {}
        else:
            assert len(self.port.open) == 1

    @invariant()
    def no_reconnect_storm(self) -> None:
        """4. Automatic attempts in any cool-down window stay under the policy's bound.

        Attempts that end a takeover 406's wait are bounded apart: the breaker does not see
        them, so they add nothing to the breaker's bound, and each waited its retry_after, so
        at most ``window / MIN_RETRY_AFTER + 1`` of them fit in a window.
        """
        window = CONFIG.breaker.cooldown
        threshold = CONFIG.breaker.failure_threshold
        bound = threshold * (1 + math.ceil(window / CONFIG.healthy_after)) + 1
        for trigger, waited, delay in self.waits:
            assert waited >= delay - 1e-9, "a timer fired early"
            if trigger == "cooldown_elapsed":
                assert waited >= CONFIG.breaker.cooldown - 1e-9, "breaker probed before cool-down"
        assert most_in_window(self.attempt_times, window) <= bound
        takeover_bound = math.floor(window / MIN_RETRY_AFTER) + 1
        assert most_in_window(self.attempts_after_takeover_406, window) <= takeover_bound

    @invariant()
    def acknowledged_equals_desired(self) -> None:
        """5. Subscribed with nothing in flight: acknowledged == desired == the server's set."""
        if self.core.state is State.SUBSCRIBED and not self.core.change_in_flight:
            assert self.core.book.confirmed == self.core.book.desired == self.server_set

    @invariant()
    def stopped_leaves_nothing(self) -> None:
        """6. Stopped: no session, no timer armed in the runner or on the clock."""
        if self.core.state is State.STOPPED:
            assert self.port.open == {}
            assert self.runner.armed == frozenset()
            assert self.clock.pending() == 0

    @invariant()
    def callback_errors_never_change_state(self) -> None:
        """7. Callback failures are counted and never appear in the journal."""
        assert self.dispatcher.callback_errors == self.callback_calls
        assert all(record.error != "RuntimeError" for record in self.records)

    @invariant()
    def fatal_errors_stop_for_good(self) -> None:
        """8. After a fatal error: stopped, typed error kept, no attempt until the user starts."""
        if self.fatal_stop:
            assert self.core.state is State.STOPPED
            assert self.core.last_error is not None
            assert self.core.last_error.fatal

    @invariant()
    def backoff_delays_within_bounds(self) -> None:
        """9. Each backoff delay lies in the policy's bounds (406 waits its own cool-down).

        A takeover 406 goes to backoff, never to circuit_open, for exactly its retry_after.
        """
        for record in self.records:
            if record.error == PredecessorStillConnectedError.__name__:
                assert record.dst == "backoff"
                assert record.delay == self.retry_after_of[record.seq]
            elif record.dst == "backoff" and record.src != "backoff":
                assert record.delay is not None
                if record.code == 406:
                    assert record.delay == CONFIG.connection_limit_cooldown
                else:
                    assert 0 <= record.delay <= CONFIG.backoff.maximum

    @invariant()
    def secret_never_leaks(self) -> None:
        """10. The secret is in no journal record, command, error or repr."""
        texts = [record.to_json() for record in self.records[-5:]]
        texts += [repr(command) for command in self.port.opened[-3:]]
        texts += [repr(error) for error in self.port.errors[-3:]]
        texts += [repr(CREDENTIALS), str(CREDENTIALS), repr(self.core.last_error)]
        assert not any(SECRET in text for text in texts)


TestController = ControllerMachine.TestCase
