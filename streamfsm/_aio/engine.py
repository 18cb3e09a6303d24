"""The engine: the controller's I/O on one event loop, for the loop's whole life.

An :class:`Engine` owns one task group from :meth:`Engine.run` until the loop is told to close,
independent of the machine: a stop closes the sessions and discards undelivered data, and a later
start opens a new session in the same group. It is the runner's session port: it opens sessions
as tasks, closes them, sends subscription changes and hands errors to ``on_error``.

Every command and fact reaches the core through :meth:`Engine.handle` as a value
(:mod:`streamfsm._core.commands`), on the loop's thread; the sync bridge and the async API both
call it there. Only :meth:`Engine.halt_deliveries` may be called from another thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import attrs

from streamfsm._aio.dispatch import Delivery, Dispatcher
from streamfsm._aio.session import Session
from streamfsm._core.clock import Clock
from streamfsm._core.commands import (
    CloseSession,
    Input,
    OpenSession,
    SendChange,
    StartRequested,
    StopRequested,
    SymbolsRequested,
)
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import State
from streamfsm._core.runner import Runner
from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm._core.tracking import DataTracker, GapReport
from streamfsm._validate import require_timeout
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import StreamError
from streamfsm.logs import StreamLogger

__all__ = ["Engine", "SessionContext", "SessionFactory", "SessionLike", "alpaca_session"]

Callback = Callable[[Any], object]


class SessionLike(Protocol):
    """What the engine runs for one connection epoch (a :class:`Session`, or a cluster's bus)."""

    async def run(self) -> None:
        """The task's body: connect, stream, report the outcome to the core; never raises."""

    async def send_change(self, action: str, symbols: Subscription) -> None:
        """Send one subscription change on the live session."""


@attrs.frozen
class SessionContext:
    """Everything a session needs from its engine: where facts, data and errors go."""

    config: StreamConfig
    credentials: Credentials
    send: Callable[[Input], None]
    report: Callable[[StreamError], None]
    tracker: DataTracker
    dispatcher: Dispatcher
    clock: Callable[[], float]
    log: StreamLogger
    raw_frames: bool


#: Builds the session of one epoch; the default opens an Alpaca WebSocket.
SessionFactory = Callable[[OpenSession, SessionContext], SessionLike]


def alpaca_session(command: OpenSession, context: SessionContext) -> SessionLike:
    """A session on Alpaca's WebSocket (the default factory)."""
    return Session(
        command,
        config=context.config,
        credentials=context.credentials,
        send=context.send,
        report=context.report,
        tracker=context.tracker,
        dispatcher=context.dispatcher,
        clock=context.clock,
        log=context.log,
        raw_frames=context.raw_frames,
    )


class Engine:
    """Drives one core with real sessions, timers and deliveries on one event loop.

    Args:
        core: the controller's core; the engine is its only writer while the loop runs.
        config: the stream configuration.
        credentials: sent by each session's auth.
        tracker: the hot path's counters and gap bookkeeping.
        deliveries: the user's market-data callbacks, by fast model type.
        raw_frames: decode market data into the wire's own dicts (the ``raw`` model mode).
        clock: the one clock the core also reads; timers are armed on it.
        log: the controller's logger.
        on_error: the user's ``on_error`` callback, or None.
        on_gap: the user's ``on_gap`` callback, or None.
        on_handled: called after every input (wakes threads waiting on the state).
        session_factory: builds each epoch's session (default: Alpaca's WebSocket).
        on_stopping: awaited once per stop, whatever caused it, after the sessions were told to
            close (a cluster member leaves there); a stop waits for it as for the sessions.
    """

    def __init__(
        self,
        core: ConnectionCore,
        *,
        config: StreamConfig,
        credentials: Credentials,
        tracker: DataTracker,
        deliveries: dict[type, Delivery],
        clock: Clock,
        log: StreamLogger,
        on_error: Callback | None,
        on_gap: Callback | None,
        on_handled: Callable[[], None],
        raw_frames: bool = False,
        session_factory: SessionFactory = alpaca_session,
        on_stopping: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.core = core
        self._session_factory = session_factory
        self._on_stopping = on_stopping
        self._raw_frames = raw_frames
        self._config = config
        self._credentials = credentials
        self._tracker = tracker
        self._clock = clock
        self._log = log
        self._on_error = on_error
        self._on_gap = on_gap
        self._on_handled = on_handled
        self.runner = Runner(core, clock, self, on_queued_error=self._queued_failed)
        self.dispatcher = Dispatcher(
            deliveries,
            config.dispatch_queue_size,
            config.overflow,
            log,
            max_bytes=config.dispatch_queue_bytes,
            max_age=config.dispatch_max_age,
            clock=clock.monotonic,
        )
        #: The task delivering user callbacks (an ``astop()`` from it must not await the engine).
        self.dispatch_task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._sessions: dict[int, tuple[SessionLike, asyncio.Task[None]]] = {}
        #: The ``on_stopping`` work of the latest stop; never cancelled, always awaited.
        self._leaving: asyncio.Task[None] | None = None
        #: True once ``on_stopping`` ran for the current stop.
        self._left = False
        #: Session and send tasks not yet finished, closed ones included: a stop awaits them.
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ the entry point

    def handle(self, event: Input) -> None:
        """Send one input to the core and carry out its commands; on the loop's thread.

        Raises:
            InvalidTransitionError: when a request has no row in the current state.
        """
        try:
            self.runner.send(event)
            self._leave_when_stopped()
            if isinstance(event, SymbolsRequested) and event.remove:
                # Unsubscribed pairs close their open gaps: no report is owed for them.
                removed = event.remove
                self._tracker.forget(
                    [
                        (channel, symbol)
                        for channel in CHANNELS
                        for symbol in removed.channel(channel)
                    ]
                )
        finally:
            self._on_handled()

    def start(self) -> None:
        """Deliver again (after a stop) and send ``StartRequested``; on the loop's thread.

        Raises:
            InvalidTransitionError: when the machine already runs.
        """
        self.dispatcher.reopen()
        self._ensure_dispatching()
        self.handle(StartRequested())

    async def start_when_closed(self) -> None:
        """Wait until sessions closed by an earlier stop have closed their sockets, then start.

        A new session while the old socket is still open would count twice against the
        server's connection limit (406).

        Raises:
            InvalidTransitionError: when the machine already runs.
        """
        if self.core.state in (State.IDLE, State.STOPPED):
            live = {task for _session, task in self._sessions.values()}
            closing = [task for task in self._tasks if task not in live]
            if closing:
                await asyncio.wait(closing)
        self.start()

    def halt_deliveries(self, timeout: float | None) -> None:
        """From any thread: no callback starts from now on until the next :meth:`start`.

        Waits up to ``timeout`` for a callback running now to return; what waits is discarded
        and counted as dropped.

        Raises:
            ConfigurationError: when ``timeout`` is neither None nor 0 .. a week of seconds.
        """
        self.dispatcher.close(require_timeout("timeout", timeout))

    def stop_now(self, reason: str = "user") -> None:
        """Stop the machine and discard undelivered data, without waiting; on the loop's thread.

        The sessions are cancelled and close their sockets right after (see :meth:`stop`).
        """
        self.dispatcher.close()
        self.handle(StopRequested(reason))

    async def stop(self, reason: str = "user") -> None:
        """Stop the machine and wait until no session task and no socket remains."""
        self.stop_now(reason)
        await self.settled()

    async def settled(self) -> None:
        """Wait until every session and send task running now has finished (sockets closed).

        Tasks started meanwhile (a start() from another thread) are not waited for.
        """
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def run(self, ready: Callable[[], None], closing: asyncio.Event) -> None:
        """The engine's life: one task group from ``ready()`` until ``closing`` is set.

        On the way out the machine is stopped (reason ``shutdown``) if it still runs, every
        session is closed and undelivered data is discarded.
        """
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._ensure_dispatching()
                ready()
                await closing.wait()
                if self.core.state is not State.STOPPED:
                    self.stop_now("shutdown")
                self.dispatcher.close()
                for task in list(self._tasks):
                    if task is not self._leaving:
                        task.cancel()
        finally:
            self._group = None
            self.dispatch_task = None
            if self.core.state is not State.STOPPED:
                # The loop is ending abnormally: record the stop; no I/O is left to carry it out.
                self.handle(StopRequested("engine_failed"))

    def gap_found(self, report: GapReport) -> None:
        """Data resumed for a pair after an outage: log it and hand it to ``on_gap``."""
        before = report.last_seen_before
        self._log.info(
            "data_gap",
            symbol=report.symbol,
            channel=report.channel,
            last_seen_before=before.isoformat() if before else None,
            first_seen_after=report.first_seen_after.isoformat(),
            reason=report.reason,
        )
        if self._on_gap is not None:
            self.dispatcher.notify(self._on_gap, report)

    # ------------------------------------------------------------ SessionPort

    def open_session(self, command: OpenSession) -> None:
        """Start the session of ``command.epoch`` as a task in the group."""
        if self._group is None:
            # Only a running machine opens sessions, and the machine runs only while the loop does.
            raise RuntimeError("a session was asked for with no event loop running")
        session = self._session_factory(command, self.session_context())
        task = self._track(
            self._group.create_task(session.run(), name=f"streamfsm-session-{command.epoch}")
        )
        self._sessions[command.epoch] = (session, task)
        task.add_done_callback(lambda _task: self._sessions.pop(command.epoch, None))

    def close_session(self, command: CloseSession) -> None:
        """Cancel the session of ``command.epoch``; it closes its socket on the way out."""
        entry = self._sessions.pop(command.epoch, None)
        if entry is not None:
            entry[1].cancel()

    def send_change(self, command: SendChange) -> None:
        """Send a subscription change on the live session of ``command.epoch``."""
        entry = self._sessions.get(command.epoch)
        if entry is None or self._group is None:
            return
        self._track(self._group.create_task(entry[0].send_change(command.action, command.symbols)))

    def report_error(self, error: StreamError) -> None:
        """Log ``error`` and hand it to ``on_error`` through the dispatcher."""
        # A fatal stop is an ERROR; a refused change or a server warning keeps the stream alive.
        self._log.log(
            logging.ERROR if error.fatal else logging.WARNING,
            "error_reported",
            error_type=type(error).__name__,
            error=str(error),
        )
        if self._on_error is not None:
            self.dispatcher.notify(self._on_error, error)

    def session_context(self) -> SessionContext:
        """Where this engine's sessions send facts, data and errors."""
        return SessionContext(
            config=self._config,
            credentials=self._credentials,
            send=self.handle,
            report=self.report_error,
            tracker=self._tracker,
            dispatcher=self.dispatcher,
            clock=self._clock.monotonic,
            log=self._log,
            raw_frames=self._raw_frames,
        )

    # ------------------------------------------------------------ helpers

    def _track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _leave_when_stopped(self) -> None:
        """Run ``on_stopping`` once per stop, however the machine got there (a user's stop, a
        fatal error, the loop closing)."""
        if self._on_stopping is None or self._group is None:
            return
        if self.core.state is not State.STOPPED:
            self._left = False
        elif not self._left:
            self._left = True
            self._leaving = self._track(
                self._group.create_task(self._leave(self._on_stopping), name="streamfsm-leaving")
            )

    async def _leave(self, on_stopping: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``on_stopping``; a failure is logged, never allowed to end the engine's group."""
        try:
            await on_stopping()
        except Exception as exc:  # noqa: BLE001 - the machine has stopped; nothing to undo
            self._log.error("leave_failed", error_type=type(exc).__name__, error=str(exc))

    def _ensure_dispatching(self) -> None:
        if self._group is not None and (self.dispatch_task is None or self.dispatch_task.done()):
            self.dispatch_task = self._group.create_task(
                self.dispatcher.run(), name="streamfsm-dispatch"
            )

    def _queued_failed(self, error: StreamError) -> None:
        """A command queued behind another (from a listener, say) was refused: log it."""
        self._log.warning(
            "queued_command_refused", error_type=type(error).__name__, error=str(error)
        )
