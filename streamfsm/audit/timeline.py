"""What a journal says happened, over time: time per state, outages, attempts, fatal stops.

A journal holds one or more *runs*: a run starts at the record with ``seq`` 1 (each controller
numbers its own transitions, and a new controller appends to the same file). Times come from the
records' ``monotonic`` readings, which only compare within a run, so every run gets its own
:class:`Timeline`, measured in seconds from its first record.

What the records can and cannot tell:

* a state lasts from the record that entered it to the next record; the state before the first
  record (``idle`` for a full run) has no known start and is not counted;
* the state the last record enters is counted up to that record's time only (zero seconds): the
  journal does not say how long it lasted after, so the times in states add up exactly to the
  span from the first record to the last;
* an *outage* is a period without data after the run first reached ``subscribed``: it starts
  when the session's data stopped (the ``last_data`` of the record that left ``subscribed``,
  schema 2) or, when the record does not say, at that record; it ends at the next record that
  enters ``subscribed`` again (recovered), at a user's ``stop``, or at the end of the journal.
  Leaving ``subscribed`` by ``stop`` is not an outage: the user asked for it;
* a *connection attempt* is a record that enters ``connecting`` (a reflexive ``restart`` counts,
  an internal transition does not); a *fatal stop* enters ``stopped`` by a row guarded by
  ``is_fatal``.

The timeline assumes a journal that :func:`streamfsm.audit.verify.verify_file` accepts; on one it
does not, it follows each record's ``dst`` and its numbers describe the records, not the truth.
:func:`streamfsm.audit.timeline_svg.render_svg` draws the timelines as a deterministic SVG.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from streamfsm._core import machine
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord

__all__ = [
    "Interval",
    "Outage",
    "OutageEnd",
    "OutageStart",
    "Timeline",
    "build_timelines",
    "format_timelines",
    "state_order",
]

#: The guard that marks a row as a fatal stop.
_FATAL_GUARD: Final = "is_fatal"
#: The first ``seq`` of a run.
_FIRST_SEQ: Final = 1
#: A whole, in percent.
_PERCENT: Final = 100.0
#: Triggers by which the user leaves ``subscribed`` on purpose: no outage.
_DELIBERATE: Final = frozenset({"stop"})


class OutageStart(enum.StrEnum):
    """What an outage's start is measured from."""

    #: The session's last market data (``last_data``): when data really stopped.
    LAST_DATA = "last data"
    #: The record that left ``subscribed`` (no ``last_data``: schema 1, or no data that session).
    DETECTED = "detected"


class OutageEnd(enum.StrEnum):
    """How an outage ended."""

    RECOVERED = "recovered"
    #: The user stopped the controller during the outage.
    STOPPED = "stopped by the user"
    #: The journal ends during the outage.
    OPEN = "not recovered by the end of the journal"


@attrs.frozen
class Interval:
    """A stretch of time in one state.

    Attributes:
        state: the state's name (a ``State`` value).
        start: seconds from the run's first record.
        end: seconds from the run's first record (``end == start`` for the final state).
    """

    state: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        """Seconds spent in the state."""
        return self.end - self.start


@attrs.frozen
class Outage:
    """A period without data after the run first reached ``subscribed``.

    Attributes:
        start: seconds from the run's first record: when data stopped (``start_basis`` says
            whether that is the session's last data or the record that left ``subscribed``).
        end: when ``subscribed`` was entered again, the user's ``stop``, or the last record.
        recovered: True when ``subscribed`` was reached again within the run.
        detected: when ``subscribed`` was left (equal to ``start`` unless measured from data).
        start_basis: what ``start`` is measured from.
        ending: how it ended.
        seq: the ``seq`` of the record that left ``subscribed``.
        trigger: that record's trigger (``connection_lost``, ``data_stale``, ``stop``, ...).
        reason: that record's reason.
        error: that record's error class name, if any.
        code: that record's Alpaca error code, if any.
    """

    start: float
    end: float
    recovered: bool
    seq: int
    trigger: str
    reason: str
    error: str | None
    code: int | None
    detected: float
    start_basis: OutageStart = OutageStart.DETECTED
    ending: OutageEnd = OutageEnd.OPEN

    @property
    def duration(self) -> float:
        """Seconds outside ``subscribed``."""
        return self.end - self.start

    @property
    def cause(self) -> str:
        """The cause in words: ``trigger (reason, error, code N)``."""
        details = [part for part in (self.reason, self.error) if part]
        if self.code is not None:
            details.append(f"code {self.code}")
        return f"{self.trigger} ({', '.join(details)})" if details else self.trigger


