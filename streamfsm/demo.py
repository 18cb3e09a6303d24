"""``streamfsm demo`` (interim): the simulator serving alpaca-py's own ``StockDataStream``.

It starts the simulator in a thread, connects the real alpaca-py client to it with the demo
key, prints the first quotes and trades that arrive and a per-symbol summary, and exits 0 after
``--duration`` seconds. The full controller demo replaces it later.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import threading
from typing import Any, Final

from streamfsm.logs import configure_logging
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

__all__ = ["add_parser", "run"]

DEFAULT_DURATION: Final = 5.0
DEFAULT_SYMBOLS: Final = ("AAPL", "MSFT", "NVDA", "SPY")
#: Lines of market data printed; the rest is only counted.
DEFAULT_LINES: Final = 12
#: Messages per second: slow enough to read, fast enough to stop alpaca-py promptly (it notices
#: a stop request only when a message arrives).
DEFAULT_RATE: Final = 20.0
#: alpaca-py connects, authenticates and subscribes in milliseconds on loopback.
CONNECT_TIMEOUT: Final = 10.0
#: How long alpaca-py gets to close by itself after ``stop()`` before its socket is reset.
STOP_GRACE: Final = 2.0
JOIN_TIMEOUT: Final = 5.0
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1


class _Printer:
    """alpaca-py handlers that print the first lines and count everything, thread-safely."""

    def __init__(self, lines: int) -> None:
        self._lines = lines
        self._lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def say(self, text: str) -> None:
        """Print one line; handler lines and these never interleave."""
        with self._lock:
            print(text, flush=True)

    def _emit(self, kind: str, symbol: str, text: str) -> None:
        with self._lock:
            self.counts[(symbol, kind)] += 1
            if sum(self.counts.values()) <= self._lines:
                print(f"{kind:<5} {symbol:<6} {text}", flush=True)

    async def on_quote(self, quote: Any) -> None:
        stamp = quote.timestamp.strftime("%H:%M:%S.%f")
        text = (
            f"bid {quote.bid_price:>9.2f} x {quote.bid_size:<4g} "
            f"ask {quote.ask_price:>9.2f} x {quote.ask_size:<4g} {stamp}"
        )
        self._emit("quote", quote.symbol, text)

    async def on_trade(self, trade: Any) -> None:
        stamp = trade.timestamp.strftime("%H:%M:%S.%f")
        self._emit("trade", trade.symbol, f"{trade.price:>9.2f} x {trade.size:<6g} {stamp}")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``demo`` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="stream simulated quotes and trades through alpaca-py's StockDataStream",
        description="Start the Alpaca-protocol simulator on loopback, connect alpaca-py's "
        "StockDataStream to it, print what arrives, and exit after --duration seconds.",
    )
    parser.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION, help="seconds (default %(default)s)"
    )
    parser.add_argument(
        "--symbols", nargs="+", default=list(DEFAULT_SYMBOLS), help="symbols to subscribe"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="messages per second (%(default)s)"
    )
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES, help="lines of data printed")
    parser.add_argument("--seed", type=int, default=0, help="random-walk seed (default 0)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    from alpaca.data.live import StockDataStream

    configure_logging(logging.WARNING)
    printer = _Printer(args.lines)
    config = SimConfig(rate=args.rate, seed=args.seed, symbol_limit=None)
    with SimulatorThread(config) as sim:
        printer.say(f"simulator at {sim.url('iex')}; alpaca-py StockDataStream connecting")
        stream = StockDataStream(DEMO_KEY_ID, DEMO_SECRET, url_override=sim.url("iex"))
        stream.subscribe_quotes(printer.on_quote, *args.symbols)
        stream.subscribe_trades(printer.on_trade, *args.symbols)
        thread = threading.Thread(target=stream.run, name="alpaca-py-stream", daemon=True)
        thread.start()
        try:
            (info,) = sim.wait_for_connections(1, CONNECT_TIMEOUT, subscribed=True)
        except TimeoutError:
            print("alpaca-py did not subscribe in time", file=sys.stderr)
            return EXIT_FAILED
        printer.say(f"connected: {info.encoding.value} frames, key {info.key}")
        threading.Event().wait(args.duration)
        stream.stop()
        thread.join(STOP_GRACE)
        if thread.is_alive():  # no message arrived to make alpaca-py notice the stop
            sim.drop()
            thread.join(JOIN_TIMEOUT)
        sent = sim.stats().messages_sent
    print(f"after {args.duration:g} s:")
    for symbol in args.symbols:
        quotes, trades = printer.counts[(symbol, "quote")], printer.counts[(symbol, "trade")]
        print(f"  {symbol:<6} {quotes:>5} quotes {trades:>5} trades (sent {sent.get(symbol, 0)})")
    return EXIT_OK
