"""The fault script of ``streamfsm demo``: plays the faults on its own thread, judges each.

:class:`Script` injects each fault of :data:`~streamfsm.cli.demo.faults.FAULTS` into the
simulator, waits (on :class:`~streamfsm.cli.demo.progress.Progress`) until the controller noticed
it and every symbol is freshly priced again, and fills the fault's result from the journal and
the counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm.cli.demo.faults import FaultKind, FaultResult, FaultSpec, session_lost
from streamfsm.cli.demo.progress import Progress
from streamfsm.cli.demo.settings import (
    AUTH_TIMEOUT,
    CONNECTION_LIMIT_CODE,
    CONNECTION_LIMIT_COOLDOWN,
    CONNECTION_LIMIT_REFUSALS,
    MUTE_SECONDS,
    SETTLE,
    SLOW_AUTH_DELAY,
    STALE_QUOTES,
    STARTUP_BUDGET,
    TAIL,
    WARMUP,
)
from streamfsm.errors import StreamError
from streamfsm.pricing import PricingService
from streamfsm.sim import SimulatorThread

__all__ = ["Script"]


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