@attrs.frozen
class Timeline:
    """One run of a controller, measured from its records.

    Attributes:
        correlation_id: the controller's id (from the run's first record).
        first_seq: the ``seq`` of the run's first record.
        last_seq: the ``seq`` of its last record.
        records: how many records the run has.
        span: seconds from the first record to the last.
        intervals: consecutive stretches per state, adjacent ones of one state merged; they
            cover ``[0, span]`` exactly.
        outages: the periods without data after ``subscribed`` was first reached (a user's
            ``stop`` is not one).
        attempts: records entering ``connecting``.
        fatal_stops: records entering ``stopped`` through a fatal-error row.
        final_state: the state the last record entered.
    """

    correlation_id: str
    first_seq: int
    last_seq: int
    records: int
    span: float
    intervals: tuple[Interval, ...]
    outages: tuple[Outage, ...]
    attempts: int
    fatal_stops: int
    final_state: str

    def time_in_state(self) -> dict[str, float]:
        """Seconds per state: every ``State`` in table order, then any other name seen, sorted."""
        totals = dict.fromkeys(state_order(interval.state for interval in self.intervals), 0.0)
        for interval in self.intervals:
            totals[interval.state] += interval.duration
        return totals


def state_order(seen: Iterable[str]) -> list[str]:
    """Every ``State`` value in declaration order, then the other names in ``seen``, sorted."""
    known = [state.value for state in State]
    return known + sorted(set(seen) - set(known))


def _enters(record: TransitionRecord) -> bool:
    """True when ``record`` enters its ``dst`` (a state change or a reflexive row).

    An internal transition (a ``dest=None`` row) has ``dst == src`` too, but does not enter.
    """
    if record.dst != record.src:
        return True
    return any(
        row.trigger == record.trigger
        and row.dest is not None
        and row.dest.value == record.dst
        and any(source.value == record.src for source in row.sources)
        for row in machine.TRANSITIONS
    )


def _is_fatal_stop(record: TransitionRecord) -> bool:
    """True when ``record`` enters ``stopped`` through a row guarded by ``is_fatal``."""
    return record.dst == State.STOPPED.value and any(
        row.trigger == record.trigger
        and row.dest is State.STOPPED
        and _FATAL_GUARD in row.conditions
        and any(source.value == record.src for source in row.sources)
        for row in machine.TRANSITIONS
    )


def _split_runs(records: Iterable[TransitionRecord]) -> list[list[TransitionRecord]]:
    """The records cut before every ``seq`` 1 (the first run may start at any ``seq``)."""
    runs: list[list[TransitionRecord]] = []
    for record in records:
        if record.seq == _FIRST_SEQ or not runs:
            runs.append([])
        runs[-1].append(record)
    return runs


def _intervals(run: Sequence[TransitionRecord], origin: float) -> tuple[Interval, ...]:
    """Each record's ``dst`` until the next record, adjacent stretches of one state merged."""
    merged: list[Interval] = []
    for record, following in zip(run, [*run[1:], run[-1]], strict=True):
        start, end = record.monotonic - origin, following.monotonic - origin
        if merged and merged[-1].state == record.dst:
            merged[-1] = attrs.evolve(merged[-1], end=end)
        else:
            merged.append(Interval(record.dst, start, end))
    return tuple(merged)


def _outages(run: Sequence[TransitionRecord], origin: float) -> tuple[Outage, ...]:
    """The periods without data after the run first reached ``subscribed``."""
    subscribed = State.SUBSCRIBED.value
    outages: list[Outage] = []
    leaving: TransitionRecord | None = None
    entered_at = run[0].monotonic
    current = run[0].src
    for record in run:
        if current == subscribed and record.dst != subscribed:
            if record.trigger not in _DELIBERATE:
                leaving = record
        elif leaving is not None and record.dst == subscribed:
            outages.append(_outage(leaving, entered_at, record, origin, OutageEnd.RECOVERED))
            leaving = None
        elif leaving is not None and record.trigger in _DELIBERATE:
            outages.append(_outage(leaving, entered_at, record, origin, OutageEnd.STOPPED))
            leaving = None
        if record.dst == subscribed and current != subscribed:
            entered_at = record.monotonic
        current = record.dst
    if leaving is not None:
        outages.append(_outage(leaving, entered_at, run[-1], origin, OutageEnd.OPEN))
    return tuple(outages)


