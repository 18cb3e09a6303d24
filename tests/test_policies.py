"""Backoff, breaker and watchdog: pure functions of their inputs."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streamfsm._core.policies import Backoff, Breaker, BreakerState, StaleWatchdog
from streamfsm._core.subscriptions import Subscription
from streamfsm.config import BackoffPolicy, BreakerPolicy, Jitter, StalePolicy

policies = st.builds(
    BackoffPolicy,
    initial=st.floats(0.01, 5),
    multiplier=st.floats(1, 4),
    maximum=st.floats(5, 120),
    jitter=st.sampled_from(list(Jitter)),
)


@given(policy=policies, seed=st.integers(0, 2**32), failures=st.integers(1, 200))
def test_backoff_delays_lie_within_bounds(policy: BackoffPolicy, seed: int, failures: int) -> None:
    """Every delay lies within the policy's bounds for its attempt and never exceeds the maximum."""
    backoff = Backoff(policy, random.Random(seed))
    for n in range(1, failures + 1):
        delay = backoff.next_delay()
        low, high = backoff.bounds(n)
        assert low <= delay <= high <= policy.maximum


def test_full_jitter_first_delay_is_below_initial() -> None:
    """With full jitter the first retry waits at most the initial delay."""
    backoff = Backoff(BackoffPolicy(initial=0.5), random.Random(7))
    assert 0 <= backoff.next_delay() <= 0.5


def test_backoff_reset_starts_over() -> None:
    """reset() forgets the failures, so the next ceiling is the initial one again."""
    backoff = Backoff(BackoffPolicy(initial=1, maximum=30, jitter="equal"), random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_ceiling_does_not_overflow_on_long_outages() -> None:
    """A week of failures still yields the maximum, not an overflow."""
    backoff = Backoff(BackoffPolicy(), random.Random(0))
    assert backoff.ceiling(10**6) == BackoffPolicy().maximum


def test_breaker_trips_at_threshold_then_probes_once() -> None:
    """N consecutive failures open the breaker; a failed probe reopens it, cooling down longer."""
    breaker = Breaker(BreakerPolicy(failure_threshold=3, cooldown=10, max_cooldown=25))
    for _ in range(2):
        assert not breaker.trips_on_failure()
        breaker.record_failure()
    assert breaker.trips_on_failure()
    breaker.record_failure()
    assert breaker.open() == 10
    breaker.probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.trips_on_failure()
    assert breaker.open() == 20
    breaker.probe()
    assert breaker.open() == 25
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.cooldown == 10


def test_watchdog_watches_only_subscribed_channels_with_thresholds() -> None:
    """Channels without symbols or without a threshold are never stale."""
    watchdog = StaleWatchdog(StalePolicy(quotes=5, trades=None))
    only_trades = Subscription(trades={"AAPL"})
    assert watchdog.deadline(0, {}, only_trades) is None
    both = Subscription(trades={"AAPL"}, quotes={"AAPL"})
    assert watchdog.deadline(0, {}, both) == 5
    assert watchdog.check(4.9, 0, {}, both) is None
    error = watchdog.check(5, 0, {}, both)
    assert error is not None
    assert error.channel == "quotes"


def test_watchdog_counts_from_the_last_message() -> None:
    """Data resets the silence clock of its channel."""
    watchdog = StaleWatchdog(StalePolicy(quotes=5))
    sub = Subscription(quotes={"AAPL"})
    assert watchdog.deadline(0, {"quotes": 3}, sub) == 8
    assert watchdog.check(7, 0, {"quotes": 3}, sub) is None


def test_quiet_market_escalates_thresholds_and_data_resets_them() -> None:
    """A session that never saw data doubles the threshold, up to the maximum; data resets it."""
    watchdog = StaleWatchdog(StalePolicy(quotes=10, max_threshold=35))
    sub = Subscription(quotes={"AAPL"})
    watchdog.went_stale(received_any=False)
    assert watchdog.thresholds(sub) == {"quotes": 20}
    watchdog.went_stale(received_any=False)
    watchdog.went_stale(received_any=False)
    assert watchdog.thresholds(sub) == {"quotes": 35}
    watchdog.went_stale(received_any=True)
    assert watchdog.thresholds(sub) == {"quotes": 35}
    watchdog.data_seen()
    assert watchdog.thresholds(sub) == {"quotes": 10}
