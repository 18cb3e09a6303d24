"""``StreamController``: the public face of streamfsm, sync and async.

One asyncio event loop owns the core, the sessions and the deliveries
(:mod:`streamfsm._aio.engine`): every transition happens on that loop, so no lock guards the
state. Every command reaches the core as a value through the engine's one entry point.

The async API (``async with StreamController(...)``) runs the engine in the caller's loop. The sync
API runs it on a loop thread of its own (:mod:`streamfsm._portal`), which lives from the first
command (``start()`` or ``with``) until :meth:`StreamController.close`, ``__exit__`` or interpreter
exit, independent of the machine: ``stop()`` stops the machine and its sessions, a later
``start()`` connects again on the same loop. Called from the loop itself (from inside a callback)
every method runs directly and never waits, so it cannot deadlock.

Reading ``state``, ``is_connected()``, ``health()`` and ``journal()`` is safe from any thread.
"""

from __future__ import annotations

import asyncio
import atexit
import random
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from streamfsm._aio.clock import SystemClock
from streamfsm._aio.deliveries import deliveries_for, model_mode
from streamfsm._aio.engine import Engine
from streamfsm._aio.feed import TransitionFeed
from streamfsm._aio.health import Health, snapshot
from streamfsm._core.commands import Input, RestartRequested, SymbolsRequested
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm._core.tracking import DataTracker, GapReport
from streamfsm._portal import LoopPortal, PortalClosedError
from streamfsm._validate import require_instance, require_text
from streamfsm.config import ModelMode, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ConfigurationError,
    ControllerStoppedError,
    ShutdownTimeoutError,
    StreamError,
)
from streamfsm.handlers import (
    BarHandler,
    ErrorHandler,
    GapHandler,
    QuoteHandler,
    TradeHandler,
    check_handler,
)
from streamfsm.logs import StreamLogger, pin_library_loggers

__all__ = ["Health", "StreamController"]

_T = TypeVar("_T")
#: Longest correlation id accepted; it is stamped on every log event and journal record.
MAX_CORRELATION_ID = 128
#: The constructor argument that receives each channel's data.
_HANDLER_OF = {"quotes": "on_quote", "trades": "on_trade", "bars": "on_bar"}
#: How long ``stop()`` waits for the sessions to close by default; far above the 50 ms it needs.
DEFAULT_STOP_TIMEOUT = 5.0
#: How long ``start()`` waits for the loop thread to come up by default.
DEFAULT_START_TIMEOUT = 5.0


