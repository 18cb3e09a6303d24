"""A 406 right after a takeover: PredecessorStillConnectedError and the core's cool-down for it."""

from __future__ import annotations

import math
import pickle

import pytest

from streamfsm._core.commands import SessionReady, StartRequested, SymbolsRequested
from streamfsm._core.machine import State
from streamfsm._core.policies import BreakerState
from streamfsm.errors import (
    SERVER_ERRORS,
    ConnectionLimitError,
    PredecessorStillConnectedError,
    ServerError,
    StreamError,
    server_error,
)
from tests.test_core import AAPL, CONFIG, Harness

WEEK = 7 * 24 * 3600.0
#: Enough refusals to have opened the breaker ten times over without the bypass.
REFUSALS = 20


def predecessor(retry_after: float) -> PredecessorStillConnectedError:
    """The error the cluster makes of a 406 inside the reap window."""
    return PredecessorStillConnectedError.after(ConnectionLimitError(), retry_after=retry_after)


def connecting() -> Harness:
    """A started core with one symbol, its first attempt open."""
    h = Harness()
    h.send(SymbolsRequested(add=AAPL))
    h.send(StartRequested())
    assert h.core.state is State.CONNECTING
    return h


# ---------------------------------------------------------------- the error


def test_it_is_a_transient_406_that_keeps_the_servers_message_and_the_cause() -> None:
    """The takeover form is a ConnectionLimitError with code 406, not fatal, the 406 as cause."""
    original = ConnectionLimitError("connection limit exceeded (account)")
    error = PredecessorStillConnectedError.after(original, retry_after=12)
    assert isinstance(error, ConnectionLimitError)
    assert isinstance(error, ServerError)
    assert error.code == error.server_code == 406
    assert not error.fatal
    assert error.retry_after == 12.0
    assert isinstance(error.retry_after, float)
    assert error.message == original.message
    assert error.__cause__ is original
    assert str(error).startswith(str(original))
    assert "12 s" in str(error)


def test_the_code_table_still_maps_406_to_the_plain_error() -> None:
    """Only the cluster knows a takeover happened: the protocol's 406 stays ConnectionLimitError."""
    assert SERVER_ERRORS[406].error_class is ConnectionLimitError
    assert type(server_error(406)) is ConnectionLimitError


def test_it_survives_pickling_with_its_retry_after() -> None:
    """A pickled copy (a journal, another process) keeps message, code and retry_after."""
    error = PredecessorStillConnectedError("limit", retry_after=3.5, code=406)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is PredecessorStillConnectedError
    assert (copy.message, copy.server_code, copy.retry_after) == ("limit", 406, 3.5)
    assert str(copy) == str(error)


@pytest.mark.parametrize(
    "retry_after", [0, -1.0, math.nan, math.inf, -math.inf, WEEK + 1, True, "5"], ids=repr
)
def test_a_retry_after_that_is_not_finite_seconds_up_to_a_week_is_refused(
    retry_after: object,
) -> None:
    """Zero, negative, NaN, infinite, over a week or not a number: ValueError naming the field."""
    with pytest.raises(ValueError, match="retry_after") as caught:
        PredecessorStillConnectedError(retry_after=retry_after)  # type: ignore[arg-type]
    assert not isinstance(caught.value, StreamError)


def test_a_week_is_the_longest_retry_after() -> None:
    """The bounds are inclusive at a week and open at zero."""
    assert PredecessorStillConnectedError(retry_after=WEEK).retry_after == WEEK
    assert PredecessorStillConnectedError(retry_after=1e-3).retry_after == 1e-3


# ---------------------------------------------------------------- the core


