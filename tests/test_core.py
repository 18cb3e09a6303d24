"""The controller core, narrated: input values in, one behaviour per test, fake clock and port."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from streamfsm._core.commands import (
    ArmTimer,
    ChangeAcknowledged,
    ChangeRejected,
    Input,
    OpenSession,
    RestartRequested,
    SessionEnded,
    SessionReady,
    StartRequested,
    StopRequested,
    SymbolsRequested,
    Timer,
    TimerFired,
)
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.runner import Runner
from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm.config import BackoffPolicy, BreakerPolicy, StalePolicy, StreamConfig
from streamfsm.errors import (
    AuthenticationError,
    ChangeIgnoredError,
    ConnectionClosedError,
    ConnectionLimitError,
    InternalError,
    InvalidTransitionError,
    StaleConnectionError,
    StreamError,
    SymbolLimitError,
    TransportError,
)
from streamfsm.testing import FakeClock, FakeSessionPort

AAPL = Subscription(quotes={"AAPL"})
CONFIG = StreamConfig(
    backoff=BackoffPolicy(initial=1.0, maximum=8.0, jitter="equal"),
    breaker=BreakerPolicy(failure_threshold=2, cooldown=20.0),
    stale=StalePolicy(quotes=5.0),
    healthy_after=3.0,
    connection_limit_cooldown=30.0,
)


class Harness:
    """A core wired to a runner, a fake clock and a fake port."""

    def __init__(self, config: StreamConfig = CONFIG) -> None:
        self.clock = FakeClock()
        self.records: list[TransitionRecord] = []
        self.core = ConnectionCore(
            config,
            clock=self.clock.monotonic,
            wall=lambda: datetime(2026, 1, 2, tzinfo=UTC),
            rng=random.Random(4),
            correlation_id="t",
            on_record=self.records.append,
        )
        self.port = FakeSessionPort()
        self.runner = Runner(self.core, self.clock, self.port)

    def send(self, event: Input) -> None:
        """Hand one input value to the core through the runner."""
        self.runner.send(event)

    @property
    def session(self) -> OpenSession:
        (session,) = self.port.open.values()
        return session

    def connect(self, subscription: Subscription = AAPL) -> None:
        self.send(SymbolsRequested(add=subscription))
        self.send(StartRequested())
        epoch = self.session.epoch
        self.send(SessionReady(epoch, subscription))
        assert self.core.state is State.SUBSCRIBED

    def fail(self, error: StreamError) -> None:
        epoch = self.session.epoch
        self.send(SessionEnded(epoch, error))

    def elapse_to_next_timer(self) -> None:
        deadline = self.clock.next_deadline()
        assert deadline is not None
        self.clock.advance(deadline - self.clock.monotonic())


def test_start_without_symbols_waits_in_idle_without_socket_or_timer() -> None:
    """start() with nothing to subscribe stays idle and arms nothing; a symbol then connects."""
    h = Harness()
    h.send(StartRequested())
    assert h.core.state is State.IDLE
    assert h.port.opened == []
    assert h.clock.pending() == 0
    h.send(SymbolsRequested(add=AAPL))
    assert h.core.state is State.CONNECTING
    assert h.session.subscription == AAPL


def test_symbols_before_start_do_not_connect() -> None:
    """A subscription recorded before start() waits for it."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    assert h.core.state is State.IDLE
    assert h.port.opened == []


def test_late_facts_from_an_old_connection_are_ignored() -> None:
    """A session_ended for a previous epoch cannot move the machine."""
    h = Harness()
    h.connect()
    old = h.session.epoch
    h.send(RestartRequested())
    assert h.session.epoch == old + 1
    h.send(SessionEnded(old, ConnectionClosedError(None)))
    assert h.core.state is State.CONNECTING


def test_connection_limit_waits_its_own_cooldown_and_counts_for_the_breaker() -> None:
    """A 406 backs off for connection_limit_cooldown, not the short jittered delay."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    h.fail(ConnectionLimitError())
    assert h.core.state is State.BACKOFF
    assert h.records[-1].delay == CONFIG.connection_limit_cooldown
    assert h.core.breaker.failures == 1


def test_breaker_opens_after_threshold_and_probes_once_after_cooldown() -> None:
    """Two failures open the breaker; after its cool-down exactly one probe goes out."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    h.fail(TransportError("refused"))
    h.elapse_to_next_timer()
    h.fail(TransportError("refused"))
    assert h.core.state is State.CIRCUIT_OPEN
    opened = len(h.port.opened)
    h.clock.advance(CONFIG.breaker.cooldown - 0.001)
    assert len(h.port.opened) == opened
    h.clock.advance(0.001)
    assert h.core.state is State.CONNECTING
    assert len(h.port.opened) == opened + 1
    h.fail(TransportError("refused"))
    assert h.core.state is State.CIRCUIT_OPEN
    assert h.records[-1].delay == CONFIG.breaker.cooldown * CONFIG.breaker.cooldown_multiplier


