"""The fault script of ``streamfsm demo``: the demo's timings, the faults and their bookkeeping.

:class:`Script` plays :data:`FAULTS` against the simulator on its own thread; :class:`Progress`
collects what the controller does (transitions, fresh quotes, gaps) so that the script can wait
for each recovery and the view can show it.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import GapReport
from streamfsm.config import BackoffPolicy, BreakerPolicy, StalePolicy, StreamConfig
from streamfsm.errors import StreamError
from streamfsm.models import Quote
from streamfsm.pricing import PricingService
from streamfsm.sim import SimulatorThread

__all__ = [
    "AUTH_TIMEOUT",
    "BACKOFF_INITIAL",
    "BACKOFF_MAXIMUM",
    "CONNECTION_LIMIT_COOLDOWN",
    "DEMO_CONFIG",
    "FAULTS",
    "STALE_QUOTES",
    "DemoCallbackError",
    "FaultKind",
    "FaultResult",
    "FaultSpec",
    "Progress",
    "Script",
    "elapsed",
    "rounded",
    "session_lost",
]

# ---------------------------------------------------------------- settings

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
#: How long the demo waits for the first prices before it gives up.
STARTUP_BUDGET: Final = 5.0


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
            "injected_at": rounded(self.injected_at),
            "detected_after": elapsed(self.injected_at, self.detected_at),
            "detected_by": self.detected_by,
            "reconnected_after": elapsed(self.injected_at, self.reconnected_at),
            "recovered_after": elapsed(self.injected_at, self.recovered_at),
            "evidence": self.evidence,
            "recovered": self.recovered,
            "failure": self.failure,
        }


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded to ``digits``, or None for None."""
    return None if value is None else round(value, digits)


def elapsed(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end`` rounded to milliseconds, or None when either is None."""
    return None if start is None or end is None else round(end - start, 3)


#: States entered after a failure; their journal reason says which.
_WAITING_STATES: Final = frozenset(
    {State.BACKOFF.value, State.CIRCUIT_OPEN.value, State.STOPPED.value}
)


def session_lost(record: TransitionRecord) -> bool:
    """True when ``record`` leaves the subscribed state: the session was lost."""
    return record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value


class Progress:
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

    @property
    def symbols(self) -> tuple[str, ...]:
        """The tracked symbols, in the order given."""
        return self._symbols

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
            if self.expecting_loss and session_lost(record):
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


class Script:
    """Plays the faults one after the other on its own thread, within the run's duration."""

    def __init__(
        self,
        sim: SimulatorThread,
        service: PricingService,
        progress: Progress,
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
        if not progress.wait(
            lambda: any(session_lost(r) for _t, r in progress.since(mark)), deadline
        ):
            result.failure = "the controller never noticed the fault"
            progress.expect_loss(False)
            return
        moment, record = next((t, r) for t, r in progress.since(mark) if session_lost(r))
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
        losses = [(t, r) for t, r in records if session_lost(r)]
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
