"""What the demo's fault script waits for and the view shows, fed from the controller's loop."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import GapReport
from streamfsm.cli.demo.faults import WAITING_STATES, session_lost
from streamfsm.models import Quote
from streamfsm.pricing import PricingService

__all__ = ["DemoCallbackError", "Progress"]


class DemoCallbackError(RuntimeError):
    """Raised on purpose by the demo's quote hook, once, to show callback isolation."""


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
            failed = record.dst in WAITING_STATES and record.error is not None
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