def test_restart_does_not_bypass_an_open_breaker_unless_forced() -> None:
    """restart() in circuit_open stays put; restart(force=True) sends one probe."""
    h = Harness(StreamConfig(breaker=BreakerPolicy(failure_threshold=1)))
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    h.fail(TransportError("refused"))
    assert h.core.state is State.CIRCUIT_OPEN
    h.send(RestartRequested())
    assert h.core.state is State.CIRCUIT_OPEN
    h.send(RestartRequested(force=True))
    assert h.core.state is State.CONNECTING


def test_a_session_that_drops_before_healthy_counts_as_failed() -> None:
    """Accept-then-drop is a failure; staying subscribed past healthy_after resets the counters."""
    h = Harness()
    h.connect()
    h.fail(ConnectionClosedError(1011))
    assert h.core.breaker.failures == 1
    h.elapse_to_next_timer()
    epoch = h.session.epoch
    h.send(SessionReady(epoch, AAPL))
    h.clock.advance(CONFIG.healthy_after)
    assert h.core.breaker.failures == 0
    assert h.core.backoff.failures == 0
    h.fail(ConnectionClosedError(1011))
    assert h.core.state is State.BACKOFF
    assert h.core.breaker.failures == 0


def test_fatal_error_stops_and_reports_once() -> None:
    """402 goes to stopped with the typed error, reported to the user, nothing armed."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    h.fail(AuthenticationError())
    assert h.core.state is State.STOPPED
    assert isinstance(h.core.last_error, AuthenticationError)
    assert [type(e) for e in h.port.errors] == [AuthenticationError]
    assert h.clock.pending() == 0
    assert h.port.open == {}


def test_stale_watchdog_fires_at_threshold_and_data_postpones_it() -> None:
    """No quotes for the threshold is data_stale; a quote in between re-arms it."""
    h = Harness()
    h.connect()
    h.clock.advance(3.0)
    h.core.activity.last_seen["quotes"] = h.clock.monotonic()
    h.core.activity.received = True
    h.clock.advance(2.5)
    assert h.core.state is State.SUBSCRIBED
    h.clock.advance(2.5)
    assert h.core.state is State.BACKOFF
    assert isinstance(h.core.last_error, StaleConnectionError)


def test_a_newly_added_channel_is_watched_from_when_it_was_added() -> None:
    """Subscribing quotes late in a trades-only session does not make it stale at once."""
    h = Harness()
    h.connect(Subscription(trades={"AAPL"}))
    h.clock.advance(100.0)
    h.send(SymbolsRequested(add=AAPL))
    epoch = h.session.epoch
    h.send(ChangeAcknowledged(epoch, Subscription(trades={"AAPL"}, quotes={"AAPL"})))
    h.clock.advance(1.0)
    assert h.core.state is State.SUBSCRIBED
    h.clock.advance((CONFIG.stale.quotes or 0) - 1.0)
    assert h.core.state is State.BACKOFF
    assert isinstance(h.core.last_error, StaleConnectionError)


def test_one_change_in_flight_and_the_rest_follows_the_ack() -> None:
    """While subscribed only differences are sent, one at a time, until in sync."""
    h = Harness()
    h.connect()
    h.send(SymbolsRequested(add=Subscription(quotes={"MSFT"})))
    h.send(SymbolsRequested(remove=AAPL))
    assert [(c.action, c.symbols) for c in h.port.changes] == [
        ("subscribe", Subscription(quotes={"MSFT"}))
    ]
    epoch = h.session.epoch
    h.send(ChangeAcknowledged(epoch, Subscription(quotes={"AAPL", "MSFT"})))
    assert [(c.action, c.symbols) for c in h.port.changes][1] == ("unsubscribe", AAPL)
    h.send(ChangeAcknowledged(epoch, Subscription(quotes={"MSFT"})))
    assert h.core.book.in_sync
    assert h.core.book.confirmed == Subscription(quotes={"MSFT"})


def test_symbol_limit_rolls_back_only_the_refused_symbols() -> None:
    """A 405 removes the refused symbols from the wish and keeps the session."""
    h = Harness()
    h.connect()
    h.send(SymbolsRequested(add=Subscription(quotes={"MSFT", "SPY"})))
    epoch = h.session.epoch
    h.send(ChangeRejected(epoch, SymbolLimitError()))
    assert h.core.state is State.SUBSCRIBED
    assert h.core.book.desired == AAPL
    assert h.core.book.in_sync
    assert isinstance(h.port.errors[-1], SymbolLimitError)


def test_removing_every_symbol_goes_idle_and_closes_the_session() -> None:
    """Nothing left to stream: the session closes and the controller waits in idle."""
    h = Harness()
    h.connect()
    h.send(SymbolsRequested(remove=AAPL))
    assert h.core.state is State.IDLE
    assert h.port.open == {}
    assert h.clock.pending() == 0


def test_invalid_commands_raise_and_change_nothing() -> None:
    """start while running and restart while stopped raise a typed error; state unchanged."""
    h = Harness()
    h.connect()
    records = len(h.records)
    with pytest.raises(InvalidTransitionError) as caught:
        h.send(StartRequested())
    assert caught.value.state == "subscribed"
    assert h.core.state is State.SUBSCRIBED
    assert len(h.records) == records
    h.send(StopRequested())
    with pytest.raises(InvalidTransitionError):
        h.send(RestartRequested())
    assert h.core.state is State.STOPPED


def test_every_transition_is_recorded_once_with_context() -> None:
    """Journal records chain, count up, and carry the error class and Alpaca code."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    h.fail(ConnectionLimitError())
    record = h.records[-1]
    assert (record.trigger, record.src, record.dst) == ("attempt_failed", "connecting", "backoff")
    assert record.error == "ConnectionLimitError"
    assert record.code == 406
    assert record.epoch == 1
    assert [r.seq for r in h.records] == list(range(1, len(h.records) + 1))


