"""``streamfsm run``: live quotes from Alpaca for a few symbols, until Ctrl-C.

    APCA_API_KEY_ID=... APCA_API_SECRET_KEY=... streamfsm run --symbols AAPL,MSFT
    streamfsm run --symbols AAPL --url ws://127.0.0.1:8765/v2/iex --log-level info  # simulator

It builds a :class:`~streamfsm.pricing.service.PricingService` from ``Credentials.from_env()`` and
shows
the state, the time in state and a quote table: a ``rich`` live view on a terminal when ``rich``
(the ``demo`` extra) is installed, plain lines otherwise (one per state change, and the quotes
every few seconds). The first Ctrl-C stops
gracefully and prints a summary; a second one, while stopping, exits at once.

Exit status: 0 after Ctrl-C; 1 when the stream stopped on a fatal error (402 auth failed, 409
insufficient subscription, ...), printed as one line; 2 for missing credentials or invalid
arguments; 130 when a second Ctrl-C forced the exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Final, TextIO, cast

from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm.cli._quote_text import MS_PER_SECOND, brief, price_text
from streamfsm.cli._terminal import RICH_HINT, is_terminal, load_live_view
from streamfsm.cli.live_args import add_parser, environment_credentials
from streamfsm.config import StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import ConfigurationError, StreamError
from streamfsm.logs import logging_to
from streamfsm.pricing import PricingService

if TYPE_CHECKING:
    from rich.console import RenderableType

    from streamfsm.metrics import MetricsServer

__all__ = ["add_parser", "build_service", "run"]

EXIT_OK: Final = 0
EXIT_FATAL: Final = 1
EXIT_USAGE: Final = 2
#: The shell's convention for a process ended by SIGINT.
EXIT_FORCED: Final = 128 + signal.SIGINT

PROG: Final = "streamfsm run"
LIVE_REFRESH_PER_SECOND: Final = 4
#: Seconds between quote lines when the output is not a terminal.
STATUS_INTERVAL: Final = 5.0


class _CurrentStderr:
    """A text stream that writes to whatever ``sys.stderr`` is at the moment of writing.

    A logging handler binds its stream once; resolving it late lets ``rich.live`` redirect log lines
    above the live view instead of through it.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def build_service(args: argparse.Namespace, credentials: Credentials) -> PricingService:
    """The pricing service ``args`` describe, tracking its symbols; nothing is connected yet.

    Raises:
        ConfigurationError: naming the flag's field, for a value the configuration refuses.
        InvalidSymbolError: for a symbol that is not a ticker.
    """
    config = StreamConfig(feed=args.feed, url=args.url, journal_path=args.journal)
    service = PricingService(credentials, config, max_age=args.max_age)
    service.track(args.symbols)
    return service


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run ``streamfsm run`` with parsed ``args``; returns the exit status."""
    out = stdout if stdout is not None else sys.stdout
    credentials = environment_credentials(PROG)
    if credentials is None:
        return EXIT_USAGE
    try:
        service = build_service(args, credentials)
    except ConfigurationError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return EXIT_USAGE
    except StreamError as exc:
        sys.stderr.write(f"{PROG}: {type(exc).__name__}: {exc}\n")
        return EXIT_USAGE
    try:
        endpoints = _serve_metrics(service, args)
    except (ImportError, OSError) as exc:
        sys.stderr.write(f"{PROG}: cannot serve metrics: {exc}\n")
        return EXIT_USAGE
    level = logging.getLevelNamesMapping()[args.log_level.upper()]
    try:
        if endpoints is not None:
            out.write(f"metrics: {endpoints.url}/metrics, /healthz, /readyz\n")
            out.flush()
        # The handler only calls write() and flush() on the stream.
        with logging_to(cast(TextIO, _CurrentStderr()), level, json=args.log_json):
            return _Session(service, out, args).run()
    finally:
        if endpoints is not None:
            endpoints.close()


def _serve_metrics(service: PricingService, args: argparse.Namespace) -> MetricsServer | None:
    """The endpoint server ``--metrics-port`` asks for, or None.

    Raises:
        ImportError: without the metrics extra (prometheus_client).
        OSError: when the address cannot be bound.
    """
    if args.metrics_port is None:
        return None
    try:
        from streamfsm.metrics import serve
    except ImportError as exc:
        raise ImportError("install the metrics extra: pip install 'streamfsm[metrics]'") from exc
    return serve(service.controller, port=args.metrics_port, host=args.metrics_host)


class _Session:
    """One ``streamfsm run``: start, show, stop on Ctrl-C or a fatal error, summarise."""

    def __init__(self, service: PricingService, out: TextIO, args: argparse.Namespace):
        self.service = service
        self.out = out
        wants_live = not args.plain and is_terminal(out)
        # The live view's rich.live; None prints plain lines (piped, --plain, or no rich).
        self.rich_live = load_live_view("rich.live") if wants_live else None
        self.plain = self.rich_live is None
        self.symbols: tuple[str, ...] = args.symbols
        self.events: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.fatal = threading.Event()
        self.started = time.monotonic()
        if wants_live and self.plain:
            self._say(RICH_HINT)
        service.controller.add_listener(self._on_transition)

    def _on_transition(self, record: TransitionRecord) -> None:
        """Listener, on the controller's loop: queue a line; a fatal stop ends the run."""
        if record.src == record.dst:
            return
        cause = f" ({record.reason}{f', {record.error}' if record.error else ''})"
        delay = f", next attempt in {record.delay:.1f} s" if record.delay is not None else ""
        self.events.put(f"state {record.dst}{cause if record.error else ''}{delay}")
        if record.dst == State.STOPPED.value and record.error is not None:
            self.fatal.set()

    def _say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.out.write(f"{elapsed:7.1f}s  {text}\n")
        self.out.flush()

    def run(self) -> int:
        previous = signal.getsignal(signal.SIGINT)
        interrupted = False
        try:
            self.service.start()
            try:
                self._show()
            except KeyboardInterrupt:
                interrupted = True
                signal.signal(signal.SIGINT, _force_exit)
                self._say("stopping (Ctrl-C again to force)")
            self.service.stop()
        finally:
            signal.signal(signal.SIGINT, previous)
        self._drain()
        self._summary()
        error = self.service.controller.last_error
        if not interrupted and error is not None and error.fatal:
            sys.stderr.write(f"{PROG}: {type(error).__name__}: {error}\n")
            return EXIT_FATAL
        return EXIT_OK

    def _show(self) -> None:
        """Until a fatal stop (or Ctrl-C, which raises KeyboardInterrupt here)."""
        if self.rich_live is not None:
            from rich.console import Console

            with self.rich_live.Live(
                console=Console(file=self.out, highlight=False, soft_wrap=True),
                get_renderable=self._render,
                auto_refresh=False,
                redirect_stderr=True,
            ) as live:
                # Redrawn on this thread: rich's refresh thread would outlive the view.
                while not self.fatal.wait(1 / LIVE_REFRESH_PER_SECOND):
                    live.refresh()
            return
        next_quotes = time.monotonic() + STATUS_INTERVAL
        while not self.fatal.is_set():
            try:
                self._say(self.events.get(timeout=max(0.0, next_quotes - time.monotonic())))
            except queue.Empty:
                next_quotes += STATUS_INTERVAL
                self._say(self._quotes_line())

    def _drain(self) -> None:
        while True:
            try:
                text = self.events.get_nowait()
            except queue.Empty:
                return
            if self.plain:
                self._say(text)

    def _quotes_line(self) -> str:
        parts = []
        for symbol in self.symbols:
            snapshot = self.service.quote(symbol)
            parts.append(f"{symbol} {brief(snapshot)}")
        return "quotes: " + "; ".join(parts)

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        health = self.service.health()
        header = Text.assemble(
            ("streamfsm run  ", "bold"),
            f"{health.correlation_id}  state ",
            (health.state.value, "bold green" if health.state is State.SUBSCRIBED else "bold red"),
            f" for {health.time_in_state:.1f} s  attempts {health.attempts}  "
            f"reconnects {health.reconnects}  (Ctrl-C to stop)",
        )
        table = Table(expand=False)
        for column in ("symbol", "bid", "ask", "mid", "spread", "age", "stale", "last trade"):
            table.add_column(column, justify="left" if column in ("symbol", "stale") else "right")
        for row in self._rows():
            table.add_row(*row)
        return Group(header, table)

    def _rows(self) -> Iterator[tuple[str, ...]]:
        for symbol in self.symbols:
            quote = self.service.quote(symbol)
            trade = self.service.last_trade(symbol)
            last = f"{price_text(trade.price)} x {trade.size}" if trade is not None else "-"
            if quote is None:
                yield (symbol, "-", "-", "-", "-", "-", "no quote yet", last)
                continue
            yield (
                symbol,
                price_text(quote.bid),
                price_text(quote.ask),
                price_text(quote.mid),
                price_text(quote.spread),
                f"{quote.age * MS_PER_SECOND:.0f} ms",
                quote.stale_reason.value if quote.stale_reason is not None else "fresh",
                last,
            )

    def _summary(self) -> None:
        health = self.service.health()
        lines = [
            "",
            f"summary: {time.monotonic() - self.started:.1f} s, "
            f"{health.messages.get('quotes', 0)} quotes, {health.messages.get('trades', 0)} "
            f"trades; connection attempts {health.attempts}, reconnects {health.reconnects}, "
            f"gaps reported {len(health.recent_gaps)}, callback errors {health.callback_errors}",
        ]
        lines += [f"  {symbol:<6} {brief(self.service.quote(symbol))}" for symbol in self.symbols]
        if health.last_error is not None:
            lines.append(f"  last error: {health.last_error}")
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()


def _force_exit(_signum: int, _frame: FrameType | None) -> None:
    """The second Ctrl-C: leave now, without waiting for the graceful stop."""
    sys.stderr.write(f"{PROG}: forced exit\n")
    sys.stderr.flush()
    os._exit(EXIT_FORCED)
