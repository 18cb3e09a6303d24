"""A bounded chaos run: random faults from the simulator's table against one controller.

    python -m tools.soak --minutes 30 [--interval 4] [--seed 7]      # make soak

Every ``--interval`` seconds (jittered) one fault drawn from :data:`FAULT_KINDS` hits the
simulator; the run waits for the stream to recover (subscribed, in sync, data flowing again) and
records how long that took. At the end it prints, per fault kind, how often it was played and
its recovery times; it proves that every hole in the per-(channel, symbol) sequence numbers the
callbacks received (``_seq``, which the simulator keeps rising across connections) is covered by
a gap report delivered between the two messages around the hole or by messages the overflow
policy counted as dropped; and it samples resident memory, open file descriptors and threads
after every fault to show they stay flat. Exit status 0 when every fault recovered, every hole
is accounted for and the resources stayed within their tolerances; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from streamfsm import State, StreamController
from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import GapReport
from streamfsm.config import BackoffPolicy, BreakerPolicy, StalePolicy, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread
from tools.soak_faults import AUTH_TIMEOUT, FAULT_KINDS, STALE_QUOTES, FaultKind

__all__ = ["FAULT_KINDS", "SoakReport", "main", "run_soak"]

SYMBOLS: Final = ("AAPL", "MSFT", "NVDA", "AMZN", "SPY")
#: Messages per second from the simulator over every symbol and channel.
SIM_RATE: Final = 300.0
#: Short policies, as in the demo: every recovery fits in seconds.
CONFIG: Final = StreamConfig(
    backoff=BackoffPolicy(initial=0.1, maximum=1.0),
    breaker=BreakerPolicy(failure_threshold=8, cooldown=1.0),
    stale=StalePolicy(quotes=STALE_QUOTES),
    healthy_after=0.5,
    connection_limit_cooldown=0.5,
    auth_timeout=AUTH_TIMEOUT,
    connect_timeout=2.0,
    subscribe_timeout=2.0,
)
#: A fault kind's recovery must fit in this many seconds (three 406s plus backoff is the worst).
RECOVERY_BUDGET: Final = 15.0
#: Time for the first subscription and data before the first fault.
WARMUP_BUDGET: Final = 10.0
#: Resources may drift this much from the first sample after warm-up before the run fails.
RSS_TOLERANCE_MIB: Final = 40.0
FD_TOLERANCE: Final = 8
THREAD_TOLERANCE: Final = 2
_BYTES_PER_KIB: Final = 1024
_FIRST_AND_LAST: Final = 2
_SECONDS_PER_MINUTE: Final = 60.0
#: The raw wire type letters of the channels gap reports name.
_CHANNEL_OF_TYPE: Final = {"q": "quotes", "t": "trades", "b": "bars"}


# ---------------------------------------------------------------- what the callbacks saw


class Ledger:
    """Everything delivered to the callbacks, in delivery order, and the holes it shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_seq: dict[tuple[str, str], int] = {}
        #: Gap reports delivered since the last message of each (channel, symbol).
        self.pending_gaps: dict[tuple[str, str], int] = {}
        self.messages = 0
        self.holes = 0
        self.missing = 0
        self.covered_by_gaps = 0
        #: Messages missing in holes no gap report covers: the overflow policy dropped them.
        self.uncovered_missing = 0
        self.data = threading.Event()

    def on_message(self, message: dict[str, Any]) -> None:
        """A raw market-data message reached a callback."""
        channel = _CHANNEL_OF_TYPE.get(str(message.get("T")))
        seq = message.get("_seq")
        if channel is None or not isinstance(seq, int):
            return
        key = (channel, str(message.get("S")))
        with self._lock:
            self.messages += 1
            previous = self.last_seq.get(key)
            if previous is not None and seq > previous + 1:
                self.holes += 1
                missing = seq - previous - 1
                self.missing += missing
                if self.pending_gaps.get(key, 0) > 0:
                    self.covered_by_gaps += 1
                else:
                    self.uncovered_missing += missing
            if previous is None or seq > previous:
                self.last_seq[key] = seq
            self.pending_gaps.pop(key, None)
        self.data.set()

    def on_gap(self, report: GapReport) -> None:
        """A gap report reached its callback."""
        key = (report.channel, report.symbol)
        with self._lock:
            self.pending_gaps[key] = self.pending_gaps.get(key, 0) + 1


