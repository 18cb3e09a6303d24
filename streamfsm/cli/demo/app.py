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
live view on a terminal, plain periodic lines otherwise (CI, pipes). It ends after
``--duration`` seconds, prints a summary, and writes the transition journal (JSON Lines), the
state diagram (Mermaid), a machine-readable summary and the log to ``--output``.

The demo's timings are short on purpose (see :data:`DEMO_CONFIG`) so that every recovery fits
in seconds; production defaults are far more patient (1 s backoff, 60 s stale threshold, 90 s
cool-down after a 406).

Exit status: 0 when every fault was recovered from, 1 otherwise (the reasons are printed), 2 for
invalid arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import queue
import random
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, TextIO

import attrs
import structlog
from rich.console import Console
from rich.live import Live

from streamfsm.cli.demo.script import (
    AUTH_TIMEOUT,
    BACKOFF_INITIAL,
    BACKOFF_MAXIMUM,
    CONNECTION_LIMIT_COOLDOWN,
    DEMO_CONFIG,
    FAULTS,
    STALE_QUOTES,
    FaultResult,
    FaultSpec,
    Progress,
    Script,
    session_lost,
)
from streamfsm.cli.demo.view import (
    DIAGRAM_NAME,
    JOURNAL_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    LiveView,
    mermaid_diagram,
    status_line,
    summary_json,
    summary_lines,
)
from streamfsm.credentials import Credentials
from streamfsm.logs import configure_logging
from streamfsm.pricing import PricingService
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

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

# ---------------------------------------------------------------- settings

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

#: Long enough to watch every fault and its recovery, short enough for ``make demo``.
DEFAULT_DURATION: Final = 20.0
DEFAULT_SEED: Final = 7
#: The eight symbols the demo prices, with their priorities (higher is kept longer).
SYMBOLS: Final = (
    ("AAPL", 10),
    ("MSFT", 10),
    ("NVDA", 8),
    ("AMZN", 8),
    ("GOOG", 6),
    ("META", 6),
    ("TSLA", 4),
    ("AMD", 4),
)
#: Offered at the lowest priority on top of the eight: ``max_symbols`` evicts them.
WATCHLIST: Final = ("SPY", "QQQ")
WATCHLIST_PRIORITY: Final = 1
MAX_SYMBOLS: Final = len(SYMBOLS)
#: Messages per second from the simulator, over all symbols and both channels.
SIM_RATE: Final = 200.0

#: A quote older than this is stale for the pricing service.
MAX_QUOTE_AGE: Final = 1.0

#: Below this --duration the fault script may not finish: about 8 s of recoveries and settling
#: after the warm-up, plus margin.
RECOMMENDED_DURATION: Final = 12.0

LIVE_REFRESH_PER_SECOND: Final = 8
#: Seconds between status lines when the output is not a terminal.
STATUS_INTERVAL: Final = 2.0
#: Bounds the wait for the script thread after the run ends (it only waits on events).
JOIN_TIMEOUT: Final = 5.0

DESCRIPTION: Final = (
    "Run a pricing service against the embedded Alpaca simulator, inject a dropped connection, "
    "a mute socket, three 406s, a slow auth, a malformed frame and a failing callback, and "
    "show how the stream recovers from each. Needs no account and no network."
)
OUTPUT_PREFIX: Final = "demo-output-"


# ---------------------------------------------------------------- the run


@attrs.frozen(kw_only=True)
class DemoOptions:
    """The demo's command-line options.

    Attributes:
        duration: seconds the run lasts.
        seed: seeds the simulator's prices and the backoff jitter.
        faults: play the fault script (``--no-faults`` clears it).
        output: the directory for the journal, diagram, summary and log; None: a new one.
        plain: plain lines even on a terminal.
    """

    duration: float = DEFAULT_DURATION
    seed: int = DEFAULT_SEED
    faults: bool = True
    output: Path | None = None
    plain: bool = False


