"""``StreamController``: the public face of streamfsm, sync and async.

One event loop runs the core, the sessions and the deliveries (:mod:`streamfsm._aio.engine`), so
no lock guards the state; every command reaches the core as a value through one entry point. The
async API (``async with``) hosts it in the caller's loop; the sync API on a loop thread of its
own that lives from the first command until :meth:`StreamController.close`, ``__exit__`` or
interpreter exit, independent of ``stop()``/``start()``. Called on that loop (inside a callback),
every method runs directly and never waits. ``state``, ``is_connected()``, ``health()`` and
``journal()`` are safe to read from any thread.
"""

from __future__ import annotations

import atexit
import functools
import random
import uuid
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streamfsm._aio.arguments import check_arguments, check_channels_handled
from streamfsm._aio.bridge import EngineBridge, block_until_signalled
from streamfsm._aio.clock import SystemClock
from streamfsm._aio.deliveries import Deliveries, model_mode
from streamfsm._aio.engine import Engine
from streamfsm._aio.feed import TransitionFeed
from streamfsm._aio.health import Health
from streamfsm._aio.loops import loop_factory
from streamfsm._core.commands import RestartRequested, SymbolsRequested
from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import DataTracker, GapReport

if TYPE_CHECKING:
    from streamfsm.cluster.node import ClusterNode
from streamfsm.cluster.config import ClusterConfig
from streamfsm.config import ModelMode, StreamConfig
from streamfsm.controller.asyncio_api import AsyncLifecycle
from streamfsm.controller.membership import check_cluster
from streamfsm.controller.readings import Readings
from streamfsm.credentials import Credentials
from streamfsm.errors import ControllerStoppedError
from streamfsm.handlers import (
    BarHandler,
    CancelErrorHandler,
    CorrectionHandler,
    ErrorHandler,
    GapHandler,
    LuldHandler,
    NewsHandler,
    OrderbookHandler,
    QuoteHandler,
    StatusHandler,
    TradeHandler,
)
from streamfsm.logs import StreamLogger, pin_library_loggers
from streamfsm.porting import AlpacaStreamMethods, requested_change

__all__ = ["Health", "StreamController"]

#: How long ``stop()`` waits for the sessions to close by default; far above the 50 ms it needs.
DEFAULT_STOP_TIMEOUT = 5.0
#: How long ``start()`` waits for the loop thread to come up by default.
DEFAULT_START_TIMEOUT = 5.0


