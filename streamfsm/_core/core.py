"""The controller core: the transition table brought to life, with no I/O.

Theory of operation
-------------------
:class:`ConnectionCore` is the model of a plain ``transitions.Machine`` built from
:data:`streamfsm._core.machine.TRANSITIONS`. Its inputs are values
(:mod:`streamfsm._core.commands`): requests (``StartRequested``, ``SymbolsRequested``, ...) and
facts reported by the I/O layer (``SessionReady``, ``SessionEnded``, ``TimerFired``, ...), all
sent through one entry point, :meth:`ConnectionCore.handle`. Each input fires at most one
trigger. Guards are pure predicates over the core's fields and the trigger's arguments; callbacks
decide and append *commands* (open a session, close it, send a subscription change, arm or
cancel a timer, report an error) to ``outbox``. They never await, sleep, read a socket or raise
after the state has changed. A driver (:mod:`streamfsm._core.runner`) drains the outbox after
every input and carries the commands out.

Rules:

* Only the table moves the state. An input that has no row in the current state raises
  :class:`~streamfsm.errors.InvalidTransitionError` and leaves everything unchanged.
* Facts carry the connection epoch they belong to; a fact from an older epoch is ignored, so a
  late event from a closed session can never move the machine.
* Time is injected: ``clock`` (the same monotonic clock the runner arms timers on) and ``wall``;
  randomness comes from ``rng``.
* Every executed transition, internal ones included, produces exactly one journal record.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from transitions import EventData, Machine, MachineError

from streamfsm._core.commands import (
    ChangeAcknowledged,
    ChangeRejected,
    Command,
    Input,
    OpenSession,
    ReportError,
    RestartRequested,
    SessionEnded,
    SessionReady,
    StartRequested,
    StopRequested,
    SymbolsRequested,
    Timer,
    TimerFired,
)
from streamfsm._core.machine import State, state_callbacks, transition_dicts
from streamfsm._core.policies import Backoff, Breaker, ChannelActivity, StaleWatchdog
from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import (
    Subscription,
    SubscriptionBook,
)
from streamfsm._core.upkeep import CoreUpkeep, reason_of
from streamfsm.config import StreamConfig
from streamfsm.errors import (
    InternalError,
    InvalidTransitionError,
    PredecessorStillConnectedError,
    ServerError,
    StreamError,
)

__all__ = ["ChannelActivity", "ConnectionCore"]


class ConnectionCore(CoreUpkeep):
    """The ``transitions`` model: lifecycle decisions and effect intents, no I/O.

    Args:
        config: the stream configuration (policies, timeouts).
        clock: monotonic seconds, injected.
        wall: the current UTC time, injected.
        rng: the randomness for backoff jitter.
        correlation_id: the controller's id, stamped on journal records.
        on_record: called with each journal record, right after its transition.
    """

    # Typed trigger stubs: the machine binds these attributes from the table at construction.
    state: State
    trigger: Callable[..., bool]
    start: Callable[..., bool]
    stop: Callable[..., bool]
    restart: Callable[..., bool]
    symbols_changed: Callable[..., bool]
    ready: Callable[..., bool]
    attempt_failed: Callable[..., bool]
    connection_lost: Callable[..., bool]
    data_stale: Callable[..., bool]
    backoff_elapsed: Callable[..., bool]
    cooldown_elapsed: Callable[..., bool]

    def __init__(
        self,
        config: StreamConfig,
        *,
        clock: Callable[[], float],
        wall: Callable[[], datetime],
        rng: random.Random,
        correlation_id: str,
        on_record: Callable[[TransitionRecord], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self.wall = wall
        self.correlation_id = correlation_id
        self.on_record = on_record
        self.book = SubscriptionBook()
        self.backoff = Backoff(config.backoff, rng)
        self.breaker = Breaker(config.breaker)
        self.watchdog = StaleWatchdog(config.stale)
        self.activity = ChannelActivity()
        self.outbox: list[Command] = []
        self.epoch = 0
        self.attempts = 0
        self.reconnects = 0
        self.rejected_changes = 0
        self.connection_id: str | None = None
        self.last_error: StreamError | None = None
        self._started = False
        self._session_open = False
        self.session_healthy = False
        self.subscribed_at: float | None = None
        self.state_since = clock()
        self.last_delay: float | None = None
        self._seq = 0
        self._tokens = 0
        self._armed: dict[Timer, int] = {}
        self._ever_subscribed = False
        #: Defects (InternalError messages) already handed to on_error in this breaker cycle.
        self._reported_defects: set[str] = set()
        self.machine = Machine(
            model=self,
            states=state_callbacks(),
            transitions=transition_dicts(),
            initial=State.IDLE,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
            after_state_change="_record",
        )

    # ------------------------------------------------------------ the entry point

    def handle(self, event: Input) -> None:
        """Apply one input; the commands it produces wait in ``outbox`` (see :meth:`drain`).

        Facts from an older epoch, and timers whose token was replaced, change nothing.

        Raises:
            InvalidTransitionError: when a request has no row in the current state (start while
                running, restart while stopped); the core is then unchanged.
        """
        match event:
            case SymbolsRequested(add=add, remove=remove):
                self.book.want(add, remove)
                self._fire("symbols_changed", reason="user")
            case StartRequested():
                self._fire("start", reason="user")
            case StopRequested(reason=reason):
                self._fire("stop", reason=reason)
            case RestartRequested(force=force):
                self._fire("restart", reason="user_forced" if force else "user", force=force)
            case SessionReady(epoch=epoch, ack=ack, rejection=rejection):
                self._session_ready(epoch, ack, rejection)
            case SessionEnded(epoch=epoch, error=error):
                self._session_ended(epoch, error)
            case ChangeAcknowledged(epoch=epoch, ack=ack):
                self._change_acknowledged(epoch, ack)
            case ChangeRejected(epoch=epoch, error=error):
                self._change_rejected(epoch, error)
            case TimerFired(timer=timer, token=token):
                self._timer_fired(timer, token)

    # ------------------------------------------------------------ inputs: facts

    def _session_ready(
        self, epoch: int, ack: Subscription, rejection: ServerError | None = None
    ) -> None:
        """The session of ``epoch`` is authenticated and the server acknowledged ``ack``.

        ``rejection`` is set when the server refused part of the initial subscription (405):
        the refused symbols leave the desired set and the error is reported.
        """
        if not self._current(epoch) or self.state is not State.CONNECTING:
            return
        if rejection is not None:
            self.book.rejected()
            self.book.acknowledged(ack)
            self._report_rejection(rejection)
        else:
            self._acknowledged(ack)
        self._fire("ready", reason="subscribed")

    def _session_ended(self, epoch: int, error: StreamError) -> None:
        """The session of ``epoch`` failed or closed with ``error``."""
        if not self._current(epoch):
            return
        if self.state is State.CONNECTING:
            self._fire("attempt_failed", reason=reason_of(error), error=error)
        elif self.state is State.SUBSCRIBED:
            self._fire("connection_lost", reason=reason_of(error), error=error)
        else:
            return
        if isinstance(error, InternalError) and not error.fatal:
            self._report_defect(error)

    def _change_acknowledged(self, epoch: int, ack: Subscription) -> None:
        """The server acknowledged a change; ``ack`` is its whole current set."""
        if not self._current(epoch) or self.state is not State.SUBSCRIBED:
            return
        self._acknowledged(ack)
        self._arm_stale()
        self._sync_subscriptions()

    def _change_rejected(self, epoch: int, error: ServerError) -> None:
        """The server refused the change in flight (405, 400, 410); its set is as before."""
        if not self._current(epoch) or self.state is not State.SUBSCRIBED:
            return
        self.book.rejected()
        self._report_rejection(error)
        self._sync_subscriptions()

    def _timer_fired(self, timer: Timer, token: int) -> None:
        """A timer armed by this core expired; stale tokens are ignored."""
        if timer not in self._armed or self._armed[timer] != token:
            return
        del self._armed[timer]
        if timer is Timer.BACKOFF:
            self._fire("backoff_elapsed", reason="backoff_elapsed")
        elif timer is Timer.COOLDOWN:
            self._fire("cooldown_elapsed", reason="half_open_probe")
        elif timer is Timer.HEALTHY:
            self._session_turned_healthy()
        else:
            self._check_stale()

    def drain(self) -> list[Command]:
        """Take the commands produced so far, oldest first."""
        commands, self.outbox = self.outbox, []
        return commands

    # ------------------------------------------------------------ reading

    def is_connected(self) -> bool:
        """True exactly in ``subscribed``."""
        return self.state is State.SUBSCRIBED

    @property
    def change_in_flight(self) -> bool:
        """True while a subscribe or unsubscribe awaits the server's answer."""
        return self.book.in_flight is not None

    # ------------------------------------------------------------ guards (pure)

    def has_symbols(self, _event: EventData) -> bool:
        """The caller wants at least one symbol."""
        return bool(self.book.desired)

    def started(self, _event: EventData) -> bool:
        """``start`` was called and ``stop`` was not called since."""
        return self._started

    def is_fatal(self, event: EventData) -> bool:
        """The error that caused this event must not be retried."""
        error = event.kwargs.get("error")
        return isinstance(error, StreamError) and error.fatal

    def predecessor_connected(self, event: EventData) -> bool:
        """A 406 after a takeover: the old holder's socket is not reaped yet (not our failure)."""
        return isinstance(event.kwargs.get("error"), PredecessorStillConnectedError)

    def breaker_trips(self, _event: EventData) -> bool:
        """Counting this failure opens the breaker (always when a probe failed)."""
        return not self.session_healthy and self.breaker.trips_on_failure()

    def forced(self, event: EventData) -> bool:
        """The operator asked to override the open breaker."""
        return bool(event.kwargs.get("force", False))

    # ------------------------------------------------------------ effects on rows

    def mark_started(self, _event: EventData) -> None:
        """Remember that the lifecycle runs, so symbols arriving later connect."""
        self._started = True

    def record_failure(self, _event: EventData) -> None:
        """Count a failed attempt or an unhealthy session for the breaker."""
        if not self.session_healthy:
            self.breaker.record_failure()

    def send_difference(self, _event: EventData) -> None:
        """Send what the server lacks, or has too much of, unless a change is in flight."""
        self._sync_subscriptions()

    def begin_probe(self, _event: EventData) -> None:
        """The breaker lets one probe attempt through."""
        self.breaker.probe()

    # ------------------------------------------------------------ state callbacks

    def _enter_idle(self, event: EventData) -> None:
        self._close_session(event.event.name)
        for timer in list(self._armed):
            self._disarm(timer)

    def _enter_connecting(self, _event: EventData) -> None:
        self._close_session("reconnect")
        self.epoch += 1
        self.attempts += 1
        self.connection_id = f"{self.correlation_id}-{self.epoch}"
        self.session_healthy = False
        self.book.opened()
        self.activity.clear()
        self._session_open = True
        self.outbox.append(
            OpenSession(self.epoch, self.connection_id, self.book.desired, self.attempts)
        )

    def _enter_subscribed(self, _event: EventData) -> None:
        now = self.clock()
        self.subscribed_at = now
        if self._ever_subscribed:
            self.reconnects += 1
        self._ever_subscribed = True
        self._arm(Timer.HEALTHY, self.config.healthy_after)
        self._arm_stale()
        self._sync_subscriptions()

    def _exit_subscribed(self, event: EventData) -> None:
        self._disarm(Timer.HEALTHY)
        self._disarm(Timer.STALE)
        self.subscribed_at = None
        if event.event.name == "data_stale":
            self.watchdog.went_stale(self.activity.received)
        self._close_session(event.event.name)

    def _enter_backoff(self, event: EventData) -> None:
        self._close_session(event.event.name)
        self.last_delay = self._backoff_delay(event.kwargs.get("error"))
        self._arm(Timer.BACKOFF, self.last_delay)

    def _exit_backoff(self, _event: EventData) -> None:
        self._disarm(Timer.BACKOFF)

    def _enter_circuit_open(self, event: EventData) -> None:
        self._close_session(event.event.name)
        self.last_delay = self._cooldown_delay(event.kwargs.get("error"))
        self._arm(Timer.COOLDOWN, self.last_delay)

    def _exit_circuit_open(self, _event: EventData) -> None:
        self._disarm(Timer.COOLDOWN)
        self._reported_defects.clear()  # a new breaker cycle: a defect that persists is told again

    def _enter_stopped(self, event: EventData) -> None:
        self._started = False
        self._close_session(event.event.name)
        for timer in list(self._armed):
            self._disarm(timer)
        error = event.kwargs.get("error")
        if isinstance(error, StreamError):
            self.outbox.append(ReportError(error))

    # ------------------------------------------------------------ helpers

    def _fire(self, trigger: str, **kwargs: Any) -> None:
        self.last_delay = None
        try:
            self.trigger(trigger, **kwargs)
        except MachineError as exc:
            raise InvalidTransitionError(self.state.value, trigger) from exc

    def _check_stale(self) -> None:
        if self.state is not State.SUBSCRIBED or self.subscribed_at is None:
            return
        now = self.clock()
        if self.activity.received:
            self.watchdog.data_seen()
        error = self.watchdog.check(
            now, self.subscribed_at, self.activity.last_seen, self.book.confirmed
        )
        if error is None:
            self._arm_stale()
        else:
            self._fire("data_stale", reason="stale", error=error)