@attrs.frozen(kw_only=True)
class DemoReport:
    """The outcome of a run.

    Attributes:
        ok: every fault recovered (or, without faults, the stream stayed up and priced).
        failures: one line per reason the run is not ok.
        faults: each fault's result.
        output: the directory written.
        summary: the summary text as printed.
    """

    ok: bool
    failures: tuple[str, ...]
    faults: tuple[FaultResult, ...]
    output: Path
    summary: str


def _output_dir(requested: Path | None) -> Path:
    if requested is not None:
        if (requested / JOURNAL_NAME).exists():
            raise FileExistsError(
                f"{requested} already holds a {JOURNAL_NAME}; choose another --output"
            )
        requested.mkdir(parents=True, exist_ok=True)
        return requested
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{n}" for n in range(1, 100))):
        candidate = Path(f"{OUTPUT_PREFIX}{stamp}{suffix}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a fresh {OUTPUT_PREFIX}{stamp} directory")


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Send structlog output to ``path`` for the run, then restore the previous configuration."""
    saved = structlog.get_config()
    with path.open("w", encoding="utf-8") as stream:
        configure_logging(logging.INFO, stream=stream)
        try:
            yield
        finally:
            structlog.configure(**saved)


def run_demo(options: DemoOptions, stdout: TextIO | None = None) -> DemoReport:
    """Run the demo and return its report; the live view or plain lines go to ``stdout``.

    Raises:
        FileExistsError: when ``options.output`` already holds a journal.
        ConfigurationError: for a duration that is not a positive number.
    """
    out = stdout if stdout is not None else sys.stdout
    console = Console(file=out, highlight=False, soft_wrap=True)
    live = console.is_terminal and not options.plain
    output = _output_dir(options.output)
    with _logging_to(output / LOG_NAME):
        return _Run(options, output, console, live).execute()


class _Run:
    """One demo run: simulator, service, script, view, summary."""

    def __init__(self, options: DemoOptions, output: Path, console: Console, live: bool) -> None:
        self.options = options
        self.output = output
        self.console = console
        self.live = live
        self.faults = FAULTS if options.faults else ()
        self.lines: list[str] = []
        self.interrupted = False

    def execute(self) -> DemoReport:
        options = self.options
        sim_config = SimConfig(seed=options.seed, rate=SIM_RATE, reap_delay=0.0)
        with SimulatorThread(sim_config) as sim:
            config = attrs.evolve(
                DEMO_CONFIG, url=sim.url("iex"), journal_path=self.output / JOURNAL_NAME
            )
            progress = Progress([symbol for symbol, _priority in SYMBOLS])
            service = progress.service = PricingService(
                Credentials(DEMO_KEY_ID, DEMO_SECRET),
                config,
                max_symbols=MAX_SYMBOLS,
                max_age=MAX_QUOTE_AGE,
                on_quote=progress.on_quote,
                on_gap=progress.on_gap,
                rng=random.Random(options.seed),
            )
            self._intro(sim)
            for symbol, priority in SYMBOLS:
                service.track(symbol, priority=priority)
            result = service.track(WATCHLIST, priority=WATCHLIST_PRIORITY)
            service.controller.add_listener(progress.on_transition)
            if result.refused:
                self._write(
                    f"max_symbols={MAX_SYMBOLS}: {', '.join(result.refused)} refused "
                    f"(priority {WATCHLIST_PRIORITY}, the lowest)"
                )
                self._write()
            script = Script(sim, service, progress, options.duration, self.faults)
            thread = threading.Thread(target=script.run, name="streamfsm-demo-script")
            progress.start_clock()
            service.start()
            thread.start()
            try:
                self._show(service, progress, script)
            except KeyboardInterrupt:
                self.interrupted = True
            finally:
                progress.close()
                thread.join(JOIN_TIMEOUT)
                service.stop()
            self._drain(progress)
            return self._finish(service, progress, script)

    # -- output

    def _write(self, text: str = "") -> None:
        self.lines.append(text)
        if not self.live:
            self.console.file.write(text + "\n")
            self.console.file.flush()

    def _intro(self, sim: SimulatorThread) -> None:
        options = self.options
        faults = f"{len(self.faults)} faults" if self.faults else "no faults"
        self._write(
            f"streamfsm demo: seed {options.seed}, {options.duration:g} s, {faults}, "
            f"{len(SYMBOLS)} symbols on the embedded simulator at {sim.url('iex')}"
        )
        self._write(
            f"demo timings (short on purpose): backoff {BACKOFF_INITIAL:g}-{BACKOFF_MAXIMUM:g} s, "
            f"stale after {STALE_QUOTES:g} s of silence, 406 cool-down "
            f"{CONNECTION_LIMIT_COOLDOWN:g} s, auth timeout {AUTH_TIMEOUT:g} s, "
            f"quotes stale after {MAX_QUOTE_AGE:g} s, simulator reap delay 0 s"
        )
        self._write(f"output: {self.output}/")
        if self.faults and options.duration < RECOMMENDED_DURATION:
            self._write(
                f"note: with --duration under {RECOMMENDED_DURATION:g} s the run may end "
                "before every fault has been played and recovered from"
            )

    def _show(self, service: PricingService, progress: Progress, script: Script) -> None:
        """Until the duration passes: a live view, or event lines plus periodic status lines."""
        if self.live:
            view = LiveView(service, progress, script, self.options.duration)
            with Live(
                console=self.console,
                refresh_per_second=LIVE_REFRESH_PER_SECOND,
                get_renderable=view.render,
                transient=False,
            ):
                progress.sleep_until(self.options.duration)
            return
        next_status = STATUS_INTERVAL
        while (now := progress.now()) < self.options.duration:
            timeout = max(0.0, min(next_status, self.options.duration) - now)
            try:
                moment, text = progress.events.get(timeout=timeout)
            except queue.Empty:
                if progress.now() >= next_status:
                    self._write(status_line(service, progress.now()))
                    next_status += STATUS_INTERVAL
                continue
            self._write(f"{moment:6.2f}s  {text}")

    def _drain(self, progress: Progress) -> None:
        """Event lines still queued when the run ended (plain mode)."""
        while True:
            try:
                moment, text = progress.events.get_nowait()
            except queue.Empty:
                return
            if not self.live:
                self._write(f"{moment:6.2f}s  {text}")

    def _finish(self, service: PricingService, progress: Progress, script: Script) -> DemoReport:
        failures = self._failures(service, progress, script)
        summary = summary_lines(service, progress, script, self.output, failures)
        for line in summary:
            self._write(line)
        if self.live:
            self.console.print("\n".join(summary), markup=False)
        diagram = self.output / DIAGRAM_NAME
        diagram.write_text(mermaid_diagram(), encoding="utf-8")
        (self.output / SUMMARY_NAME).write_text(
            json.dumps(summary_json(service, progress, script, failures), indent=2) + "\n",
            encoding="utf-8",
        )
        return DemoReport(
            ok=not failures,
            failures=tuple(failures),
            faults=tuple(script.results),
            output=self.output,
            summary="\n".join(summary),
        )

    def _failures(self, service: PricingService, progress: Progress, script: Script) -> list[str]:
        failures = []
        if self.interrupted:
            failures.append("interrupted (Ctrl-C) before the end of the run")
        if script.startup_failure is not None:
            failures.append(script.startup_failure)
        for result in script.results:
            if result.injected_at is None:
                failures.append(f"{result.spec.title}: not played within the duration")
            elif result.failure is not None:
                failures.append(f"{result.spec.title}: {result.failure}")
        if not self.faults:
            lost = [r for _t, r in progress.records if session_lost(r) and r.reason != "user"]
            if lost:
                failures.append(f"the calm run lost its connection ({lost[0].reason})")
        fatal = [r for _t, r in progress.records if r.dst == "stopped" and r.error is not None]
        if fatal:
            failures.append(f"the stream stopped on {fatal[0].error} (code {fatal[0].code})")
        return failures


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