class StreamController(Readings, AsyncLifecycle, AlpacaStreamMethods):
    """Keeps one Alpaca market-data stream alive, driven by the transition table.

    Args:
        credentials: the Alpaca key id and secret.
        config: the stream configuration; defaults to stocks on IEX at Alpaca's endpoint.
        on_quote: called with each quote (sync function or coroutine function).
        on_trade: called with each trade.
        on_bar: called with each minute bar, and with updated and daily bars that have no
            handler of their own.
        on_updated_bar, on_daily_bar, on_status, on_luld, on_orderbook, on_news: called with
            each updated bar, daily bar, trading status, LULD band, crypto order book (snapshot
            or update, see ``reset``) and news article.
        on_correction, on_cancel_error: called with each trade correction and cancel error;
            they come with a ``trades`` subscription, as on the wire.
        on_error: called with each :class:`~streamfsm.errors.StreamError` the user must know
            about: fatal stops, rejected subscription changes, transient server errors.
        on_gap: called with a :class:`~streamfsm._core.tracking.GapReport` when data resumes for a
            symbol after an outage.
        models: ``alpaca`` (alpaca-py's own models), ``fast`` (streamfsm structs with the same
            attribute names) or ``raw`` (wire dicts).
        symbols: subscribed on every channel of the market that has a callback.
        correlation_id: stamped on every log event and journal record; generated when None.
        rng: the randomness of backoff jitter (seed it for reproducible runs).
        cluster: share one Alpaca connection with the other processes of this cluster (same
            cluster name, key, market and feed) over NATS; needs ``streamfsm[cluster]``. See
            ``docs/cluster.md``.
    """

    def __init__(
        self,
        credentials: Credentials,
        config: StreamConfig | None = None,
        *,
        on_quote: QuoteHandler | None = None,
        on_trade: TradeHandler | None = None,
        on_bar: BarHandler | None = None,
        on_updated_bar: BarHandler | None = None,
        on_daily_bar: BarHandler | None = None,
        on_status: StatusHandler | None = None,
        on_luld: LuldHandler | None = None,
        on_correction: CorrectionHandler | None = None,
        on_cancel_error: CancelErrorHandler | None = None,
        on_orderbook: OrderbookHandler | None = None,
        on_news: NewsHandler | None = None,
        on_error: ErrorHandler | None = None,
        on_gap: GapHandler | None = None,
        models: ModelMode | str = ModelMode.ALPACA,
        symbols: Iterable[str] = (),
        correlation_id: str | None = None,
        rng: random.Random | None = None,
        cluster: ClusterConfig | None = None,
    ) -> None:
        data = {
            "on_quote": on_quote,
            "on_trade": on_trade,
            "on_bar": on_bar,
            "on_updated_bar": on_updated_bar,
            "on_daily_bar": on_daily_bar,
            "on_status": on_status,
            "on_luld": on_luld,
            "on_correction": on_correction,
            "on_cancel_error": on_cancel_error,
            "on_orderbook": on_orderbook,
            "on_news": on_news,
        }
        handlers = {**data, "on_error": on_error, "on_gap": on_gap}
        initial = check_arguments(
            credentials, config, rng, correlation_id, handlers=handlers, symbols=symbols
        )
        check_cluster(cluster)
        pin_library_loggers()
        self._credentials = credentials
        self.cluster = cluster
        #: The cluster membership of the running engine (cluster mode only).
        self._node: ClusterNode | None = None
        #: Called with each lease transition record (cluster mode only).
        self._lease_listeners: list[Callable[[TransitionRecord], object]] = []
        self.config = config if config is not None else StreamConfig()
        self.correlation_id = correlation_id or f"sfsm-{uuid.uuid4().hex[:12]}"
        self._log = StreamLogger(
            correlation_id=self.correlation_id,
            feed=self.config.feed.value,
            key=credentials.fingerprint,
        )
        mode = model_mode(models)
        self._routes = Deliveries(mode, data)
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
        if initial:
            # No loop exists yet and no other thread holds the controller: the constructor is
            # the core's only writer, and an idle machine produces no command to carry out.
            self.core.handle(SymbolsRequested(add=initial))
        # The loop the engine runs on; a loop opened after close() gets a new engine.
        self._new_engine = functools.partial(
            Engine,
            self.core,
            config=self.config,
            credentials=credentials,
            tracker=self._tracker,
            deliveries=self._routes.table,
            clock=self._clock,
            log=self._log,
            on_error=on_error,
            on_gap=on_gap,
            on_handled=self._feed.changed,
            raw_frames=mode is ModelMode.RAW,
        )
        self._rng = rng if rng is not None else random.Random()
        self._bridge = EngineBridge(
            f"streamfsm-{self.correlation_id}",
            self._make_engine,
            self.config.command_timeout,
            loop_factory(self.config),
        )
        self._log.info("controller_created", endpoint=self.config.endpoint, models=mode.value)
        _live_controllers.add(self)

    def start(self, timeout: float | None = DEFAULT_START_TIMEOUT) -> None:
        """Begin the lifecycle and return at once (the connection proceeds in the background).

        Opens the controller's loop thread if none runs. Leaves the controller in
        ``connecting`` when there are symbols, else ``idle``.

        Raises:
            InvalidTransitionError: when it is already running.
            ControllerStoppedError: when the loop thread does not come up within ``timeout``.
        """
        engine = self._bridge.open(timeout)
        if self._bridge.on_loop_thread():
            engine.start()
        else:
            self._bridge.wait(engine.start_when_closed, self.config.command_timeout, stopping=False)

    def stop(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop from any state; returns when no session, socket, timer or callback remains.

        Idempotent. Undelivered data is discarded and counted as dropped; no callback starts
        after it returns. The loop thread stays (for a later :meth:`start`) until :meth:`close`.
        On the controller's own loop (a callback) it returns at once; sockets close right after.

        Raises:
            ShutdownTimeoutError: when the sessions are still closing after ``timeout``.
        """
        engine = self._bridge.open(DEFAULT_START_TIMEOUT)
        if self._bridge.on_loop_thread():
            engine.stop_now()
            return
        # Effective at once, even while the loop is busy inside a long frame of callbacks.
        engine.halt_deliveries(timeout)
        self._bridge.wait(engine.stop, timeout, stopping=True)

    def close(self, timeout: float | None = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop, then end the loop thread; idempotent. A later command opens a new loop.

        Raises:
            ShutdownTimeoutError: when the loop thread still runs after ``timeout``.
        """

        def stop() -> None:
            if self.core.state is not State.STOPPED:
                self.stop(timeout)

        self._bridge.close(timeout, stop)
        self._feed.close()

    def run(self, timeout: float | None = DEFAULT_START_TIMEOUT) -> None:
        """Start, block until Ctrl-C, SIGTERM or a fatal stop (see :attr:`last_error`), close.

        On the main thread both signals are caught while it blocks (no KeyboardInterrupt).

        Raises:
            InvalidTransitionError: when it is already running.
        """
        self.start(timeout)
        try:
            block_until_signalled(
                self._feed.wait, lambda: self.core.state is State.STOPPED, self._feed.changed
            )
        finally:
            self.close()

    def restart(self, *, force: bool = False) -> None:
        """Close the session and connect again; ``force`` also overrides an open breaker.

        Raises:
            InvalidTransitionError: when stopped (use :meth:`start`).
            ControllerStoppedError: when the controller was never started or has been closed.
        """
        if not self._bridge.running:
            raise ControllerStoppedError("restart() needs a running controller; call start()")
        self._bridge.send(RestartRequested(force=force))

    def subscribe(self, **channels: Iterable[str] | str) -> None:
        """Add symbols per channel; works in every state, from any thread and from callbacks.

        Keywords are the market's channels: ``quotes``, ``trades``, ``bars``, ``updated_bars``,
        ``daily_bars``, ``statuses``, ``lulds`` (stocks), ``orderbooks`` (crypto), ``news``.
        Corrections and cancel errors come with ``trades``. While subscribed only the difference
        is sent, else the next session applies it. A refusal by the server (405 symbol limit,
        413 ``*`` for option quotes) reaches ``on_error`` and ``last_error`` and keeps the
        earlier subscriptions.

        Raises:
            InvalidSymbolError: for a symbol outside the market's grammar, a channel the market
                does not have, or ``*`` where the market refuses it; nothing changes then.
            ConfigurationError: for a keyword that names no channel, or a channel that gets
                symbols but has no handler (``on_trade`` for trades, ...).
        """
        change = requested_change(channels, self.config.market)
        check_channels_handled(change, self._routes.receives)
        self._bridge.send(SymbolsRequested(add=change))

    def unsubscribe(self, **channels: Iterable[str] | str) -> None:
        """Remove symbols per channel (the keywords of :meth:`subscribe`); any state or thread.

        Raises:
            InvalidSymbolError: when a symbol is invalid; nothing changes then.
            ConfigurationError: for a keyword that names no channel.
        """
        self._bridge.send(SymbolsRequested(remove=requested_change(channels, self.config.market)))

    def _on_routes(self, action: Callable[[Deliveries], None]) -> None:
        """Change the per-symbol handlers on the loop, between two frames."""
        self._bridge.open(self.config.command_timeout)
        self._bridge.call(lambda: action(self._routes))

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

    def _on_record(self, record: TransitionRecord) -> None:
        """After every transition, on the loop: open gaps on a loss, then the feed."""
        if record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value:
            self._tracker.open_gaps(self.core.book.desired, datetime.now(UTC), record.epoch)
        self._feed.publish(record)

    def _gap_found(self, report: GapReport) -> None:
        self._bridge.gap_found(report)

    def _make_engine(self) -> Engine:
        """A fresh engine for a new loop; in cluster mode with a membership of its own."""
        if self.cluster is None:
            return self._new_engine()
        from streamfsm.cluster.node import ClusterNode

        node = ClusterNode(
            self.cluster,
            config=self.config,
            credentials=self._credentials,
            log=self._log,
            rng=self._rng,
            lease_listeners=self._lease_listeners,
        )
        self._node = node
        return self._new_engine(session_factory=node.session, on_stopping=node.leave)


# Controllers still running at interpreter exit are closed gracefully, never mid-frame.
_live_controllers: weakref.WeakSet[StreamController] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for controller in list(_live_controllers):
        if controller._bridge.running and controller._bridge.host is None:
            controller.close()
