"""``StreamController``: the public face of streamfsm, sync and async.

One asyncio event loop owns the core, the runner, the sessions and the dispatcher: every
transition happens on that loop, so no lock guards the state. The sync API runs the loop on one
named thread that the controller owns and hands commands to it; called from the loop itself (from
inside a callback) the same methods run directly and never wait, so they cannot deadlock. The
async API (``async with StreamController(...)``) runs everything in the caller's loop.

Reading ``state``, ``is_connected()`` and ``journal()`` is safe from any thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import random
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

from streamfsm._aio.dispatch import Delivery, Dispatcher
from streamfsm._aio.journal import Journal
from streamfsm._aio.session import Session, SessionHooks
from streamfsm._core.clock import LoopClock
from streamfsm._core.core import CloseSession, ConnectionCore, OpenSession, SendChange
from streamfsm._core.machine import State
from streamfsm._core.policies import BreakerState
from streamfsm._core.records import TransitionRecord
from streamfsm._core.runner import Runner
from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm._core.tracking import DataTracker, GapReport
from streamfsm.config import ModelMode, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ConfigurationError,
    ControllerStoppedError,
    ServerError,
    ShutdownTimeoutError,
    StreamError,
)
from streamfsm.logs import StreamLogger, pin_library_loggers
from streamfsm.models import (
    Bar,
    DailyBar,
    MarketData,
    Quote,
    Trade,
    UpdatedBar,
    alpaca_converter,
    raw_converter,
)

__all__ = ["Health", "StreamController"]

_T = TypeVar("_T")
#: How long ``stop()`` waits for the loop thread by default; far above the 50 ms it needs.
DEFAULT_STOP_TIMEOUT = 5.0
#: How long ``start()`` waits for the loop thread to come up by default.
DEFAULT_START_TIMEOUT = 5.0


@attrs.frozen(kw_only=True)
class Health:
    """A frozen snapshot of a controller, for dashboards and health checks."""

    correlation_id: str
    state: State
    time_in_state: float
    attempts: int
    reconnects: int
    connection_id: str | None
    breaker: BreakerState
    breaker_trips: int
    consecutive_failures: int
    messages: dict[str, int]
    last_message_age: dict[str, float | None]
    callback_errors: int
    dropped_messages: int
    queued_messages: int
    malformed_frames: int
    skipped_messages: int
    rejected_changes: int
    desired: Subscription
    confirmed: Subscription
    in_sync: bool
    open_gaps: int
    recent_gaps: tuple[GapReport, ...]
    last_error: str | None


Callback = Callable[[Any], object]


class StreamController:
    """Keeps one Alpaca market-data stream alive, driven by the transition table.

    Args:
        credentials: the Alpaca key id and secret.
        config: the stream configuration; defaults to IEX on Alpaca's endpoint.
        on_quote: called with each quote (sync function or coroutine function).
        on_trade: called with each trade.
        on_bar: called with each minute, updated or daily bar.
        on_error: called with each :class:`~streamfsm.errors.StreamError` the user must know
            about: fatal stops and rejected subscription changes.
        on_gap: called with a :class:`~streamfsm._core.tracking.GapReport` when data resumes for a
            symbol after an outage.
        models: ``alpaca`` (alpaca-py's own models), ``fast`` (streamfsm structs with the same
            attribute names) or ``raw`` (wire dicts).
        symbols: subscribed on every channel that has a callback.
        correlation_id: stamped on every log event and journal record; generated when None.
        rng: the randomness of backoff jitter (seed it for reproducible runs).

    The controller starts in ``idle``; nothing runs until :meth:`start`.
    """

    def __init__(
        self,
        credentials: Credentials,
        config: StreamConfig | None = None,
        *,
        on_quote: Callback | None = None,
        on_trade: Callback | None = None,
        on_bar: Callback | None = None,
        on_error: Callback | None = None,
        on_gap: Callback | None = None,
        models: ModelMode | str = ModelMode.ALPACA,
        symbols: Iterable[str] = (),
        correlation_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ConfigurationError("credentials", "a streamfsm.Credentials", type(credentials))
        pin_library_loggers()
        self._credentials = credentials
        self.config = config if config is not None else StreamConfig()
        self.correlation_id = correlation_id or f"sfsm-{uuid.uuid4().hex[:12]}"
        self._log = StreamLogger(
            correlation_id=self.correlation_id,
            feed=self.config.feed.value,
            key=credentials.fingerprint,
        )
        mode = _model_mode(models)
        self._on_error = on_error
        self._on_gap = on_gap
        self._journal = Journal(
            self.config.journal_size,
            self.config.journal_path,
            fsync=self.config.journal_fsync,
            fsync_interval=self.config.journal_fsync_interval,
        )
        self._listeners: list[Callable[[TransitionRecord], object]] = []
        # Async waiters and iterators: each queue with the loop it belongs to.
        self._iterators: list[
            tuple[asyncio.AbstractEventLoop, asyncio.Queue[TransitionRecord]]
        ] = []
        self._changed = threading.Condition()
        self.core = ConnectionCore(
            self.config,
            clock=time.monotonic,
            wall=lambda: datetime.now(UTC),
            rng=rng if rng is not None else random.Random(),
            correlation_id=self.correlation_id,
            on_record=self._on_record,
        )
        self._tracker = DataTracker(self.core.activity, self._gap_found)
        self._deliveries = _deliveries(mode, on_quote, on_trade, on_bar)
        initial = Subscription(
            quotes=symbols if on_quote else (),
            trades=symbols if on_trade else (),
            bars=symbols if on_bar else (),
        )
        if initial:
            self.core.request_symbols(initial)
        # Set while an engine runs; only its loop thread mutates the core then.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._engine: _Engine | None = None
        self._thread: threading.Thread | None = None
        self._root: asyncio.Task[None] | None = None
        self._lifecycle = threading.RLock()
        # Guards the core whenever no engine owns it, and the hand-over of ownership.
        self._core_lock = threading.RLock()
        # Dispatcher counters of engines that have finished (start after stop keeps totals).
        self._carried = {"callback_errors": 0, "dropped": 0}
        self._log.info("controller_created", endpoint=self.config.endpoint, models=mode.value)
        _live_controllers.add(self)

    # ------------------------------------------------------------ reading, from any thread

    @property
    def state(self) -> State:
        """The current state."""
        return self.core.state

    def is_connected(self) -> bool:
        """True exactly in ``subscribed``."""
        return self.core.state is State.SUBSCRIBED

    @property
    def last_error(self) -> StreamError | None:
        """The error of the latest failure, rejected change or fatal stop."""
        return self.core.last_error

    def journal(self) -> tuple[TransitionRecord, ...]:
        """The retained transition records, oldest first."""
        return self._journal.records()

    def health(self) -> Health:
        """A consistent snapshot, taken on the controller's loop when it runs."""
        snapshot = self._call(self._health, read_only=True)
        assert snapshot is not None  # read-only calls are never queued
        return snapshot

    def delivery_lag(self) -> float:
        """Inside a market-data callback: seconds since the frame being delivered arrived.

        A callback that records prices should date them by arrival, not by delivery: a backlog
        behind slow callbacks would otherwise make old prices look fresh. Elsewhere it is 0.0.
        """
        engine = self._engine
        arrived = engine.dispatcher.current_received_at if engine is not None else None
        return max(0.0, time.monotonic() - arrived) if arrived is not None else 0.0

    def add_listener(self, listener: Callable[[TransitionRecord], object]) -> None:
        """Call ``listener(record)`` on the controller's loop after every transition.

        A listener that raises is logged and otherwise ignored.
        """
        self._listeners.append(listener)

    def wait_for(self, state: State, timeout: float | None = None) -> bool:
        """Block until the controller is in ``state``; False when ``timeout`` passes first.

        Never call it from a callback: the loop it waits on is the one running the callback.
        """
        with self._changed:
            return self._changed.wait_for(lambda: self.core.state is state, timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until subscribed with the acknowledged set equal to the desired set."""
        with self._changed:
            return self._changed.wait_for(
                lambda: (
                    self.core.state is State.SUBSCRIBED
                    and self.core.book.in_sync
                    and not self.core.change_in_flight
                ),
                timeout,
            )

    # ------------------------------------------------------------ sync commands

    def start(self, timeout: float | None = DEFAULT_START_TIMEOUT) -> None:
        """Begin the lifecycle and return at once (the connection proceeds in the background).

        Leaves the controller in ``connecting`` when there are symbols, else ``idle``.

        Raises:
            InvalidTransitionError: when it is already running.
            ControllerStoppedError: when the loop thread does not come up within ``timeout``.
        """
        if self._on_loop_thread():
            engine = self._engine
            if engine is not None and engine.finishing:
                raise ControllerStoppedError("the controller is stopping; start it again later")
            self._call(self.core.request_start)
            return
        with self._lifecycle:
            self._await_finishing_engine(timeout)
            if self._engine is None:
                self._spawn_thread(timeout)
            self._call(self.core.request_start)

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop from any state; returns when no task, timer, thread or socket remains.

        Idempotent. Called on the controller's own loop (inside a callback, or from async code
        that shares the loop) it stops the lifecycle, delivers nothing more and returns at once;
        the loop winds down right after. Async code that wants to wait uses ``await astop()``.

        Raises:
            ShutdownTimeoutError: when the loop thread is still running after ``timeout``.
        """
        engine = self._engine
        if engine is not None and self._on_loop_thread():
            # Inside a callback: stop now and deliver nothing more; the loop ends right after.
            self._call(self.core.request_stop)
            engine.finish()
            return
        with self._lifecycle:
            engine = self._engine
            if engine is None:
                self._call(self.core.request_stop)
                return
            try:
                self._call(self.core.request_stop)
            finally:
                self._post(engine, engine.finish)
                engine.join(timeout)

    def restart(self, *, force: bool = False) -> None:
        """Close the session and connect again; ``force`` also overrides an open breaker.

        Raises:
            InvalidTransitionError: when stopped (use :meth:`start`).
            ControllerStoppedError: when the controller was never started or has wound down.
        """
        if self._engine is None:
            raise ControllerStoppedError("restart() needs a running controller; call start()")
        self._call(lambda: self.core.request_restart(force=force))

    def subscribe(
        self,
        *,
        quotes: Iterable[str] | str = (),
        trades: Iterable[str] | str = (),
        bars: Iterable[str] | str = (),
    ) -> None:
        """Add symbols; works in every state, from any thread and from callbacks.

        While subscribed only the difference is sent; otherwise the next session applies it.
        A refusal by the server (405 symbol limit) reaches ``on_error`` and ``last_error`` and
        leaves the earlier subscriptions intact.

        Raises:
            InvalidSymbolError: when a symbol is invalid; nothing changes then.
        """
        change = Subscription(trades=trades, quotes=quotes, bars=bars)
        self._call(lambda: self.core.request_symbols(add=change))

    def unsubscribe(
        self,
        *,
        quotes: Iterable[str] | str = (),
        trades: Iterable[str] | str = (),
        bars: Iterable[str] | str = (),
    ) -> None:
        """Remove symbols; works in every state, from any thread and from callbacks.

        Raises:
            InvalidSymbolError: when a symbol is invalid; nothing changes then.
        """
        change = Subscription(trades=trades, quotes=quotes, bars=bars)
        pairs = [(channel, symbol) for channel in CHANNELS for symbol in change.channel(channel)]

        def remove() -> None:
            self.core.request_symbols(remove=change)
            self._tracker.forget(pairs)

        self._call(remove)

    # ------------------------------------------------------------ async twins

    async def astart(self) -> None:
        """Begin the lifecycle inside the running loop (the async twin of :meth:`start`)."""
        engine = self._engine
        if engine is not None and engine.finishing and not self._on_loop_thread():
            await asyncio.to_thread(engine.done.wait, self.config.command_timeout)
        if self._engine is None:
            loop = asyncio.get_running_loop()
            ready = asyncio.Event()
            engine = _Engine(self, loop)
            self._attach(engine, loop)
            self._root = loop.create_task(engine.run(ready.set), name="streamfsm-engine")
            await ready.wait()
        self._call(self.core.request_start)

    async def astop(self) -> None:
        """Stop and wait until nothing of the controller runs (the async twin of :meth:`stop`)."""
        engine, root = self._engine, self._root
        if engine is None or (
            self._on_loop_thread() and asyncio.current_task() is engine.dispatch_task
        ):
            # No engine, or called from inside one of its callbacks: awaiting the engine here
            # would wait for this very callback. Stop now; the engine winds down after it.
            self.stop()
            return
        if self._thread is not None:
            await asyncio.to_thread(self.stop)
            return
        self._call(self.core.request_stop)
        engine.finish()
        if root is not None:
            await root

    async def await_state(self, state: State) -> None:
        """Wait in the loop until the controller is in ``state``; bound it with asyncio.timeout."""
        entry = self._subscribe_records()
        try:
            while self.core.state is not state:
                await entry[1].get()
        finally:
            self._iterators.remove(entry)

    async def transitions(self) -> AsyncIterator[TransitionRecord]:
        """Yield every transition record from now on, in the controller's loop."""
        entry = self._subscribe_records()
        try:
            while True:
                yield await entry[1].get()
        finally:
            self._iterators.remove(entry)

    async def __aenter__(self) -> StreamController:
        await self.astart()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        return (
            f"StreamController(correlation_id={self.correlation_id!r}, "
            f"state={self.core.state.value!r}, key={self._credentials.fingerprint!r})"
        )

    # ------------------------------------------------------------ plumbing

    def _spawn_thread(self, timeout: float | None) -> None:
        ready = threading.Event()
        thread = threading.Thread(
            target=self._thread_main,
            args=(ready,),
            name=f"streamfsm-{self.correlation_id}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not ready.wait(timeout):
            raise ControllerStoppedError("the controller's loop thread did not start in time")

    def _thread_main(self, ready: threading.Event) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            engine = _Engine(self, loop)
            engine.thread = threading.current_thread()
            self._attach(engine, loop)
            await engine.run(ready.set)

        asyncio.run(main())

    def _on_loop_thread(self) -> bool:
        return self._loop is not None and threading.get_ident() == self._loop_thread

    def _attach(self, engine: _Engine, loop: asyncio.AbstractEventLoop) -> None:
        with self._core_lock:
            self._engine = engine
            self._loop = loop
            self._loop_thread = threading.get_ident()

    def _detach(self) -> None:
        """The engine has finished: commands touch the core directly from now on."""
        with self._core_lock:
            self._engine = None
            self._loop = None
            self._loop_thread = None
            self._thread = None
            self._root = None

    def _await_finishing_engine(self, timeout: float | None) -> None:
        """If the engine is winding down, wait until it is gone (so a new one can start)."""
        engine = self._engine
        if engine is not None and engine.finishing:
            engine.join(timeout)

    def _post(self, engine: _Engine, action: Callable[[], object]) -> None:
        """Run ``action`` on ``engine``'s loop; a no-op once that loop has closed."""
        if threading.get_ident() == self._loop_thread:
            action()
            return
        try:
            engine.loop.call_soon_threadsafe(action)
        except RuntimeError:
            # The loop closed between the check and the call: the engine is gone already.
            return

    def _direct(self, action: Callable[[], _T], read_only: bool) -> _T:
        """No engine takes commands: apply ``action`` to the core under the core lock.

        Commands it produces are discarded: with no engine there is no socket or timer for
        them to act on (a stop's close, for example, has nothing left to close).
        """
        with self._core_lock:
            result = action()
            if not read_only:
                self.core.drain()
            return result

    def _call(self, action: Callable[[], _T], *, read_only: bool = False) -> _T | None:
        """Run ``action`` on the loop (directly when already on it) and return its result.

        Core inputs go through the runner, which carries out their commands; ``read_only``
        actions run as they are. Returns None when the input was queued behind a running one.
        """
        with self._core_lock:
            engine = self._engine
            if engine is None:
                return self._direct(action, read_only)
            on_loop = threading.get_ident() == self._loop_thread
        if on_loop:
            if engine.finishing:
                return self._direct(action, read_only)
            return action() if read_only else engine.submit(action)
        if engine.finishing:
            self._wait_gone(engine)
            return self._call(action, read_only=read_only)
        future: concurrent.futures.Future[_T | None] = concurrent.futures.Future()

        def run() -> None:
            if future.done() or not future.set_running_or_notify_cancel():
                return
            if engine.finishing:
                future.set_exception(_EngineFinishing())
                return
            try:
                future.set_result(action() if read_only else engine.submit(action))
            except StreamError as error:
                future.set_exception(error)

        engine.pending.add(future)
        try:
            engine.loop.call_soon_threadsafe(run)
            return future.result(timeout=self.config.command_timeout)
        except (RuntimeError, _EngineFinishing):
            # The engine began winding down (or its loop closed) before taking the command.
            self._wait_gone(engine)
            return self._call(action, read_only=read_only)
        except concurrent.futures.TimeoutError as exc:
            raise ControllerStoppedError("the controller's loop did not take the command") from exc
        finally:
            engine.pending.discard(future)

    def _wait_gone(self, engine: _Engine) -> None:
        """Wait, bounded by the command timeout, for a winding-down engine to finish."""
        engine.join(self.config.command_timeout)

    def _subscribe_records(
        self,
    ) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[TransitionRecord]]:
        entry = (asyncio.get_running_loop(), asyncio.Queue[TransitionRecord]())
        self._iterators.append(entry)
        return entry

    def _on_record(self, record: TransitionRecord) -> None:
        """after every transition, on the loop: journal, log, gaps, listeners, waiters."""
        try:
            record = self._journal.append(record)
        except OSError as exc:
            # Nothing after a state change may fail: the record stays in memory, the loss is loud.
            self._log.error("journal_write_failed", error_type=type(exc).__name__, error=str(exc))
        self._log.info(
            "state_changed",
            src=record.src,
            dst=record.dst,
            trigger=record.trigger,
            reason=record.reason,
            error=record.error,
            code=record.code,
            attempt=record.attempt,
            delay=record.delay,
            connection_id=record.connection_id,
        )
        if record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value:
            self._tracker.open_gaps(self.core.book.desired, datetime.now(UTC), record.epoch)
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception as exc:  # noqa: BLE001 - a user listener must never break a transition
                self._log.error("listener_failed", error_type=type(exc).__name__, error=str(exc))
        for loop, queue in list(self._iterators):
            if loop is self._loop:
                queue.put_nowait(record)
            else:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, record)
                except RuntimeError:
                    # That loop has closed; its waiter can never read again.
                    self._iterators.remove((loop, queue))
        self._notify()

    def _notify(self) -> None:
        """Wake the threads blocked in ``wait_for`` or ``wait_synced``."""
        with self._changed:
            self._changed.notify_all()

    def _counter(self, name: str) -> int:
        """A dispatcher counter, summed over every engine this controller has run."""
        engine = self._engine
        current = int(getattr(engine.dispatcher, name)) if engine is not None else 0
        return self._carried[name] + current

    def _gap_found(self, report: GapReport) -> None:
        self._log.info(
            "data_gap",
            symbol=report.symbol,
            channel=report.channel,
            last_seen_before=report.last_seen_before.isoformat()
            if report.last_seen_before
            else None,
            first_seen_after=report.first_seen_after.isoformat(),
        )
        if self._on_gap is not None and self._engine is not None:
            self._engine.notify(self._on_gap, report)

    def _health(self) -> Health:
        core, tracker = self.core, self._tracker
        now = time.monotonic()
        engine = self._engine
        dispatcher = engine.dispatcher if engine is not None else None
        error = core.last_error
        return Health(
            correlation_id=self.correlation_id,
            state=core.state,
            time_in_state=max(0.0, now - core.state_since),
            attempts=core.attempts,
            reconnects=core.reconnects,
            connection_id=core.connection_id,
            breaker=core.breaker.state,
            breaker_trips=core.breaker.trips,
            consecutive_failures=core.breaker.failures,
            messages=dict(tracker.counts),
            last_message_age={
                channel: (now - tracker.activity.last_seen[channel])
                if channel in tracker.activity.last_seen
                else None
                for channel in CHANNELS
            },
            callback_errors=self._counter("callback_errors"),
            dropped_messages=self._counter("dropped"),
            queued_messages=dispatcher.pending if dispatcher is not None else 0,
            malformed_frames=tracker.malformed_frames,
            skipped_messages=tracker.skipped_messages,
            rejected_changes=core.rejected_changes,
            desired=core.book.desired,
            confirmed=core.book.confirmed,
            in_sync=core.book.in_sync and not core.change_in_flight,
            open_gaps=tracker.open_gap_count,
            recent_gaps=tuple(tracker.recent_gaps),
            last_error=f"{type(error).__name__}: {error}" if error is not None else None,
        )


