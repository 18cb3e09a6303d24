"""One run of ``streamfsm demo``: simulator, pricing service, fault script, view and summary.

:func:`run_demo` starts the simulator with seeded data and a
:class:`~streamfsm.pricing.PricingService` tracking eight symbols (two more are offered at a low
priority and refused by ``max_symbols``), plays the fault script against it on its own thread,
shows what happens (a ``rich`` live view on a terminal when ``rich`` is installed, plain lines
otherwise) and writes the journal, the state diagram, a machine-readable summary and the log to
the output directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Final, TextIO

import attrs

from streamfsm.cli._terminal import RICH_HINT, is_terminal, load_live_view
from streamfsm.cli.demo.endpoints import keep_last_scrape, serve_endpoints
from streamfsm.cli.demo.faults import FAULTS, FaultResult, session_lost
from streamfsm.cli.demo.progress import Progress
from streamfsm.cli.demo.script import Script
from streamfsm.cli.demo.settings import (
    AUTH_TIMEOUT,
    BACKOFF_INITIAL,
    BACKOFF_MAXIMUM,
    CONNECTION_LIMIT_COOLDOWN,
    DEFAULT_DURATION,
    DEFAULT_SEED,
    DEMO_CONFIG,
    JOIN_TIMEOUT,
    MAX_QUOTE_AGE,
    MAX_SYMBOLS,
    RECOMMENDED_DURATION,
    SIM_RATE,
    STALE_QUOTES,
    STATUS_INTERVAL,
    SYMBOLS,
    WATCHLIST,
    WATCHLIST_PRIORITY,
)
from streamfsm.cli.demo.view import (
    DIAGRAM_NAME,
    JOURNAL_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    mermaid_diagram,
    status_line,
    summary_json,
    summary_lines,
)
from streamfsm.credentials import Credentials
from streamfsm.logs import logging_to
from streamfsm.pricing import PricingService
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

__all__ = ["OUTPUT_PREFIX", "DemoOptions", "DemoReport", "run_demo"]

OUTPUT_PREFIX: Final = "demo-output-"


@attrs.frozen(kw_only=True)
class DemoOptions:
    """The demo's command-line options.

    Attributes:
        duration: seconds the run lasts.
        seed: seeds the simulator's prices and the backoff jitter.
        faults: play the fault script (``--no-faults`` clears it).
        output: the directory for the journal, diagram, summary and log; None: a new one.
        plain: plain lines even on a terminal.
        metrics_port: serve /metrics, /healthz and /readyz on this loopback port during the run
            (0: any free port), and keep the last scrape, taken before the stop, in the output.
    """

    duration: float = DEFAULT_DURATION
    seed: int = DEFAULT_SEED
    faults: bool = True
    output: Path | None = None
    plain: bool = False
    metrics_port: int | None = None


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
    """Send streamfsm's events to ``path`` for the run, then restore the previous configuration."""
    with path.open("w", encoding="utf-8") as stream, logging_to(stream, logging.INFO):
        yield


def run_demo(options: DemoOptions, stdout: TextIO | None = None) -> DemoReport:
    """Run the demo and return its report; the live view or plain lines go to ``stdout``.

    Raises:
        FileExistsError: when ``options.output`` already holds a journal.
        ConfigurationError: for a duration that is not a positive number.
    """
    out = stdout if stdout is not None else sys.stdout
    live_view = None
    if is_terminal(out) and not options.plain:
        live_view = load_live_view("streamfsm.cli.demo.live_view")
    output = _output_dir(options.output)
    with _logging_to(output / LOG_NAME):
        run = _Run(options, output, out, live_view)
        if live_view is None and is_terminal(out) and not options.plain:
            run.write(RICH_HINT)
        return run.execute()