@attrs.define
class Outcome:
    """One played fault."""

    kind: str
    recovery: float | None


@attrs.frozen
class Sample:
    """Process resources at one moment."""

    rss_mib: float
    fds: int
    threads: int


def sample() -> Sample:
    """Resident memory, open file descriptors and threads of this process (Linux /proc)."""
    rss_kib = 0.0
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = float(line.split()[1])
    fds = len(os.listdir("/proc/self/fd"))
    return Sample(rss_kib / _BYTES_PER_KIB, fds, threading.active_count())


# ---------------------------------------------------------------- the run


@attrs.frozen
class SoakReport:
    """What a soak run found."""

    minutes: float
    outcomes: tuple[Outcome, ...]
    messages: int
    holes: int
    missing: int
    covered_by_gaps: int
    uncovered_missing: int
    dropped: int
    samples: tuple[Sample, ...]
    final_state: str

    @property
    def unrecovered(self) -> int:
        """Faults the stream did not recover from within the budget."""
        return sum(1 for outcome in self.outcomes if outcome.recovery is None)

    @property
    def holes_accounted(self) -> bool:
        """Every hole is covered by a gap report or by counted drops."""
        return self.uncovered_missing <= self.dropped

    @property
    def resources_flat(self) -> bool:
        """The last sample is within tolerance of the first."""
        if len(self.samples) < _FIRST_AND_LAST:
            return True
        first, last = self.samples[0], self.samples[-1]
        return (
            last.rss_mib - first.rss_mib <= RSS_TOLERANCE_MIB
            and last.fds - first.fds <= FD_TOLERANCE
            and abs(last.threads - first.threads) <= THREAD_TOLERANCE
        )

    @property
    def ok(self) -> bool:
        """Every fault recovered, every hole accounted for, resources flat."""
        return (
            bool(self.outcomes)
            and self.unrecovered == 0
            and self.holes_accounted
            and self.resources_flat
        )

    def lines(self) -> list[str]:
        """The report for a human."""
        verdict = "every hole accounted for" if self.holes_accounted else "UNACCOUNTED HOLES"
        out = [
            f"soak: {self.minutes:g} min, {len(self.outcomes)} faults, final state "
            f"{self.final_state}",
            "",
            "recovery per fault kind (seconds)",
        ]
        out.append(f"  {'kind':<14} {'played':>6} {'ok':>4} {'median':>8} {'max':>8}")
        for kind in FAULT_KINDS:
            times = [o.recovery for o in self.outcomes if o.kind == kind.name]
            done = [t for t in times if t is not None]
            median = f"{statistics.median(done):8.3f}" if done else f"{'-':>8}"
            worst = f"{max(done):8.3f}" if done else f"{'-':>8}"
            out.append(f"  {kind.name:<14} {len(times):>6} {len(done):>4} {median} {worst}")
        out += [
            "",
            f"messages delivered {self.messages}; sequence holes {self.holes} "
            f"({self.missing} messages), covered by a gap report {self.covered_by_gaps}; "
            f"messages in holes without one {self.uncovered_missing}, dropped and counted "
            f"{self.dropped}: {verdict}",
        ]
        if self.samples:
            first, last = self.samples[0], self.samples[-1]
            rss = [s.rss_mib for s in self.samples]
            fds = [s.fds for s in self.samples]
            threads = [s.threads for s in self.samples]
            out.append(
                f"RSS MiB first {first.rss_mib:.1f} last {last.rss_mib:.1f} "
                f"(min {min(rss):.1f} max {max(rss):.1f}); fds first {first.fds} last {last.fds} "
                f"(max {max(fds)}); threads first {first.threads} last {last.threads} "
                f"(max {max(threads)}): {'flat' if self.resources_flat else 'GROWING'}"
            )
        out.append("soak: ok" if self.ok else "soak: FAILED")
        return out


