"""The core's bookkeeping: timers, the stale watch, the subscription sync and the journal record.

:class:`CoreUpkeep` is the half of :class:`~streamfsm._core.core.ConnectionCore` that never
fires a trigger: its helpers only read the core's fields and append commands to its outbox, so
the state callbacks in ``core.py`` read as decisions and this module as their arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from streamfsm._core.commands import (
    ArmTimer,
    CancelTimer,
    CloseSession,
    Command,
    ReportError,
    SendChange,
    Timer,
)
from streamfsm._core.machine import State
from streamfsm._core.policies import Backoff, Breaker, ChannelActivity, StaleWatchdog
from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import CHANNELS, SUBSCRIBE, Subscription, SubscriptionBook
from streamfsm.config import StreamConfig
from streamfsm.errors import (
    ChangeIgnoredError,
    ConnectionLimitError,
    InternalError,
    PredecessorStillConnectedError,
    ServerError,
    StreamError,
)

if TYPE_CHECKING:
    from transitions import EventData

__all__ = ["CoreUpkeep", "reason_of"]


class CoreUpkeep:
    """Helpers of the connection core; the core's ``__init__`` sets every field below."""

    state: State
    config: StreamConfig
    clock: Callable[[], float]
    wall: Callable[[], datetime]
    correlation_id: str
    on_record: Callable[[TransitionRecord], None]
    book: SubscriptionBook
    backoff: Backoff
    breaker: Breaker
    watchdog: StaleWatchdog
    activity: ChannelActivity
    outbox: list[Command]
    epoch: int
    attempts: int
    rejected_changes: int
    connection_id: str | None
    last_error: StreamError | None
    session_healthy: bool
    subscribed_at: float | None
    state_since: float
    last_delay: float | None
    _session_open: bool
    _seq: int
    _tokens: int
    _armed: dict[Timer, int]
    _reported_defects: set[str]

    def _record(self, event: EventData) -> None:
        """after_state_change: one journal record per executed transition."""
        transition = event.transition
        assert transition is not None  # after_state_change only runs for executed transitions
        src = transition.source
        dst = transition.dest if transition.dest is not None else src
        if transition.dest is not None:
            self.state_since = self.clock()
        error = event.kwargs.get("error")
        self._seq += 1
        record = TransitionRecord(
            seq=self._seq,
            wall_time=self.wall().isoformat(timespec="microseconds"),
            monotonic=self.clock(),
            correlation_id=self.correlation_id,
            connection_id=self.connection_id,
            epoch=self.epoch,
            trigger=event.event.name,
            src=State[src].value,
            dst=State[dst].value,
            reason=str(event.kwargs.get("reason", "")),
            error=type(error).__name__ if error is not None else None,
            code=error.server_code if isinstance(error, ServerError) else None,
            attempt=self.attempts,
            delay=self.last_delay,
            last_data=self.activity.last_data,
        )
        if isinstance(error, StreamError):
            self.last_error = error
        self.on_record(record)

    def _current(self, epoch: int) -> bool:
        return epoch == self.epoch and self._session_open

    def _close_session(self, reason: str) -> None:
        if self._session_open:
            self._session_open = False
            self.outbox.append(CloseSession(self.epoch, reason))

    def _arm(self, timer: Timer, delay: float) -> None:
        self._tokens += 1
        self._armed[timer] = self._tokens
        self.outbox.append(ArmTimer(timer, delay, self._tokens))

    def _disarm(self, timer: Timer) -> None:
        if self._armed.pop(timer, None) is not None:
            self.outbox.append(CancelTimer(timer))

    def _backoff_delay(self, error: object) -> float:
        """The wait in ``backoff`` after ``error``.

        A ``PredecessorStillConnectedError`` waits exactly its ``retry_after`` and leaves the
        backoff schedule where it was (the refusal is not a failure of ours); any other 406 waits
        at least ``connection_limit_cooldown``; everything else the next jittered delay.
        """
        if isinstance(error, PredecessorStillConnectedError):
            return error.retry_after
        delay = self.backoff.next_delay()
        if isinstance(error, ConnectionLimitError):
            delay = max(delay, self.config.connection_limit_cooldown)
        return delay

    def _cooldown_delay(self, error: object) -> float:
        """Open the breaker and return its cool-down; a 406 waits at least its own cool-down."""
        delay = self.breaker.open()
        if isinstance(error, ConnectionLimitError):
            delay = max(delay, self.config.connection_limit_cooldown)
        return delay

    def _arm_stale(self) -> None:
        """(Re)arm the watchdog for the confirmed set; disarmed when nothing is watched."""
        self._disarm(Timer.STALE)
        if self.subscribed_at is None:
            return
        deadline = self.watchdog.deadline(
            self.subscribed_at, self.activity.last_seen, self.book.confirmed
        )
        if deadline is not None:
            self._arm(Timer.STALE, max(0.0, deadline - self.clock()))

    def _session_turned_healthy(self) -> None:
        self.session_healthy = True
        self.backoff.reset()
        self.breaker.record_success()

    def _sync_subscriptions(self) -> None:
        if self.state is not State.SUBSCRIBED:
            return
        confirmed = self.book.confirmed
        change = self.book.next_change()
        if change is None:
            return
        self.outbox.append(SendChange(self.epoch, change.action, change.symbols))
        if change.action == SUBSCRIBE:
            # A channel that starts streaming now is watched from now, not from the session start.
            now = self.clock()
            for channel in CHANNELS:
                if change.symbols.channel(channel) and not confirmed.channel(channel):
                    self.activity.last_seen[channel] = now

    def _acknowledged(self, ack: Subscription) -> None:
        """Record an ack; a change it shows was not applied is reported as refused."""
        action = self.book.in_flight.action if self.book.in_flight else SUBSCRIBE
        ignored = self.book.acknowledged(ack)
        if ignored:
            pairs = sorted((ch, symbol) for ch in CHANNELS for symbol in ignored.channel(ch))
            self._report_rejection(ChangeIgnoredError(action, pairs))

    def _report_defect(self, error: InternalError) -> None:
        """A defect inside a session reaches ``on_error`` the first time in a breaker cycle.

        The breaker and backoff already bound how often it recurs; repeating the same report
        on every retry would only drown the first one.
        """
        if str(error) not in self._reported_defects:
            self._reported_defects.add(str(error))
            self.outbox.append(ReportError(error))

    def _report_rejection(self, error: StreamError) -> None:
        self.rejected_changes += 1
        self.last_error = error
        self.outbox.append(ReportError(error))


def reason_of(error: StreamError) -> str:
    """A short snake_case cause for the journal."""
    name = type(error).__name__
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return snake.removesuffix("_error") or "error"
