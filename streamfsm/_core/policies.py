"""Pure retry policies: jittered backoff, the circuit breaker and the stale watchdog.

Nothing here reads a clock, sleeps or does I/O: times come in as arguments and randomness from
an injected ``random.Random``, so the same inputs always give the same decisions.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping

import attrs

from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm.config import BackoffPolicy, BreakerPolicy, Jitter, StalePolicy
from streamfsm.errors import StaleConnectionError

__all__ = ["Backoff", "Breaker", "BreakerState", "ChannelActivity", "StaleWatchdog"]

#: Decorrelated jitter draws up to this multiple of the previous delay (Brooker's "sleep * 3").
DECORRELATED_SPREAD = 3.0
#: Exponents beyond this are capped: 3**64 dwarfs any sane maximum delay.
_MAX_EXPONENT = 64


class Backoff:
    """Consecutive-failure counter and the delay before the next attempt.

    ``next_delay()`` counts one failure and returns a delay within ``bounds(failures)``;
    ``reset()`` is called only after a healthy session.
    """

    def __init__(self, policy: BackoffPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        self.failures = 0
        self._previous = policy.initial

    def ceiling(self, failures: int) -> float:
        """The exponential ceiling for the ``failures``-th consecutive failure (>= 1)."""
        policy = self.policy
        exponent = max(0, failures - 1)
        # Compare in log space so a long outage cannot overflow the float.
        headroom = math.log(policy.maximum / policy.initial)
        if policy.multiplier > 1 and exponent * math.log(policy.multiplier) > headroom:
            return policy.maximum
        return min(policy.maximum, policy.initial * policy.multiplier**exponent)

    def bounds(self, failures: int) -> tuple[float, float]:
        """The closed interval the ``failures``-th delay is drawn from."""
        ceiling = self.ceiling(failures)
        match self.policy.jitter:
            case Jitter.FULL:
                return 0.0, ceiling
            case Jitter.EQUAL:
                return ceiling / 2, ceiling
            case Jitter.DECORRELATED:
                spread = DECORRELATED_SPREAD ** min(failures - 1, _MAX_EXPONENT)
                upper = min(self.policy.maximum, self.policy.initial * spread)
                return min(self.policy.initial, upper), upper

    def next_delay(self) -> float:
        """Count a failure and return the delay before the next attempt."""
        self.failures += 1
        ceiling = self.ceiling(self.failures)
        match self.policy.jitter:
            case Jitter.FULL:
                delay = self._rng.uniform(0.0, ceiling)
            case Jitter.EQUAL:
                delay = ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
            case Jitter.DECORRELATED:
                high = min(self.policy.maximum, self._previous * DECORRELATED_SPREAD)
                delay = self._rng.uniform(min(self.policy.initial, high), high)
        low, high = self.bounds(self.failures)
        delay = min(max(delay, low), high)
        self._previous = max(delay, self.policy.initial)
        return delay

    def reset(self) -> None:
        """Forget the failures: the next delay starts from the initial ceiling."""
        self.failures = 0
        self._previous = self.policy.initial


class BreakerState(enum.Enum):
    """The circuit breaker's own state, reported by ``health()``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """Consecutive failed sessions; trips at the threshold; one probe after each cool-down.

    A failed probe re-opens the breaker with the cool-down multiplied (up to its maximum); a
    healthy session closes it and restores the first cool-down.
    """

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.trips = 0
        self.cooldown = policy.cooldown

    def trips_on_failure(self) -> bool:
        """Whether one more failure opens the breaker (always, while a probe is out)."""
        return (
            self.state is BreakerState.HALF_OPEN
            or self.failures + 1 >= self.policy.failure_threshold
        )

    def record_failure(self) -> None:
        """Count one failed attempt or unhealthy session."""
        self.failures += 1

    def open(self) -> float:
        """Open the breaker; returns the cool-down to wait, and grows the next one."""
        delay = self.cooldown
        if self.state is BreakerState.HALF_OPEN:
            delay = self.cooldown = min(
                self.policy.max_cooldown, self.cooldown * self.policy.cooldown_multiplier
            )
        self.state = BreakerState.OPEN
        self.trips += 1
        return delay

    def probe(self) -> None:
        """The cool-down is over (or an operator forced it): one attempt may go out."""
        self.state = BreakerState.HALF_OPEN

    def record_success(self) -> None:
        """A session stayed healthy: close the breaker and forget the failures."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.cooldown = self.policy.cooldown


@attrs.define
class ChannelActivity:
    """Market-data arrival times per channel, written by the hot path, read by the watchdog."""

    last_seen: dict[str, float] = attrs.Factory(dict)
    received: bool = False
    #: When the session's last market data arrived, on any channel (None before the first).
    last_data: float | None = None

    def clear(self) -> None:
        """Forget everything: a new session starts."""
        self.last_seen.clear()
        self.received = False
        self.last_data = None


class StaleWatchdog:
    """Decides when an open, subscribed socket has gone mute.

    Only market data counts. Each watched channel (one with symbols and a threshold) must have
    seen data within its threshold of the later of ``since`` (when the session subscribed) and
    its last message. When a session goes stale without having received any data at all, the
    market may simply be quiet, so the thresholds grow by the escalation factor for the next
    session; any data resets them.
    """

    def __init__(self, policy: StalePolicy) -> None:
        self.policy = policy
        self.factor = 1.0

    def thresholds(self, subscription: Subscription) -> dict[str, float]:
        """Effective thresholds of the channels to watch for ``subscription``."""
        watched: dict[str, float] = {}
        for channel in CHANNELS:
            base = self.policy.threshold(channel)
            if base is not None and subscription.channel(channel):
                watched[channel] = min(self.policy.max_threshold, base * self.factor)
        return watched

    def deadline(
        self, since: float, last_seen: Mapping[str, float], subscription: Subscription
    ) -> float | None:
        """When the session turns stale if nothing more arrives; None when nothing is watched."""
        deadlines = [
            max(since, last_seen.get(channel, since)) + threshold
            for channel, threshold in self.thresholds(subscription).items()
        ]
        return min(deadlines) if deadlines else None

    def check(
        self, now: float, since: float, last_seen: Mapping[str, float], subscription: Subscription
    ) -> StaleConnectionError | None:
        """The error to report if the session is stale at ``now``, else None."""
        for channel, threshold in self.thresholds(subscription).items():
            last = max(since, last_seen.get(channel, since))
            if now - last >= threshold:
                return StaleConnectionError(channel, now - last)
        return None

    def went_stale(self, received_any: bool) -> None:
        """A session was declared stale; escalate if it never received data."""
        if not received_any:
            self.factor = min(
                self.factor * self.policy.escalation,
                self.policy.max_threshold / self._smallest_threshold(),
            )

    def data_seen(self) -> None:
        """Market data flowed: back to the configured thresholds."""
        self.factor = 1.0

    def _smallest_threshold(self) -> float:
        values = [
            value
            for value in (self.policy.quotes, self.policy.trades, self.policy.bars)
            if value is not None
        ]
        return min(values) if values else self.policy.max_threshold
