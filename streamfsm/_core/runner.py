"""The runner: the only code that feeds inputs into the core and carries out its commands.

It is synchronous and single-threaded: the engine calls it on its event loop, the Hypothesis tests
call it directly with a fake clock and a fake session port. Inputs are values
(:mod:`streamfsm._core.commands`); one sent while a previous one is still being carried out is
queued and handled afterwards, in order, so the machine never sees a trigger from inside one of its
own callbacks.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Protocol

from streamfsm._core.clock import Clock, TimerHandle
from streamfsm._core.commands import (
    ArmTimer,
    CancelTimer,
    CloseSession,
    Command,
    Input,
    OpenSession,
    ReportError,
    SendChange,
    Timer,
    TimerFired,
)
from streamfsm._core.core import ConnectionCore
from streamfsm.errors import StreamError

__all__ = ["Runner", "SessionPort"]


class SessionPort(Protocol):
    """Where the runner sends session commands: the real transport or a test fake."""

    def open_session(self, command: OpenSession) -> None:
        """Start a session; report back through the core's fact inputs, never synchronously."""

    def close_session(self, command: CloseSession) -> None:
        """Close the session of ``command.epoch`` at once (bounded, no waiting on a dead peer)."""

    def send_change(self, command: SendChange) -> None:
        """Send one subscribe or unsubscribe message on the live session."""

    def report_error(self, error: StreamError) -> None:
        """Hand ``error`` to the user's error callback."""


class Runner:
    """Drives one :class:`ConnectionCore` with a clock and a session port."""

    def __init__(
        self,
        core: ConnectionCore,
        clock: Clock,
        port: SessionPort,
        *,
        on_queued_error: Callable[[StreamError], None] | None = None,
    ) -> None:
        self.core = core
        self.clock = clock
        self.port = port
        self._on_queued_error = on_queued_error
        self._timers: dict[Timer, TimerHandle] = {}
        self._queue: collections.deque[Input] = collections.deque()
        self._busy = False

    def send(self, event: Input) -> bool:
        """Hand ``event`` to the core, then carry out the commands it produced.

        Returns True when the event was handled now, False when it was queued behind an input
        still being carried out. A queued input that fails has no caller left to tell: its error
        goes to ``on_queued_error`` (or is dropped), and the inputs queued after it still run.

        Raises:
            whatever the core raises for ``event`` (for example ``InvalidTransitionError``) when
            it was handled now; the core is then unchanged.
        """
        if self._busy:
            self._queue.append(event)
            return False
        self._busy = True
        try:
            try:
                self.core.handle(event)
            finally:
                self._execute_outbox()
        finally:
            try:
                self._run_queued()
            finally:
                self._busy = False
        return True

    def _run_queued(self) -> None:
        while self._queue:
            queued = self._queue.popleft()
            try:
                self.core.handle(queued)
            except StreamError as error:
                if self._on_queued_error is not None:
                    self._on_queued_error(error)
            finally:
                self._execute_outbox()

    @property
    def armed(self) -> frozenset[Timer]:
        """Timers the runner holds armed."""
        return frozenset(self._timers)

    def _execute_outbox(self) -> None:
        for command in self.core.drain():
            self._execute(command)

    def _execute(self, command: Command) -> None:
        match command:
            case ArmTimer(timer=timer, delay=delay, token=token):
                self._cancel(timer)
                self._timers[timer] = self.clock.call_later(
                    delay, lambda: self._timer_expired(timer, token)
                )
            case CancelTimer(timer=timer):
                self._cancel(timer)
            case OpenSession():
                self.port.open_session(command)
            case CloseSession():
                self.port.close_session(command)
            case SendChange():
                self.port.send_change(command)
            case ReportError(error=error):
                self.port.report_error(error)

    def _cancel(self, timer: Timer) -> None:
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def _timer_expired(self, timer: Timer, token: int) -> None:
        self._timers.pop(timer, None)
        self.send(TimerFired(timer, token))