class _Engine:
    """Everything that lives on the controller's loop while it runs."""

    def __init__(self, controller: StreamController, loop: asyncio.AbstractEventLoop) -> None:
        self.controller = controller
        self.loop = loop
        self.clock = LoopClock(loop)
        core = controller.core
        self.runner = Runner(core, self.clock, self, on_queued_error=self._queued_failed)
        submit = self.submit
        self.dispatcher = Dispatcher(
            controller._deliveries,
            controller.config.dispatch_queue_size,
            controller.config.overflow,
            controller._log,
            max_bytes=controller.config.dispatch_queue_bytes,
            max_age=controller.config.dispatch_max_age,
        )
        self.pending: set[concurrent.futures.Future[Any]] = set()
        #: Set by finish(): no more commands or deliveries; the loop is winding down.
        self.finishing = False
        #: Set when the engine has detached and nothing of it runs any more (any thread waits).
        self.done = threading.Event()
        #: The loop thread the controller spawned for it (None in the caller's own loop).
        self.thread: threading.Thread | None = None
        self._sessions: dict[int, tuple[Session, asyncio.Task[None]]] = {}
        self._group: asyncio.TaskGroup | None = None
        #: The task that runs user callbacks (an ``astop()`` from it must not await the engine).
        self.dispatch_task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self.hooks = SessionHooks(
            ready=lambda epoch, ack, rejection: submit(
                lambda: core.session_ready(epoch, ack, rejection)
            ),
            ended=lambda epoch, error: submit(lambda: core.session_ended(epoch, error)),
            change_acknowledged=lambda epoch, ack: submit(
                lambda: core.change_acknowledged(epoch, ack)
            ),
            change_rejected=lambda epoch, error: submit(lambda: core.change_rejected(epoch, error)),
            server_warning=self._server_warning,
        )

    def submit(self, action: Callable[[], _T]) -> _T | None:
        """Run a core input through the runner (queued when one is already running).

        Waiters (``wait_for``, ``wait_synced``) are woken afterwards: an input may change the
        subscription bookkeeping without a transition (an ack, a rejection).
        """
        try:
            return self.runner.submit(action)
        finally:
            self.controller._notify()

    def join(self, timeout: float | None) -> None:
        """Wait until the engine is gone and its loop thread, if it has one, has ended.

        Raises:
            ShutdownTimeoutError: when that takes longer than ``timeout``.
        """
        thread = self.thread
        if not self.done.wait(timeout):
            raise ShutdownTimeoutError(timeout)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise ShutdownTimeoutError(timeout)

    def finish(self) -> None:
        """Deliver nothing more and let :meth:`run` wind down; call it on the loop's thread."""
        self.finishing = True
        self.dispatcher.close()
        self._finished.set()

    def _queued_failed(self, error: StreamError) -> None:
        """A command queued behind another (from a listener, say) was refused: log it."""
        self.controller._log.warning(
            "queued_command_refused", error_type=type(error).__name__, error=str(error)
        )

    def notify(self, callback: Callable[[Any], object], argument: object) -> None:
        """Call ``callback(argument)`` from the dispatcher task, isolated like data callbacks."""
        self.dispatcher.notify(callback, argument)

    async def run(self, ready: Callable[[], None]) -> None:
        controller = self.controller
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self.dispatch_task = group.create_task(
                    self.dispatcher.run(), name="streamfsm-dispatch"
                )
                ready()
                await self._finished.wait()
                if controller.core.state is not State.STOPPED:
                    self.runner.submit(lambda: controller.core.request_stop("shutdown"))
                for _session, task in self._sessions.values():
                    task.cancel()
                self._sessions.clear()
                self.dispatcher.close()
        finally:
            core = controller.core
            if core.state is not State.STOPPED:
                # The loop is ending abnormally: record the stop; its commands have no I/O left.
                core.request_stop("engine_failed")
                core.drain()
            for name in controller._carried:
                controller._carried[name] += int(getattr(self.dispatcher, name))
            controller._journal.close()
            self.finishing = True
            controller._detach()
            for future in list(self.pending):
                if not future.done():
                    future.set_exception(_EngineFinishing())
            self.done.set()
            with controller._changed:
                controller._changed.notify_all()

    # ------------------------------------------------------------ SessionPort

    def open_session(self, command: OpenSession) -> None:
        assert self._group is not None  # sessions only open while the engine runs
        controller = self.controller
        session = Session(
            command,
            config=controller.config,
            credentials=controller._credentials,
            hooks=self.hooks,
            tracker=controller._tracker,
            dispatcher=self.dispatcher,
            clock=self.clock.monotonic,
            log=controller._log,
        )
        task = self._group.create_task(session.run(), name=f"streamfsm-session-{command.epoch}")
        self._sessions[command.epoch] = (session, task)
        task.add_done_callback(lambda _task: self._sessions.pop(command.epoch, None))

    def close_session(self, command: CloseSession) -> None:
        entry = self._sessions.pop(command.epoch, None)
        if entry is not None:
            entry[1].cancel()

    def send_change(self, command: SendChange) -> None:
        entry = self._sessions.get(command.epoch)
        if entry is None or self._group is None:
            return
        self._group.create_task(entry[0].send_change(command.action, command.symbols))

    def report_error(self, error: StreamError) -> None:
        controller = self.controller
        controller._log.warning("error_reported", error_type=type(error).__name__, error=str(error))
        if controller._on_error is not None:
            self.dispatcher.notify(controller._on_error, error)

    def _server_warning(self, error: ServerError) -> None:
        """A transient server error while streaming (407 slow client, 500): tell the user."""
        self.report_error(error)