class StreamController:
    """Keeps one Alpaca market-data stream alive, driven by the transition table.

    Args:
        credentials: the Alpaca key id and secret.
        config: the stream configuration; defaults to IEX on Alpaca's endpoint.
        on_quote: called with each quote (sync function or coroutine function).
        on_trade: called with each trade.
        on_bar: called with each minute, updated or daily bar.
        on_error: called with each :class:`~streamfsm.errors.StreamError` the user must know
            about: fatal stops, rejected subscription changes, transient server errors.
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
        on_quote: QuoteHandler | None = None,
        on_trade: TradeHandler | None = None,
        on_bar: BarHandler | None = None,
        on_error: ErrorHandler | None = None,
        on_gap: GapHandler | None = None,
        models: ModelMode | str = ModelMode.ALPACA,
        symbols: Iterable[str] = (),
        correlation_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        require_instance("credentials", credentials, Credentials, "a streamfsm.Credentials")
        handlers = {"on_quote": on_quote, "on_trade": on_trade, "on_bar": on_bar}
        for name, handler in {**handlers, "on_error": on_error, "on_gap": on_gap}.items():
            check_handler(name, handler)
        if config is not None:
            require_instance("config", config, StreamConfig, "a StreamConfig or None")
        if rng is not None:
            require_instance("rng", rng, random.Random, "a random.Random or None")
        if correlation_id is not None:
            require_text("correlation_id", correlation_id, max_length=MAX_CORRELATION_ID)
        if isinstance(symbols, Iterable) and not isinstance(symbols, str | bytes):
            symbols = tuple(symbols)  # read once: a generator serves every channel
        initial = Subscription(
            quotes=symbols if on_quote else (),
            trades=symbols if on_trade else (),
            bars=symbols if on_bar else (),
        )
        if not any(handlers.values()) and Subscription(quotes=symbols):
            raise ConfigurationError(
                "symbols", "on_quote, on_trade or on_bar to receive them", symbols
            )
        pin_library_loggers()
        self._credentials = credentials
        self._handlers = handlers
        self.config = config if config is not None else StreamConfig()
        self.correlation_id = correlation_id or f"sfsm-{uuid.uuid4().hex[:12]}"
        self._log = StreamLogger(
            correlation_id=self.correlation_id,
            feed=self.config.feed.value,
            key=credentials.fingerprint,
        )
        mode = model_mode(models)
        self._on_error = on_error
        self._on_gap = on_gap
        self._clock = SystemClock()
        self._feed = TransitionFeed(self.config, self._log, self._clock.monotonic)
        self.core = ConnectionCore(
            self.config,
            clock=self._clock.monotonic,
            wall=lambda: datetime.now(UTC),
            rng=rng if rng is not None else random.Random(),
            correlation_id=self.correlation_id,
            on_record=self._on_record,
        )
        self._tracker = DataTracker(self.core.activity, self._gap_found)
        self._deliveries = deliveries_for(mode, on_quote, on_trade, on_bar)
        if initial:
            # No loop exists yet and no other thread holds the controller: the constructor is
            # the core's only writer, and an idle machine produces no command to carry out.
            self.core.handle(SymbolsRequested(add=initial))
        self._portal = LoopPortal(f"streamfsm-{self.correlation_id}")
        # One thread at a time opens or closes the loop the engine runs on.
        self._opening = threading.RLock()
        #: The engine of the running loop (or of the last one, after close()); None before the
        #: first command. A loop opened after close() gets a new engine, counters from zero.
        self._engine: Engine | None = None
        self._host: asyncio.Task[None] | None = None
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
        return self._feed.journal.records()

    def health(self) -> Health:
        """A consistent snapshot, taken on the controller's loop when one runs."""
        engine = self._engine
        if engine is None or not self._portal.running:
            # No loop writes: the counters of the last loop, if any, are final.
            dispatcher = engine.dispatcher if engine is not None else None
            return snapshot(self.correlation_id, self.core, self._tracker, dispatcher, self._now())
        return self._on_loop(
            lambda: snapshot(
                self.correlation_id, self.core, self._tracker, engine.dispatcher, self._now()
            )
        )

    def desired(self) -> Subscription:
        """The symbols asked for, per channel (a frozen value; safe from any thread).

        A change the server refused (405) leaves it, so it is what the next change starts from.
        """
        return self.core.book.desired

    def arrival_time(self) -> float | None:
        """Inside a market-data callback: when the frame being delivered arrived, else None.

        Monotonic seconds on the controller's clock (``time.monotonic``): the arrival time that
        travels with the frame through the dispatcher's backlog.
        """
        engine = self._engine
        return engine.dispatcher.current_received_at if engine is not None else None

    def delivery_lag(self) -> float:
        """Inside a market-data callback: seconds since the frame being delivered arrived.

        A callback that records prices should date them by arrival, not by delivery: a backlog
        behind slow callbacks would otherwise make old prices look fresh. Elsewhere it is 0.0.
        """
        engine = self._engine
        arrived = engine.dispatcher.current_received_at if engine is not None else None
        return max(0.0, self._now() - arrived) if arrived is not None else 0.0

    def add_listener(self, listener: Callable[[TransitionRecord], object]) -> None:
        """Call ``listener(record)`` on the controller's loop after every transition.

        A listener that raises is logged and otherwise ignored.

        Raises:
            ConfigurationError: when ``listener`` is not callable.
        """
        self._feed.add_listener(check_handler("listener", listener) or listener)

    def wait_for(self, state: State, timeout: float | None = None) -> bool:
        """Block until the controller is in ``state``; False when ``timeout`` passes first.

        Never call it from a callback: the loop it waits on is the one running the callback.
        """
        return self._feed.wait(lambda: self.core.state is state, timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until subscribed with the acknowledged set equal to the desired set."""
        core = self.core
        return self._feed.wait(
            lambda: (
                core.state is State.SUBSCRIBED and core.book.in_sync and not core.change_in_flight
            ),
            timeout,
        )

    # ------------------------------------------------------------ sync commands

    def start(self, timeout: float | None = DEFAULT_START_TIMEOUT) -> None:
        """Begin the lifecycle and return at once (the connection proceeds in the background).

        Opens the controller's loop thread if none runs. Leaves the controller in
        ``connecting`` when there are symbols, else ``idle``.

        Raises:
            InvalidTransitionError: when it is already running.
            ControllerStoppedError: when the loop thread does not come up within ``timeout``.
        """
        engine = self._loop_engine(timeout)
        if self._portal.on_loop_thread():
            engine.start()
            return
        try:
            self._portal.run(engine.start_when_closed, self.config.command_timeout)
        except TimeoutError as exc:
            raise ControllerStoppedError("the controller's loop did not take the command") from exc
        except PortalClosedError as exc:
            raise ControllerStoppedError("the controller's loop has been closed") from exc

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop from any state; returns when no session, socket, timer or callback remains.

        Idempotent. Undelivered market data is discarded (and counted as dropped); no callback
        starts after it returns. The loop thread stays for a later :meth:`start` until
        :meth:`close`. Called on the controller's own loop (inside a callback, or from async code
        that shares the loop) it stops and returns at once; the sockets close right after.

        Raises:
            ShutdownTimeoutError: when the sessions are still closing after ``timeout``.
        """
        engine = self._loop_engine(DEFAULT_START_TIMEOUT)
        if self._portal.on_loop_thread():
            engine.stop_now()
            return
        # Effective at once, even while the loop is busy inside a long frame of callbacks.
        engine.halt_deliveries(timeout)
        try:
            self._portal.run(engine.stop, timeout)
        except TimeoutError as exc:
            raise ShutdownTimeoutError(timeout) from exc
        except PortalClosedError as exc:
            raise ControllerStoppedError("the controller was closed while stopping") from exc

    def close(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop, then end the controller's loop thread; idempotent. A later command opens a
        new loop (with delivery counters from zero).

        Raises:
            ShutdownTimeoutError: when the loop thread still runs after ``timeout``.
        """
        running = self.core.state is not State.STOPPED
        if self._portal.on_loop_thread():
            if running:
                self.stop()
            self._portal.close(timeout)
            return
        with self._opening:
            if self._portal.running and running:
                self.stop(timeout)
            try:
                self._portal.close(timeout)
            except TimeoutError as exc:
                raise ShutdownTimeoutError(timeout) from exc
        self._feed.close()

    def restart(self, *, force: bool = False) -> None:
        """Close the session and connect again; ``force`` also overrides an open breaker.

        Raises:
            InvalidTransitionError: when stopped (use :meth:`start`).
            ControllerStoppedError: when the controller was never started or has been closed.
        """
        if self._engine is None or not self._portal.running:
            raise ControllerStoppedError("restart() needs a running controller; call start()")
        self._send(RestartRequested(force=force))

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
            ConfigurationError: when a channel gets symbols but the controller has no handler
                for it (``on_trade`` for trades, ...): its data would go nowhere.
        """
        change = Subscription(trades=trades, quotes=quotes, bars=bars)
        for channel in CHANNELS:
            name = _HANDLER_OF[channel]
            if change.channel(channel) and self._handlers[name] is None:
                raise ConfigurationError(
                    name, f"a handler, to receive the {channel} subscribed", None
                )
        self._send(SymbolsRequested(add=change))

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

        engine = self._loop_engine(DEFAULT_START_TIMEOUT)

        def remove() -> None:
            engine.handle(SymbolsRequested(remove=change))
            self._tracker.forget(pairs)

        self._on_loop(remove)

    # ------------------------------------------------------------ async twins

    async def astart(self) -> None:
        """Begin the lifecycle inside the running loop (the async twin of :meth:`start`)."""
        engine = await self._aloop_engine()
        if engine is None:
            await asyncio.to_thread(self.start)
        elif asyncio.current_task() is engine.dispatch_task:
            engine.start()
        else:
            await engine.start_when_closed()

    async def astop(self) -> None:
        """Stop and wait until no session or socket remains (the async twin of :meth:`stop`)."""
        engine = await self._aloop_engine()
        if engine is None:
            await asyncio.to_thread(self.stop)
        elif asyncio.current_task() is engine.dispatch_task:
            # Inside an async callback: awaiting the sessions here is fine, but awaiting the
            # dispatcher would wait for this very callback. Stop now; sockets close right after.
            engine.stop_now()
        else:
            await engine.stop()

    async def aclose(self) -> None:
        """Stop, then end the engine hosted in this loop (the async twin of :meth:`close`)."""
        host = self._host
        if host is None or not self._portal.on_loop_thread():
            await asyncio.to_thread(self.close)
            return
        await self.astop()
        self._portal.close(None)
        await host
        self._host = None
        self._feed.close()

    async def await_state(self, state: State) -> None:
        """Wait in the loop until the controller is in ``state``; bound it with asyncio.timeout."""
        queue = self._feed.open_queue()
        try:
            while self.core.state is not state:
                await queue.get()
        finally:
            self._feed.close_queue(queue)

    async def transitions(self) -> AsyncIterator[TransitionRecord]:
        """Yield every transition record from now on, in the controller's loop."""
        queue = self._feed.open_queue()
        try:
            while True:
                yield await queue.get()
        finally:
            self._feed.close_queue(queue)

    async def __aenter__(self) -> StreamController:
        await self.astart()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> StreamController:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"StreamController(correlation_id={self.correlation_id!r}, "
            f"state={self.core.state.value!r}, key={self._credentials.fingerprint!r})"
        )

    # ------------------------------------------------------------ plumbing

    def _now(self) -> float:
        return self._clock.monotonic()

    def _new_engine(self) -> Engine:
        return Engine(
            self.core,
            config=self.config,
            credentials=self._credentials,
            tracker=self._tracker,
            deliveries=self._deliveries,
            clock=self._clock,
            log=self._log,
            on_error=self._on_error,
            on_handled=self._feed.changed,
        )

    def _loop_engine(self, timeout: float | None) -> Engine:
        """The engine of the running loop; opens the loop thread first when none runs.

        Raises:
            ControllerStoppedError: when the loop thread does not come up within ``timeout``.
        """
        engine = self._engine
        if engine is not None and self._portal.running:
            return engine
        with self._opening:
            if self._engine is None or not self._portal.running:
                engine = self._new_engine()
                try:
                    self._portal.open(engine.run, timeout)
                except TimeoutError as exc:
                    raise ControllerStoppedError("the controller's loop did not start") from exc
                self._engine = engine
            return self._engine

    async def _aloop_engine(self) -> Engine | None:
        """The engine, hosted in the running loop when none runs; None when it runs elsewhere."""
        if self._engine is not None and self._portal.running:
            return self._engine if self._portal.on_loop_thread() else None
        engine = self._new_engine()
        ready = asyncio.Event()
        host = asyncio.get_running_loop().create_task(
            self._portal.host(engine.run, ready.set), name="streamfsm-engine"
        )
        await ready.wait()
        if host.done():
            host.result()  # re-raises why the engine could not start
        self._engine, self._host = engine, host
        return engine

    def _send(self, event: Input) -> None:
        """The one way a command reaches the core: as a value, on the controller's loop."""
        engine = self._loop_engine(DEFAULT_START_TIMEOUT)
        self._on_loop(lambda: engine.handle(event))

    def _on_loop(self, action: Callable[[], _T]) -> _T:
        """Run ``action`` on the controller's loop and return its result (directly on it).

        Raises:
            ControllerStoppedError: when the loop does not take it within the command timeout
                or is closed meanwhile.
        """
        try:
            return self._portal.call(action, timeout=self.config.command_timeout)
        except TimeoutError as exc:
            raise ControllerStoppedError("the controller's loop did not take the command") from exc
        except PortalClosedError as exc:
            raise ControllerStoppedError("the controller's loop has been closed") from exc

    def _on_record(self, record: TransitionRecord) -> None:
        """After every transition, on the loop: open gaps on a loss, then the feed."""
        if record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value:
            self._tracker.open_gaps(self.core.book.desired, datetime.now(UTC), record.epoch)
        self._feed.publish(record)

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
        engine = self._engine
        if self._on_gap is not None and engine is not None:
            engine.notify(self._on_gap, report)


# Controllers still running at interpreter exit are closed gracefully, never mid-frame.
_live_controllers: weakref.WeakSet[StreamController] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for controller in list(_live_controllers):
        if controller._portal.running and controller._host is None:
            controller.close()
