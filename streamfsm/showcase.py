"""``streamfsm demo``: the whole product in one command, on the embedded simulator, no account.

The demo starts the simulator with seeded data and a :class:`~streamfsm.pricing.PricingService`
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
import collections
import contextlib
import enum
import json
import logging
import math
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, TextIO

import attrs
import structlog
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamfsm.config import BackoffPolicy, BreakerPolicy, StalePolicy, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import StreamError
from streamfsm.journal import TransitionRecord
from streamfsm.logs import configure_logging
from streamfsm.machine import State
from streamfsm.models import Quote
from streamfsm.pricing import PricingService, QuoteSnapshot
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread
from streamfsm.tracking import GapReport

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

#: Short on purpose: every recovery fits in seconds. Production defaults are in StreamConfig.
BACKOFF_INITIAL: Final = 0.2
BACKOFF_MAXIMUM: Final = 1.0
STALE_QUOTES: Final = 1.0
HEALTHY_AFTER: Final = 0.5
CONNECTION_LIMIT_COOLDOWN: Final = 0.5
AUTH_TIMEOUT: Final = 1.0
CONNECT_TIMEOUT: Final = 2.0
BREAKER_THRESHOLD: Final = 5
BREAKER_COOLDOWN: Final = 1.0
#: A quote older than this is stale for the pricing service.
MAX_QUOTE_AGE: Final = 1.0

DEMO_CONFIG: Final = StreamConfig(
    backoff=BackoffPolicy(initial=BACKOFF_INITIAL, maximum=BACKOFF_MAXIMUM),
    breaker=BreakerPolicy(failure_threshold=BREAKER_THRESHOLD, cooldown=BREAKER_COOLDOWN),
    stale=StalePolicy(quotes=STALE_QUOTES),
    healthy_after=HEALTHY_AFTER,
    connection_limit_cooldown=CONNECTION_LIMIT_COOLDOWN,
    auth_timeout=AUTH_TIMEOUT,
    connect_timeout=CONNECT_TIMEOUT,
    subscribe_timeout=CONNECT_TIMEOUT,
)

#: The mute outlasts the stale threshold three times over, so only the watchdog can end it.
MUTE_SECONDS: Final = 3 * STALE_QUOTES
#: The auth reply is held back past the client's auth timeout.
SLOW_AUTH_DELAY: Final = AUTH_TIMEOUT + 0.5
#: How many auths the simulator refuses with 406.
CONNECTION_LIMIT_REFUSALS: Final = 3
CONNECTION_LIMIT_CODE: Final = 406

#: Time to connect and price every symbol before the first fault.
WARMUP: Final = 1.5
#: Calm time left after the last fault's slot.
TAIL: Final = 1.5
#: Pause after a recovery before the next fault may start: the new session must turn healthy
#: first, or back-to-back faults look like a flapping server and trip the circuit breaker.
SETTLE: Final = HEALTHY_AFTER + 0.2
#: Below this --duration the fault script may not finish: about 8 s of recoveries and settling
#: after the warm-up, plus margin.
RECOMMENDED_DURATION: Final = 12.0
#: How long the demo waits for the first prices before it gives up.
STARTUP_BUDGET: Final = 5.0

LIVE_REFRESH_PER_SECOND: Final = 8
#: Seconds between status lines when the output is not a terminal.
STATUS_INTERVAL: Final = 2.0
#: Events kept for the live view.
RECENT_EVENTS: Final = 8
MS_PER_SECOND: Final = 1000.0
#: Bounds the wait for the script thread after the run ends (it only waits on events).
JOIN_TIMEOUT: Final = 5.0

DESCRIPTION: Final = (
    "Run a pricing service against the embedded Alpaca simulator, inject a dropped connection, "
    "a mute socket, three 406s, a slow auth, a malformed frame and a failing callback, and "
    "show how the stream recovers from each. Needs no account and no network."
)
OUTPUT_PREFIX: Final = "demo-output-"
JOURNAL_NAME: Final = "journal.jsonl"
DIAGRAM_NAME: Final = "state-diagram.mmd"
SUMMARY_NAME: Final = "summary.json"
LOG_NAME: Final = "streamfsm.log"


class DemoCallbackError(RuntimeError):
    """Raised on purpose by the demo's quote hook, once, to show callback isolation."""


