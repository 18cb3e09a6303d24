"""``streamfsm demo``: the whole product in one command, on the embedded simulator, no account.

The demo starts the simulator with seeded data and a
:class:`~streamfsm.pricing.service.PricingService`
tracking eight symbols (two more are offered at a low priority and evicted by ``max_symbols``),
then plays a fault script against it:

====  ====================  ===================================================================
 #    fault                 what recovery means
====  ====================  ===================================================================
 1    dropped connection    TCP reset; reconnect after backoff; every symbol freshly priced
 2    mute socket           the socket stays open but silent; the stale watchdog reconnects
 3    three 406s            connection limit three times; each waits the 406 cool-down
 4    slow auth             the auth reply outlasts the auth timeout; the retry succeeds
 5    malformed frame       counted and skipped; no reconnect, prices keep flowing
 6    callback raises once  counted and logged; no state change, prices keep flowing
====  ====================  ===================================================================

A fault counts as recovered when the stream is subscribed again (for faults that break the
connection) and every tracked symbol has a fresh quote received after the fault. While it runs
the demo shows the state, the time in state, the faults, a quote table and counters: a ``rich``
live view on a terminal (``rich`` comes with the ``demo`` extra), plain periodic lines otherwise
(CI, pipes, or no ``rich``). It ends after
``--duration`` seconds, prints a summary, and writes the transition journal (JSON Lines), the
state diagram (Mermaid), a machine-readable summary and the log to ``--output``.

The demo's timings are short on purpose (see :mod:`streamfsm.cli.demo.settings`) so that every
recovery fits in seconds; production defaults are far more patient (1 s backoff, 60 s stale
threshold, 90 s cool-down after a 406). The run itself is :func:`~streamfsm.cli.demo.play.run_demo`.

Exit status: 0 when every fault was recovered from, 1 otherwise (the reasons are printed), 2 for
invalid arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final, TextIO

from streamfsm.cli.demo.faults import FAULTS, FaultResult, FaultSpec
from streamfsm.cli.demo.play import OUTPUT_PREFIX, DemoOptions, DemoReport, run_demo
from streamfsm.cli.demo.settings import DEFAULT_DURATION, DEFAULT_SEED, DEMO_CONFIG

__all__ = [
    "DEMO_CONFIG",
    "FAULTS",
    "DemoOptions",
    "DemoReport",
    "FaultResult",
    "FaultSpec",
    "add_parser",
    "main",
    "run",
    "run_demo",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

DESCRIPTION: Final = (
    "Run a pricing service against the embedded Alpaca simulator, inject a dropped connection, "
    "a mute socket, three 406s, a slow auth, a malformed frame and a failing callback, and "
    "show how the stream recovers from each. Needs no account and no network."
)
# ---------------------------------------------------------------- command line


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=_duration,
        default=DEFAULT_DURATION,
        help=f"seconds the demo runs (default {DEFAULT_DURATION:g})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"seeds the simulated prices and the backoff jitter (default {DEFAULT_SEED})",
    )
    parser.add_argument("--no-faults", action="store_true", help="a calm run without faults")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"directory for the journal, diagram and summary (default: a new {OUTPUT_PREFIX}*)",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain lines even when the output is a terminal"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on 127.0.0.1:PORT during the run (0: any "
        "free port) and keep the last scrape in the output directory",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``demo`` on the ``streamfsm`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="scripted faults against the embedded simulator, with a live view",
        description=DESCRIPTION,
    )
    _arguments(parser)
    return parser


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run ``streamfsm demo`` with parsed ``args``; returns the exit status."""
    options = DemoOptions(
        duration=args.duration,
        seed=args.seed,
        faults=not args.no_faults,
        output=args.output,
        plain=args.plain,
        metrics_port=args.metrics_port,
    )
    try:
        report = run_demo(options, stdout)
    except FileExistsError as exc:
        _stderr().write(f"streamfsm demo: {exc}\n")
        return EXIT_USAGE
    return EXIT_OK if report.ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamfsm.cli.demo.app [options]``: the demo without the CLI entry point."""
    parser = argparse.ArgumentParser(prog="streamfsm demo", description=DESCRIPTION)
    _arguments(parser)
    return run(parser.parse_args(argv))


def _stderr() -> IO[str]:
    return sys.stderr


if __name__ == "__main__":
    sys.exit(main())