def _outage(
    leaving: TransitionRecord,
    subscribed_at: float,
    ending: TransitionRecord,
    origin: float,
    how: OutageEnd,
) -> Outage:
    """The outage ``leaving`` caused, ended by ``ending`` as ``how`` says.

    It starts at ``leaving.last_data`` when the record has one within the session that was
    subscribed from ``subscribed_at``, else at ``leaving`` itself.
    """
    detected = leaving.monotonic - origin
    last_data = leaving.last_data
    from_data = last_data is not None and subscribed_at <= last_data <= leaving.monotonic
    return Outage(
        start=last_data - origin if from_data and last_data is not None else detected,
        end=ending.monotonic - origin,
        recovered=how is OutageEnd.RECOVERED,
        seq=leaving.seq,
        trigger=leaving.trigger,
        reason=leaving.reason,
        error=leaving.error,
        code=leaving.code,
        detected=detected,
        start_basis=OutageStart.LAST_DATA if from_data else OutageStart.DETECTED,
        ending=how,
    )


def build_timelines(records: Iterable[TransitionRecord]) -> list[Timeline]:
    """One :class:`Timeline` per run of ``records`` (in journal order); empty for no records."""
    timelines = []
    for run in _split_runs(records):
        origin = run[0].monotonic
        timelines.append(
            Timeline(
                correlation_id=run[0].correlation_id,
                first_seq=run[0].seq,
                last_seq=run[-1].seq,
                records=len(run),
                span=run[-1].monotonic - origin,
                intervals=_intervals(run, origin),
                outages=_outages(run, origin),
                attempts=sum(1 for r in run if r.dst == State.CONNECTING.value and _enters(r)),
                fatal_stops=sum(1 for r in run if _is_fatal_stop(r)),
                final_state=run[-1].dst,
            )
        )
    return timelines


# ---------------------------------------------------------------- text


def _seconds(value: float) -> str:
    return f"{value:.3f} s"


def _share(part: float, whole: float) -> str:
    share = _PERCENT * part / whole if whole > 0 else 0.0
    return f"{share:5.1f} %"


def _format_timeline(timeline: Timeline, number: int, count: int) -> list[str]:
    """The report of one run."""
    lines = [
        f"run {number} of {count}: correlation_id {timeline.correlation_id}, "
        f"seq {timeline.first_seq}..{timeline.last_seq} ({timeline.records} records)",
        f"span {_seconds(timeline.span)} (monotonic, first record to last; the final state, "
        f"{timeline.final_state}, is counted up to the last record only)",
        "",
        "time in state",
    ]
    totals = timeline.time_in_state()
    width = max(len(state) for state in totals)
    lines.extend(
        f"  {state:<{width}}  {seconds:>12.3f} s  {_share(seconds, timeline.span)}"
        for state, seconds in totals.items()
    )
    lines.append(
        f"  {'total':<{width}}  {sum(totals.values()):>12.3f} s  "
        f"{_share(sum(totals.values()), timeline.span)}"
    )
    lines.append("")
    outage_total = sum(outage.duration for outage in timeline.outages)
    lines.append(
        f"outages after first reaching subscribed (a user's stop is not one): "
        f"{len(timeline.outages)}, {_seconds(outage_total)} in all"
    )
    lines.extend(
        f"  at {_seconds(outage.start)} ({_basis(outage)}) for {_seconds(outage.duration)}, "
        f"{outage.ending.value}; cause: {outage.cause} (seq {outage.seq})"
        for outage in timeline.outages
    )
    lines.append("")
    lines.append(f"connection attempts (records entering connecting): {timeline.attempts}")
    lines.append(f"fatal stops: {timeline.fatal_stops}")
    return lines


def _basis(outage: Outage) -> str:
    """What the outage's start is measured from, in words."""
    if outage.start_basis is OutageStart.LAST_DATA:
        return f"last data; detected at {_seconds(outage.detected)}"
    return "detected"


def format_timelines(timelines: Sequence[Timeline]) -> str:
    """A plain-text report of ``timelines``, one section per run, ending in a newline."""
    if not timelines:
        return "the journal has no records\n"
    sections = [
        "\n".join(_format_timeline(timeline, number, len(timelines)))
        for number, timeline in enumerate(timelines, start=1)
    ]
    return "\n\n".join(sections) + "\n"