# ---------------------------------------------------------------- the fault script


class FaultKind(enum.StrEnum):
    """The scripted faults, in the order they are played."""

    DROP = "drop"
    MUTE = "mute"
    CONNECTION_LIMIT = "connection_limit"
    SLOW_AUTH = "slow_auth"
    MALFORMED = "malformed"
    CALLBACK = "callback"


@attrs.frozen(kw_only=True)
class FaultSpec:
    """One scripted fault.

    Attributes:
        kind: which fault.
        title: its name in the output.
        disconnects: whether recovery needs a new connection.
        budget: seconds the stream may take to recover before the fault counts as failed.
    """

    kind: FaultKind
    title: str
    disconnects: bool
    budget: float


FAULTS: Final = (
    FaultSpec(kind=FaultKind.DROP, title="dropped connection", disconnects=True, budget=3.0),
    FaultSpec(kind=FaultKind.MUTE, title="mute socket", disconnects=True, budget=4.0),
    FaultSpec(kind=FaultKind.CONNECTION_LIMIT, title="three 406s", disconnects=True, budget=5.0),
    FaultSpec(kind=FaultKind.SLOW_AUTH, title="slow auth", disconnects=True, budget=5.0),
    FaultSpec(kind=FaultKind.MALFORMED, title="malformed frame", disconnects=False, budget=2.0),
    FaultSpec(kind=FaultKind.CALLBACK, title="callback raises once", disconnects=False, budget=2.0),
)