class _EngineFinishing(Exception):  # noqa: N818 - an internal signal, never raised to users
    """A command reached an engine that is winding down; the caller retries without it."""


def _model_mode(models: ModelMode | str) -> ModelMode:
    try:
        return ModelMode(models)
    except ValueError:
        raise ConfigurationError("models", "'alpaca', 'fast' or 'raw'", models) from None


def _deliveries(
    mode: ModelMode, on_quote: Callback | None, on_trade: Callback | None, on_bar: Callback | None
) -> dict[type, Delivery]:
    """The callback of each fast struct type, with the conversion its model mode asks for."""
    wanted: list[tuple[str, Callback | None, tuple[type[MarketData], ...]]] = [
        ("on_quote", on_quote, (Quote,)),
        ("on_trade", on_trade, (Trade,)),
        ("on_bar", on_bar, (Bar, UpdatedBar, DailyBar)),
    ]
    deliveries: dict[type, Delivery] = {}
    for name, callback, kinds in wanted:
        if callback is None:
            continue
        for kind in kinds:
            convert: Callable[[Any], Any] | None = None
            if mode is ModelMode.ALPACA:
                convert = alpaca_converter(kind)
            elif mode is ModelMode.RAW:
                convert = raw_converter(kind)
            deliveries[kind] = Delivery(name, callback, convert)
    return deliveries


# Controllers still running at interpreter exit are stopped gracefully, never mid-frame.
_live_controllers: weakref.WeakSet[StreamController] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for controller in list(_live_controllers):
        if controller._loop is not None:
            controller.stop()