def test_twenty_refusals_never_open_the_breaker_and_each_waits_exactly_retry_after() -> None:
    """Each takeover 406 goes to backoff for its retry_after; no failure is ever counted."""
    h = connecting()
    for attempt in range(REFUSALS):
        retry_after = 0.25 + attempt * 3.0  # a different value each time, beyond the schedule
        h.fail(predecessor(retry_after))
        assert h.core.state is State.BACKOFF
        record = h.records[-1]
        assert (record.trigger, record.error, record.code) == (
            "attempt_failed",
            "PredecessorStillConnectedError",
            406,
        )
        assert record.delay == retry_after
        assert h.core.breaker.failures == 0
        assert h.core.breaker.state is BreakerState.CLOSED
        assert h.core.backoff.failures == 0  # the schedule did not advance either
        refused_at = h.clock.monotonic()
        h.elapse_to_next_timer()
        assert h.core.state is State.CONNECTING
        assert h.clock.monotonic() - refused_at == pytest.approx(retry_after)
    assert h.core.breaker.trips == 0
    assert not any(record.dst == State.CIRCUIT_OPEN.value for record in h.records)


def test_a_refusal_while_subscribed_backs_off_uncounted() -> None:
    """A takeover 406 that ends a session goes to backoff via connection_lost, not the breaker."""
    h = Harness()
    h.connect()
    h.fail(predecessor(7.0))
    assert h.core.state is State.BACKOFF
    assert (h.records[-1].trigger, h.records[-1].delay) == ("connection_lost", 7.0)
    assert h.core.breaker.failures == 0


def test_a_plain_406_still_waits_its_cooldown_and_opens_the_breaker() -> None:
    """Without the takeover form, 406 counts: the threshold (2) of plain 406s opens the breaker."""
    h = connecting()
    h.fail(ConnectionLimitError())
    assert h.core.state is State.BACKOFF
    assert h.records[-1].delay == CONFIG.connection_limit_cooldown
    assert h.core.breaker.failures == 1
    h.elapse_to_next_timer()
    h.fail(ConnectionLimitError())
    assert h.core.state is State.CIRCUIT_OPEN
    assert h.records[-1].delay == max(CONFIG.breaker.cooldown, CONFIG.connection_limit_cooldown)


def test_refusals_neither_add_to_nor_clear_failures_counted_before() -> None:
    """A counted failure, then takeover 406s, then one more counted failure still trips at 2."""
    h = connecting()
    h.fail(ConnectionLimitError())
    assert h.core.breaker.failures == 1
    for _ in range(5):
        h.elapse_to_next_timer()
        h.fail(predecessor(2.0))
        assert h.core.state is State.BACKOFF
        assert h.core.breaker.failures == 1
    h.elapse_to_next_timer()
    h.fail(ConnectionLimitError())
    assert h.core.state is State.CIRCUIT_OPEN


def test_a_failed_probe_by_refusal_keeps_the_breaker_half_open() -> None:
    """A takeover 406 on the half-open probe backs off; the next counted failure re-opens."""
    h = connecting()
    h.fail(ConnectionLimitError())
    h.elapse_to_next_timer()
    h.fail(ConnectionLimitError())
    assert h.core.state is State.CIRCUIT_OPEN
    h.elapse_to_next_timer()
    assert h.core.breaker.state is BreakerState.HALF_OPEN
    h.fail(predecessor(4.0))
    assert h.core.state is State.BACKOFF
    assert h.core.breaker.state is BreakerState.HALF_OPEN
    h.elapse_to_next_timer()
    h.fail(ConnectionLimitError())
    assert h.core.state is State.CIRCUIT_OPEN
    assert h.core.breaker.trips == 2


def test_a_healthy_session_after_refusals_resets_as_usual() -> None:
    """Success after takeover 406s: breaker and backoff forgotten once the session is healthy."""
    h = connecting()
    h.fail(ConnectionLimitError())
    for _ in range(3):
        h.elapse_to_next_timer()
        h.fail(predecessor(1.5))
    h.elapse_to_next_timer()
    assert (h.core.breaker.failures, h.core.backoff.failures) == (1, 1)
    h.send(SessionReady(h.session.epoch, AAPL))
    assert h.core.state is State.SUBSCRIBED
    h.clock.advance(CONFIG.healthy_after)
    assert h.core.session_healthy
    assert (h.core.breaker.failures, h.core.backoff.failures) == (0, 0)
    h.fail(ConnectionLimitError())
    assert h.core.state is State.BACKOFF  # a healthy session's loss is not counted either