@attrs.define(kw_only=True)
class FaultResult:
    """What happened to one fault; times are seconds since the service started.

    Attributes:
        spec: the fault.
        injected_at: when it was injected, None when the run ended first.
        detected_at: when the controller noticed it (a transition, or the counter it bumps).
        detected_by: how it was noticed, in words.
        reconnected_at: when the stream was subscribed again (faults that disconnect).
        recovered_at: when every symbol had a fresh quote again.
        evidence: what the counters or the journal show.
        failure: why it does not count as recovered, or None.
    """

    spec: FaultSpec
    injected_at: float | None = None
    detected_at: float | None = None
    detected_by: str = ""
    reconnected_at: float | None = None
    recovered_at: float | None = None
    evidence: str = ""
    failure: str | None = None

    @property
    def recovered(self) -> bool:
        """True when the fault was injected and fully recovered from."""
        return self.failure is None and self.recovered_at is not None

    @property
    def recovery(self) -> float | None:
        """Seconds from injection to every symbol freshly priced again."""
        if self.injected_at is None or self.recovered_at is None:
            return None
        return self.recovered_at - self.injected_at

    def status(self) -> str:
        """pending, running, recovered or failed."""
        if self.failure is not None:
            return "failed"
        if self.recovered_at is not None:
            return "recovered"
        return "running" if self.injected_at is not None else "pending"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for ``summary.json``."""
        return {
            "fault": self.spec.kind.value,
            "title": self.spec.title,
            "injected_at": _rounded(self.injected_at),
            "detected_after": _after(self.injected_at, self.detected_at),
            "detected_by": self.detected_by,
            "reconnected_after": _after(self.injected_at, self.reconnected_at),
            "recovered_after": _after(self.injected_at, self.recovered_at),
            "evidence": self.evidence,
            "recovered": self.recovered,
            "failure": self.failure,
        }


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _after(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


#: States entered after a failure; their journal reason says which.
_WAITING_STATES: Final = frozenset(
    {State.BACKOFF.value, State.CIRCUIT_OPEN.value, State.STOPPED.value}
)


def _lost(record: TransitionRecord) -> bool:
    return record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value


class _Progress:
    """What the fault script waits for, signalled from the controller's loop thread.

    Demo code, not library code: it takes a condition's lock on the stream's loop, which the
    pricing service itself never does.
    """

    def __init__(self, symbols: Sequence[str]) -> None:
        self.service: PricingService | None = None
        self._symbols = tuple(symbols)
        self._t0 = time.monotonic()
        self._condition = threading.Condition()
        self.records: list[tuple[float, TransitionRecord]] = []
        self.events: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()
        self._pending: set[str] = set()
        self.fresh_at: float | None = None
        self.expecting_loss = False
        self.raise_next = False
        self.gaps: list[GapReport] = []
        self.closed = False

    def now(self) -> float:
        """Seconds since :meth:`start_clock`."""
        return time.monotonic() - self._t0

    def start_clock(self) -> None:
        """Time zero: the service starts now."""
        self._t0 = time.monotonic()

    def say(self, text: str) -> None:
        """Queue an event line for the view."""
        self.events.put((self.now(), text))

    # -- on the controller's loop

    def on_transition(self, record: TransitionRecord) -> None:
        """Listener: keep the record, arm the freshness wait when an expected loss happens."""
        now = self.now()
        with self._condition:
            self.records.append((now, record))
            if self.expecting_loss and _lost(record):
                self.expecting_loss = False
                self._arm()
            self._condition.notify_all()
        if record.src != record.dst:
            failed = record.dst in _WAITING_STATES and record.error is not None
            detail = f" ({record.reason})" if failed else ""
            delay = f", next attempt in {record.delay:.2f} s" if record.delay is not None else ""
            self.events.put((now, f"state {record.dst}{detail}{delay}"))

    def on_quote(self, quote: Quote) -> None:
        """Quote hook: raise once when asked to, and tick off symbols that are fresh again."""
        if self.raise_next:
            with self._condition:
                self.raise_next = False
                self._arm()
                self._condition.notify_all()
            raise DemoCallbackError("the demo's quote hook raised on purpose")
        if self._pending and self.service is not None:
            snapshot = self.service.quote(quote.symbol)
            if snapshot is not None and not snapshot.stale:
                with self._condition:
                    self._pending.discard(quote.symbol)
                    if not self._pending and self.fresh_at is None:
                        self.fresh_at = self.now()
                        self._condition.notify_all()

    def on_gap(self, report: GapReport) -> None:
        """Gap hook: keep the report for the summary."""
        self.gaps.append(report)

    # -- on the script thread

    def arm(self) -> None:
        """Wait for every symbol to be fresh from now on."""
        with self._condition:
            self._arm()

    def disarm(self) -> None:
        """Forget the previous fault's freshness; the next arm starts a new wait."""
        with self._condition:
            self._pending = set()
            self.fresh_at = None

    def _arm(self) -> None:
        self._pending = set(self._symbols)
        self.fresh_at = None

    def wait(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Block until ``predicate()``, ``deadline`` (seconds since start) or :meth:`close`.

        Returns:
            Whether ``predicate()`` holds.
        """
        with self._condition:
            self._condition.wait_for(
                lambda: self.closed or predicate(), max(0.0, deadline - self.now())
            )
            return predicate()

    def expect_loss(self, expected: bool) -> None:
        """Arm the freshness wait at the next lost session (or stop expecting one)."""
        with self._condition:
            self.expecting_loss = expected

    def close(self) -> None:
        """Wake every waiter: the run is over."""
        with self._condition:
            self.closed = True
            self._condition.notify_all()

    def sleep_until(self, moment: float) -> bool:
        """Wait until ``moment`` unless closed first; False when closed."""
        with self._condition:
            self._condition.wait_for(lambda: self.closed, max(0.0, moment - self.now()))
            return not self.closed

    def since(self, index: int) -> list[tuple[float, TransitionRecord]]:
        """Records appended from ``index`` on."""
        with self._condition:
            return self.records[index:]

    def mark(self) -> int:
        """The current end of the record list."""
        with self._condition:
            return len(self.records)


class _Script:
    """Plays the faults one after the other on its own thread, within the run's duration."""

    def __init__(
        self,
        sim: SimulatorThread,
        service: PricingService,
        progress: _Progress,
        duration: float,
        faults: Sequence[FaultSpec],
    ) -> None:
        self._sim = sim
        self._service = service
        self._progress = progress
        self._duration = duration
        self.results = [FaultResult(spec=spec) for spec in faults]
        self.startup_failure: str | None = None

    def schedule(self) -> list[float]:
        """The earliest moment of each fault: spread evenly between warm-up and tail."""
        count = len(self.results)
        if count == 0:
            return []
        slot = max(0.0, self._duration - WARMUP - TAIL) / count
        return [WARMUP + index * slot for index in range(count)]

    def run(self) -> None:
        """The script thread's body."""
        progress = self._progress
        try:
            progress.arm()
            if not progress.wait(lambda: progress.fresh_at is not None, STARTUP_BUDGET):
                self.startup_failure = "the stream did not price every symbol in time"
                return
            progress.say(f"every symbol priced after {progress.fresh_at:.2f} s")
            ready = progress.now()
            for result, moment in zip(self.results, self.schedule(), strict=True):
                if not progress.sleep_until(max(moment, ready + SETTLE)):
                    return
                try:
                    self._play(result)
                except (TimeoutError, StreamError) as exc:
                    # The simulator did not take the fault (its loop is gone or too slow).
                    result.failure = f"the simulator refused the fault: {exc}"
                    progress.say(f"FAILED {result.spec.title}: {result.failure}")
                ready = progress.now()
                if result.failure is not None and progress.closed:
                    return
        finally:
            progress.say("fault script finished" if self.results else "calm run, no faults")

    def _play(self, result: FaultResult) -> None:
        spec, progress = result.spec, self._progress
        deadline = min(progress.now() + spec.budget, self._duration)
        mark = progress.mark()
        before = self._service.health()
        progress.disarm()
        progress.say(f"fault: {spec.title}")
        result.injected_at = progress.now()
        if spec.disconnects:
            self._disconnect(result, mark, deadline)
        elif spec.kind is FaultKind.MALFORMED:
            progress.arm()
            self._sim.send_malformed("garbage")
            result.detected_by = "decoder: frame skipped and counted"
            self._wait_fresh(result, deadline)
        else:
            progress.raise_next = True
            self._wait_fresh(result, deadline)
            result.detected_by = "dispatcher: exception isolated and counted"
        if result.recovered_at is None and result.failure is None:
            result.failure = f"not recovered within {deadline - result.injected_at:.1f} s"
        self._check(result, mark, before)
        if result.failure is None:
            assert result.recovery is not None  # set with recovered_at
            progress.say(f"recovered from {spec.title} in {result.recovery:.2f} s")
        else:
            progress.say(f"FAILED {spec.title}: {result.failure}")

    def _disconnect(self, result: FaultResult, mark: int, deadline: float) -> None:
        sim, progress, kind = self._sim, self._progress, result.spec.kind
        progress.expect_loss(True)
        if kind is FaultKind.DROP:
            sim.drop()
        elif kind is FaultKind.MUTE:
            sim.mute(MUTE_SECONDS)
        elif kind is FaultKind.CONNECTION_LIMIT:
            sim.fail_auth(CONNECTION_LIMIT_REFUSALS, CONNECTION_LIMIT_CODE)
            sim.drop()
        else:
            sim.delay_auth(SLOW_AUTH_DELAY)
            sim.drop()
            timed_out = progress.wait(
                lambda: any(r.error == "ConnectTimeoutError" for _t, r in progress.since(mark)),
                deadline,
            )
            sim.delay_auth(0)
            if not timed_out:
                result.failure = "the slow auth never timed out"
                return
        if not progress.wait(lambda: any(_lost(r) for _t, r in progress.since(mark)), deadline):
            result.failure = "the controller never noticed the fault"
            progress.expect_loss(False)
            return
        moment, record = next((t, r) for t, r in progress.since(mark) if _lost(r))
        result.detected_at, result.detected_by = moment, f"{record.trigger} ({record.reason})"
        self._wait_fresh(result, deadline)

    def _wait_fresh(self, result: FaultResult, deadline: float) -> None:
        progress = self._progress
        if progress.wait(lambda: progress.fresh_at is not None, deadline):
            result.recovered_at = progress.fresh_at

    def _check(self, result: FaultResult, mark: int, before: Any) -> None:
        """Fill detection, reconnection and evidence from the journal and the counters."""
        records = self._progress.since(mark)
        after = self._service.health()
        kind = result.spec.kind
        losses = [(t, r) for t, r in records if _lost(r)]
        if losses:
            result.detected_at, first = losses[0]
            result.detected_by = f"{first.trigger} ({first.reason})"
            back = [t for t, r in records if r.dst == State.SUBSCRIBED.value and t >= losses[0][0]]
            result.reconnected_at = back[0] if back else None
        refusals = sum(1 for _t, r in records if r.code == CONNECTION_LIMIT_CODE)
        timeouts = sum(1 for _t, r in records if r.error == "ConnectTimeoutError")
        if kind is FaultKind.DROP:
            delay = losses[0][1].delay if losses else None
            result.evidence = f"reconnected after a {delay or 0:.2f} s backoff"
        elif kind is FaultKind.MUTE:
            result.evidence = f"silence caught by the stale watchdog ({STALE_QUOTES:g} s)"
            if losses and losses[0][1].trigger != "data_stale" and result.failure is None:
                result.failure = f"expected data_stale, got {losses[0][1].trigger}"
        elif kind is FaultKind.CONNECTION_LIMIT:
            result.evidence = (
                f"{refusals} x 406 connection limit, {CONNECTION_LIMIT_COOLDOWN:g} s cool-down each"
            )
            if refusals < CONNECTION_LIMIT_REFUSALS and result.failure is None:
                result.failure = f"expected {CONNECTION_LIMIT_REFUSALS} refusals, saw {refusals}"
        elif kind is FaultKind.SLOW_AUTH:
            result.evidence = f"auth timed out after {AUTH_TIMEOUT:g} s ({timeouts}x), retry ok"
        elif kind is FaultKind.MALFORMED:
            extra = after.malformed_frames - before.malformed_frames
            result.evidence = f"{extra} malformed frame counted, no reconnect"
            self._unchanged(result, records, extra, "malformed frame")
        else:
            extra = after.callback_errors - before.callback_errors
            result.evidence = f"{extra} callback error counted, state unchanged"
            self._unchanged(result, records, extra, "callback error")

    @staticmethod
    def _unchanged(
        result: FaultResult, records: list[tuple[float, TransitionRecord]], extra: int, what: str
    ) -> None:
        moved = [r for _t, r in records if r.src != r.dst]
        if result.failure is not None:
            return
        if extra != 1:
            result.failure = f"expected 1 {what}, counted {extra}"
        elif moved:
            result.failure = f"the state changed: {moved[0].src} -> {moved[0].dst}"
        else:
            result.detected_at = result.injected_at


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
            progress = _Progress([symbol for symbol, _priority in SYMBOLS])
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
            script = _Script(sim, service, progress, options.duration, self.faults)
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

    def _show(self, service: PricingService, progress: _Progress, script: _Script) -> None:
        """Until the duration passes: a live view, or event lines plus periodic status lines."""
        if self.live:
            view = _LiveView(service, progress, script, self.options.duration)
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
                    self._write(_status_line(service, progress.now()))
                    next_status += STATUS_INTERVAL
                continue
            self._write(f"{moment:6.2f}s  {text}")

    def _drain(self, progress: _Progress) -> None:
        """Event lines still queued when the run ended (plain mode)."""
        while True:
            try:
                moment, text = progress.events.get_nowait()
            except queue.Empty:
                return
            if not self.live:
                self._write(f"{moment:6.2f}s  {text}")

    def _finish(self, service: PricingService, progress: _Progress, script: _Script) -> DemoReport:
        failures = self._failures(service, progress, script)
        summary = _summary(service, progress, script, self.output, failures)
        for line in summary:
            self._write(line)
        if self.live:
            self.console.print("\n".join(summary), markup=False)
        diagram = self.output / DIAGRAM_NAME
        diagram.write_text(_diagram(), encoding="utf-8")
        (self.output / SUMMARY_NAME).write_text(
            json.dumps(_summary_json(service, progress, script, failures), indent=2) + "\n",
            encoding="utf-8",
        )
        return DemoReport(
            ok=not failures,
            failures=tuple(failures),
            faults=tuple(script.results),
            output=self.output,
            summary="\n".join(summary),
        )

    def _failures(self, service: PricingService, progress: _Progress, script: _Script) -> list[str]:
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
            lost = [r for _t, r in progress.records if _lost(r) and r.reason != "user"]
            if lost:
                failures.append(f"the calm run lost its connection ({lost[0].reason})")
        fatal = [r for _t, r in progress.records if r.dst == "stopped" and r.error is not None]
        if fatal:
            failures.append(f"the stream stopped on {fatal[0].error} (code {fatal[0].code})")
        return failures


# ---------------------------------------------------------------- rendering


def _money(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _age(snapshot: QuoteSnapshot) -> str:
    return f"{snapshot.age * MS_PER_SECOND:.0f} ms"


def _status_line(service: PricingService, now: float) -> str:
    health = service.health()
    stale = service.statistics()
    return (
        f"{now:6.2f}s  [{health.state.value} {health.time_in_state:.1f}s] "
        f"quotes {health.messages.get('quotes', 0)} trades {health.messages.get('trades', 0)} | "
        f"reconnects {health.reconnects} | gaps open {health.open_gaps} | "
        f"stale {stale.stale}/{stale.tracked} | malformed {health.malformed_frames} | "
        f"callback errors {health.callback_errors}"
    )


def _quote_rows(service: PricingService) -> Iterator[tuple[str, ...]]:
    tracked = service.tracked()
    for symbol, priority in tracked.items():
        snapshot = service.quote(symbol)
        if snapshot is None:
            yield (symbol, str(priority), "-", "-", "-", "-", "-", "no quote yet")
            continue
        stale = snapshot.stale_reason.value if snapshot.stale_reason is not None else "fresh"
        yield (
            symbol,
            str(priority),
            _money(snapshot.bid),
            _money(snapshot.ask),
            f"{snapshot.mid:.3f}" if snapshot.mid is not None else "-",
            _money(snapshot.spread),
            _age(snapshot),
            stale,
        )


QUOTE_HEADER: Final = ("symbol", "prio", "bid", "ask", "mid", "spread", "age", "stale")


class _LiveView:
    """The rich live view, rendered by rich's refresh thread from thread-safe reads."""

    def __init__(
        self, service: PricingService, progress: _Progress, script: _Script, duration: float
    ) -> None:
        self._service = service
        self._progress = progress
        self._script = script
        self._duration = duration
        self._events: collections.deque[str] = collections.deque(maxlen=RECENT_EVENTS)

    def render(self) -> RenderableType:
        while True:
            try:
                moment, text = self._progress.events.get_nowait()
            except queue.Empty:
                break
            self._events.append(f"{moment:6.2f}s  {text}")
        health = self._service.health()
        header = Text.assemble(
            ("streamfsm demo  ", "bold"),
            f"{min(self._progress.now(), self._duration):5.1f}/{self._duration:g} s   state ",
            (health.state.value, "bold green" if health.state is State.SUBSCRIBED else "bold red"),
            f" for {health.time_in_state:.1f} s   attempts {health.attempts}  "
            f"reconnects {health.reconnects}  breaker {health.breaker.value}",
        )
        faults = Table(title="faults", expand=False)
        for column in ("#", "fault", "status", "detected by", "reconnected", "recovered"):
            faults.add_column(column)
        for index, result in enumerate(self._script.results, start=1):
            faults.add_row(
                str(index),
                result.spec.title,
                result.status(),
                result.detected_by or "-",
                _seconds(_after(result.injected_at, result.reconnected_at)),
                _seconds(result.recovery),
            )
        quotes = Table(title="quotes", expand=False)
        for column in QUOTE_HEADER:
            quotes.add_column(
                column, justify="right" if column not in ("symbol", "stale") else "left"
            )
        for row in _quote_rows(self._service):
            quotes.add_row(*row, style="red" if row[-1] not in ("fresh",) else None)
        counters = Text(
            f"quotes {health.messages.get('quotes', 0)}  trades {health.messages.get('trades', 0)}"
            f"  gaps open {health.open_gaps}  gap reports {len(self._progress.gaps)}"
            f"  malformed {health.malformed_frames}  callback errors {health.callback_errors}"
            f"  dropped {health.dropped_messages}"
        )
        events = Text("\n".join(self._events) or "-")
        return Group(header, faults, quotes, counters, Text("recent events", style="bold"), events)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return [
        ("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in (header, *rows)
    ]


def _gap_rows(progress: _Progress) -> list[tuple[str, str, str]]:
    per_symbol: dict[str, list[float]] = collections.defaultdict(list)
    for report in progress.gaps:
        if report.channel != "quotes":
            continue
        start = report.last_seen_before or report.lost_at
        per_symbol[report.symbol].append((report.first_seen_after - start).total_seconds())
    rows = []
    for symbol, _priority in SYMBOLS:
        windows = per_symbol.get(symbol, [])
        longest = f"{max(windows):.2f} s" if windows else "-"
        rows.append((symbol, str(len(windows)), longest))
    return rows


def _summary(
    service: PricingService,
    progress: _Progress,
    script: _Script,
    output: Path,
    failures: Sequence[str],
) -> list[str]:
    health = service.health()
    lines = ["", "summary"]
    if script.results:
        rows = [
            (
                str(index),
                result.spec.title,
                _seconds(_rounded(result.injected_at, 2)),
                result.detected_by or "-",
                _seconds(_after(result.injected_at, result.reconnected_at)),
                _seconds(result.recovery),
                result.status(),
                result.evidence,
            )
            for index, result in enumerate(script.results, start=1)
        ]
        header = (
            "#",
            "fault",
            "at",
            "detected by",
            "reconnected",
            "recovered",
            "result",
            "evidence",
        )
        lines += _table(header, rows)
        lines.append(
            "  (reconnected: subscribed again; recovered: every symbol freshly priced again;"
            " both from the injection)"
        )
    lines += ["", "quotes at the end (stale: disconnected, as the service is stopped)"]
    lines += _table(QUOTE_HEADER, list(_quote_rows(service)))
    lines += ["", "gaps per symbol (quotes; window = last quote before to first quote after)"]
    lines += _table(("symbol", "gaps", "longest window"), _gap_rows(progress))
    lines += [
        "",
        f"messages: {health.messages.get('quotes', 0)} quotes, "
        f"{health.messages.get('trades', 0)} trades; connection attempts {health.attempts}, "
        f"reconnects {health.reconnects}, breaker trips {health.breaker_trips}, "
        f"malformed frames {health.malformed_frames}, callback errors {health.callback_errors}, "
        f"dropped {health.dropped_messages}",
        f"journal: {output / JOURNAL_NAME} ({len(service.controller.journal())} transitions)",
        f"state diagram: {output / DIAGRAM_NAME}   summary: {output / SUMMARY_NAME}   "
        f"log: {output / LOG_NAME}",
        "",
    ]
    if failures:
        lines += ["result: FAILED", *(f"  - {failure}" for failure in failures)]
    elif script.results:
        lines.append(f"result: all {len(script.results)} faults recovered")
    else:
        lines.append("result: calm run, the stream stayed up")
    return lines


def _summary_json(
    service: PricingService, progress: _Progress, script: _Script, failures: Sequence[str]
) -> dict[str, Any]:
    health = service.health()
    return {
        "ok": not failures,
        "failures": list(failures),
        "faults": [result.to_json() for result in script.results],
        "gaps": {symbol: int(count) for symbol, count, _longest in _gap_rows(progress)},
        "messages": dict(health.messages),
        "attempts": health.attempts,
        "reconnects": health.reconnects,
        "malformed_frames": health.malformed_frames,
        "callback_errors": health.callback_errors,
        "transitions": len(service.controller.journal()),
    }


def _diagram() -> str:
    """The state diagram as Mermaid, from the transition table."""
    from streamfsm.diagram import render_mermaid

    return render_mermaid()


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
    """``python -m streamfsm.showcase [options]``: the demo without the ``streamfsm`` command."""
    parser = argparse.ArgumentParser(prog="streamfsm demo", description=DESCRIPTION)
    _arguments(parser)
    return run(parser.parse_args(argv))


def _stderr() -> IO[str]:
    return sys.stderr


if __name__ == "__main__":
    sys.exit(main())