class _Watch:
    """Events the run waits on: a session lost, data after a mark."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.lost = threading.Event()
        self.wanted_error: str | None = None
        self.error_seen = threading.Event()

    def on_record(self, record: TransitionRecord) -> None:
        if record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value:
            self.lost.set()
        if record.error is not None and record.error == self.wanted_error:
            self.error_seen.set()


def _play(
    kind: FaultKind, sim: SimulatorThread, ctl: StreamController, watch: _Watch
) -> float | None:
    """Inject ``kind`` and wait for the recovery; its duration, or None past the budget."""
    watch.lost.clear()
    watch.error_seen.clear()
    watch.wanted_error = kind.undo_after
    started = time.monotonic()
    deadline = started + RECOVERY_BUDGET
    kind.inject(sim)
    if kind.disconnects and not watch.lost.wait(RECOVERY_BUDGET):
        return None
    if kind.undo_after is not None and not watch.error_seen.wait(RECOVERY_BUDGET):
        return None
    if kind.undo is not None:
        kind.undo(sim)
    watch.ledger.data.clear()
    if not ctl.wait_synced(max(0.0, deadline - time.monotonic())):
        return None
    if not watch.ledger.data.wait(max(0.0, deadline - time.monotonic())):
        return None
    return time.monotonic() - started


def run_soak(
    minutes: float,
    *,
    interval: float = 4.0,
    seed: int = 7,
    say: Callable[[str], None] = print,
) -> SoakReport:
    """Play random faults for ``minutes``; see the module docstring."""
    rng = random.Random(seed)
    ledger = Ledger()
    watch = _Watch(ledger)
    outcomes: list[Outcome] = []
    samples: list[Sample] = []
    with SimulatorThread(SimConfig(rate=SIM_RATE, seed=seed, reap_delay=0.0)) as sim:
        config = attrs.evolve(CONFIG, url=sim.url("iex"))
        ctl = StreamController(
            Credentials(DEMO_KEY_ID, DEMO_SECRET),
            config,
            on_quote=ledger.on_message,
            on_trade=ledger.on_message,
            on_gap=ledger.on_gap,
            models="raw",
            symbols=SYMBOLS,
            rng=random.Random(seed),
        )
        ctl.add_listener(watch.on_record)
        end = time.monotonic() + minutes * _SECONDS_PER_MINUTE
        try:
            ctl.start()
            if not (ctl.wait_synced(WARMUP_BUDGET) and ledger.data.wait(WARMUP_BUDGET)):
                say("soak: the stream did not come up")
                return _report(minutes, outcomes, ledger, ctl, samples)
            samples.append(sample())
            while time.monotonic() < end:
                kind = rng.choice(FAULT_KINDS)
                recovery = _play(kind, sim, ctl, watch)
                outcomes.append(Outcome(kind.name, recovery))
                shown = f"{recovery:.3f} s" if recovery is not None else "NOT RECOVERED"
                say(
                    f"{time.monotonic() - end + minutes * _SECONDS_PER_MINUTE:8.1f}s "
                    f"{kind.name:<14} {shown}"
                )
                samples.append(sample())
                if recovery is None:
                    break
                pause = interval * rng.uniform(0.5, 1.5)
                threading.Event().wait(min(pause, max(0.0, end - time.monotonic())))
        finally:
            ctl.stop()
            ctl.close()
        return _report(minutes, outcomes, ledger, ctl, samples)


def _report(
    minutes: float,
    outcomes: Sequence[Outcome],
    ledger: Ledger,
    ctl: StreamController,
    samples: Sequence[Sample],
) -> SoakReport:
    health = ctl.health()
    return SoakReport(
        minutes=minutes,
        outcomes=tuple(outcomes),
        messages=ledger.messages,
        holes=ledger.holes,
        missing=ledger.missing,
        covered_by_gaps=ledger.covered_by_gaps,
        uncovered_missing=ledger.uncovered_missing,
        dropped=health.dropped_messages,
        samples=tuple(samples),
        final_state=health.state.value,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.soak``: exit 0 when the run is ok."""
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument(
        "--interval", type=float, default=4.0, help="mean seconds between faults (default 4)"
    )
    parser.add_argument("--seed", type=int, default=7, help="faults, prices and jitter")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    report = run_soak(args.minutes, interval=args.interval, seed=args.seed, say=say)
    for line in report.lines():
        say(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
