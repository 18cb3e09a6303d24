"""The faults of ``streamfsm demo``: what is played, in which order, and what became of each."""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord

__all__ = [
    "FAULTS",
    "WAITING_STATES",
    "FaultKind",
    "FaultResult",
    "FaultSpec",
    "elapsed",
    "rounded",
    "session_lost",
]


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
WAITING_STATES: Final = frozenset(
    {State.BACKOFF.value, State.CIRCUIT_OPEN.value, State.STOPPED.value}
)


def session_lost(record: TransitionRecord) -> bool:
    """True when ``record`` leaves the subscribed state: the session was lost."""
    return record.src == State.SUBSCRIBED.value and record.dst != State.SUBSCRIBED.value