class _Run:
    """One demo run: simulator, service, script, view, summary."""

    def __init__(
        self, options: DemoOptions, output: Path, out: TextIO, live_view: ModuleType | None
    ) -> None:
        self.options = options
        self.output = output
        self.out = out
        #: The live view module when the view is live (a terminal, and rich installed).
        self.live_view = live_view
        self.live = live_view is not None
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
                self.write(
                    f"max_symbols={MAX_SYMBOLS}: {', '.join(result.refused)} refused "
                    f"(priority {WATCHLIST_PRIORITY}, the lowest)"
                )
                self.write()
            script = Script(sim, service, progress, options.duration, self.faults)
            thread = threading.Thread(target=script.run, name="streamfsm-demo-script")
            endpoints = None
            if options.metrics_port is not None:
                endpoints = serve_endpoints(service, options.metrics_port)
                self.write(f"metrics: {endpoints.url}/metrics, /healthz, /readyz")
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
                if endpoints is not None:
                    keep_last_scrape(endpoints, self.output)
                service.stop()
            self._drain(progress)
            return self._finish(service, progress, script)

    # -- output

    def write(self, text: str = "") -> None:
        """Keep a line of output; print it now unless the live view owns the terminal."""
        self.lines.append(text)
        if not self.live:
            self.out.write(text + "\n")
            self.out.flush()

    def _intro(self, sim: SimulatorThread) -> None:
        options = self.options
        faults = f"{len(self.faults)} faults" if self.faults else "no faults"
        self.write(
            f"streamfsm demo: seed {options.seed}, {options.duration:g} s, {faults}, "
            f"{len(SYMBOLS)} symbols on the embedded simulator at {sim.url('iex')}"
        )
        self.write(
            f"demo timings (short on purpose): backoff {BACKOFF_INITIAL:g}-{BACKOFF_MAXIMUM:g} s, "
            f"stale after {STALE_QUOTES:g} s of silence, 406 cool-down "
            f"{CONNECTION_LIMIT_COOLDOWN:g} s, auth timeout {AUTH_TIMEOUT:g} s, "
            f"quotes stale after {MAX_QUOTE_AGE:g} s, simulator reap delay 0 s"
        )
        self.write(f"output: {self.output}/")
        if self.faults and options.duration < RECOMMENDED_DURATION:
            self.write(
                f"note: with --duration under {RECOMMENDED_DURATION:g} s the run may end "
                "before every fault has been played and recovered from"
            )

    def _show(self, service: PricingService, progress: Progress, script: Script) -> None:
        """Until the duration passes: a live view, or event lines plus periodic status lines."""
        if self.live_view is not None:
            view = self.live_view.LiveView(service, progress, script, self.options.duration)
            end = self.options.duration

            def wait(seconds: float) -> bool:
                moment = min(progress.now() + seconds, end)
                return progress.sleep_until(moment) and progress.now() < end

            self.live_view.show_live(self.out, view, wait)
            return
        next_status = STATUS_INTERVAL
        while (now := progress.now()) < self.options.duration:
            timeout = max(0.0, min(next_status, self.options.duration) - now)
            try:
                moment, text = progress.events.get(timeout=timeout)
            except queue.Empty:
                if progress.now() >= next_status:
                    self.write(status_line(service, progress.now()))
                    next_status += STATUS_INTERVAL
                continue
            self.write(f"{moment:6.2f}s  {text}")

    def _drain(self, progress: Progress) -> None:
        """Event lines still queued when the run ended (plain mode)."""
        while True:
            try:
                moment, text = progress.events.get_nowait()
            except queue.Empty:
                return
            if not self.live:
                self.write(f"{moment:6.2f}s  {text}")

    def _finish(self, service: PricingService, progress: Progress, script: Script) -> DemoReport:
        failures = self._failures(service, progress, script)
        summary = summary_lines(service, progress, script, self.output, failures)
        for line in summary:
            self.write(line)
        if self.live:
            self.out.write("\n".join(summary) + "\n")
            self.out.flush()
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