def test_timers_are_tokens_so_a_stale_expiry_is_ignored() -> None:
    """An expiry whose token is not the armed one does nothing."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    h.fail(TransportError("refused"))
    armed = [c for c in h.core.drain() if isinstance(c, ArmTimer)]
    assert armed == []
    h.send(TimerFired(Timer.BACKOFF, token=-1))
    assert h.core.state is State.BACKOFF
    assert Subscription() == EMPTY


def test_an_ack_that_ignores_symbols_is_a_refusal_not_a_resend_loop() -> None:
    """Symbols an ack leaves out are dropped from the wish and reported, and never resent."""
    h = Harness()
    h.connect()
    h.send(SymbolsRequested(add=Subscription(quotes={"MSFT", "ZZZZ"})))
    epoch = h.session.epoch
    h.send(ChangeAcknowledged(epoch, Subscription(quotes={"AAPL", "MSFT"})))
    assert h.core.book.desired == Subscription(quotes={"AAPL", "MSFT"})
    assert h.core.book.in_sync
    assert len(h.port.changes) == 1
    error = h.port.errors[-1]
    assert isinstance(error, ChangeIgnoredError)
    assert error.symbols == [("quotes", "ZZZZ")]


def test_the_initial_subscription_is_the_change_in_flight_of_a_new_session() -> None:
    """A handshake ack missing a symbol is reported too, and the session is subscribed."""
    h = Harness()
    h.send(SymbolsRequested(add=Subscription(quotes={"AAPL", "ZZZZ"})))
    h.send(StartRequested())
    epoch = h.session.epoch
    h.send(SessionReady(epoch, AAPL))
    assert h.core.state is State.SUBSCRIBED
    assert h.core.book.desired == AAPL
    assert h.port.changes == []
    assert isinstance(h.port.errors[-1], ChangeIgnoredError)


def test_a_defect_is_reported_once_per_breaker_cycle() -> None:
    """The same InternalError reaches on_error once until the breaker opens, then once again."""
    h = Harness()
    h.connect()
    defect = InternalError("session failed: RuntimeError: boom")
    h.fail(defect)
    assert h.port.errors == [defect]
    assert h.core.last_error is defect
    h.elapse_to_next_timer()
    h.fail(InternalError("session failed: RuntimeError: boom"))
    assert h.core.state is State.CIRCUIT_OPEN
    assert len(h.port.errors) == 1
    h.elapse_to_next_timer()
    h.fail(InternalError("session failed: RuntimeError: boom"))
    assert len(h.port.errors) == 2
