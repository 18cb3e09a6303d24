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
* an *outage* is a period outside ``subscribed`` after the run first reached it, from the record
  that left ``subscribed`` (its cause) to the next record that enters it again, or to the end;
* a *connection attempt* is a record that enters ``connecting`` (a reflexive ``restart`` counts,
  an internal transition does not); a *fatal stop* enters ``stopped`` by a row guarded by
  ``is_fatal``.

The timeline assumes a journal that :func:`streamfsm.audit.verify.verify_file` accepts; on one it
does
not, it follows each record's ``dst`` and its numbers describe the records, not the truth.
:func:`render_svg` draws the timelines as a dependency-free, deterministic SVG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final
from xml.sax.saxutils import escape, quoteattr

import attrs

from streamfsm._core import machine
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord

__all__ = [
    "Interval",
    "Outage",
    "Timeline",
    "build_timelines",
    "format_timelines",
    "render_svg",
]

#: The guard that marks a row as a fatal stop.
_FATAL_GUARD: Final = "is_fatal"
#: The first ``seq`` of a run.
_FIRST_SEQ: Final = 1
#: A whole, in percent.
_PERCENT: Final = 100.0


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
    """A period outside ``subscribed`` after the run first reached it.

    Attributes:
        start: seconds from the run's first record, when ``subscribed`` was left.
        end: when ``subscribed`` was entered again, or the run's last record.
        recovered: True when ``subscribed`` was reached again within the run.
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
        outages: the periods outside ``subscribed`` after it was first reached.
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
        totals = dict.fromkeys(_state_order(interval.state for interval in self.intervals), 0.0)
        for interval in self.intervals:
            totals[interval.state] += interval.duration
        return totals


def _state_order(seen: Iterable[str]) -> list[str]:
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
    """The periods outside ``subscribed`` after the run first reached it."""
    subscribed = State.SUBSCRIBED.value
    outages: list[Outage] = []
    leaving: TransitionRecord | None = None
    current = run[0].src
    for record in run:
        if current == subscribed and record.dst != subscribed:
            leaving = record
        elif leaving is not None and record.dst == subscribed:
            outages.append(_outage(leaving, record.monotonic - origin, origin, recovered=True))
            leaving = None
        current = record.dst
    if leaving is not None:
        outages.append(_outage(leaving, run[-1].monotonic - origin, origin, recovered=False))
    return tuple(outages)


def _outage(leaving: TransitionRecord, end: float, origin: float, *, recovered: bool) -> Outage:
    return Outage(
        start=leaving.monotonic - origin,
        end=end,
        recovered=recovered,
        seq=leaving.seq,
        trigger=leaving.trigger,
        reason=leaving.reason,
        error=leaving.error,
        code=leaving.code,
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
        f"outages after first reaching subscribed: {len(timeline.outages)}, "
        f"{_seconds(outage_total)} in all"
    )
    lines.extend(
        f"  at {_seconds(outage.start)} for {_seconds(outage.duration)}, "
        f"{'recovered' if outage.recovered else 'not recovered by the end of the journal'}; "
        f"cause: {outage.cause} (seq {outage.seq})"
        for outage in timeline.outages
    )
    lines.append("")
    lines.append(f"connection attempts (records entering connecting): {timeline.attempts}")
    lines.append(f"fatal stops: {timeline.fatal_stops}")
    return lines


def format_timelines(timelines: Sequence[Timeline]) -> str:
    """A plain-text report of ``timelines``, one section per run, ending in a newline."""
    if not timelines:
        return "the journal has no records\n"
    sections = [
        "\n".join(_format_timeline(timeline, number, len(timelines)))
        for number, timeline in enumerate(timelines, start=1)
    ]
    return "\n\n".join(sections) + "\n"


# ---------------------------------------------------------------- SVG

_SVG_WIDTH: Final = 960.0
_MARGIN_LEFT: Final = 130.0
_MARGIN_RIGHT: Final = 30.0
_PANEL_TITLE_HEIGHT: Final = 28.0
_BAND_HEIGHT: Final = 20.0
_BAND_GAP: Final = 6.0
_AXIS_HEIGHT: Final = 44.0
_PANEL_GAP: Final = 20.0
_LABEL_PADDING: Final = 8.0
_TICK_LENGTH: Final = 5.0
_TEXT_BASELINE: Final = 14.0
_MIN_RECT_WIDTH: Final = 1.5
#: About this many ticks on a time axis.
_TARGET_TICKS: Final = 8
#: A run that lasted zero seconds is drawn on an axis this long.
_MIN_AXIS_SPAN: Final = 1.0
#: Tick steps are 1, 2 or 5 times a power of ten.
_NICE_STEPS: Final = (1.0, 2.0, 5.0, 10.0)
_DECIMAL_BASE: Final = 10.0
_FONT: Final = "Helvetica, Arial, sans-serif"
_FONT_SIZE: Final = 12
_BAND_BACKGROUND: Final = "#f4f4f4"
_AXIS_COLOUR: Final = "#333333"
_OUTAGE_BAND: Final = "outage"
_OUTAGE_COLOUR: Final = "#b71c1c"
_OTHER_STATE_COLOUR: Final = "#7e57c2"
#: One colour per state, colour-blind friendly enough to tell the bands apart by position too.
_STATE_COLOURS: Final = {
    State.IDLE.value: "#9e9e9e",
    State.CONNECTING.value: "#f2c14e",
    State.SUBSCRIBED.value: "#2e7d32",
    State.BACKOFF.value: "#ef6c00",
    State.CIRCUIT_OPEN.value: "#c62828",
    State.STOPPED.value: "#37474f",
}


def _tick_step(span: float) -> float:
    """A 1-2-5 step that cuts ``span`` into about :data:`_TARGET_TICKS` parts."""
    raw = span / _TARGET_TICKS
    power = _DECIMAL_BASE ** math.floor(math.log10(raw))
    return next(step * power for step in _NICE_STEPS if step * power >= raw)


def _tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as ``step`` needs."""
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


def _num(value: float) -> str:
    """A coordinate, with fixed precision so the output is byte-stable."""
    return f"{value:.2f}"


def _panel(timeline: Timeline, number: int, count: int, top: float) -> tuple[list[str], float]:
    """The SVG elements of one run, from ``top``; returns them and the panel's height."""
    bands = [*_state_order(i.state for i in timeline.intervals), _OUTAGE_BAND]
    axis_span = max(timeline.span, _MIN_AXIS_SPAN)
    plot_width = _SVG_WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    scale = plot_width / axis_span
    band_top = top + _PANEL_TITLE_HEIGHT
    row_of = {band: band_top + i * (_BAND_HEIGHT + _BAND_GAP) for i, band in enumerate(bands)}
    axis_y = band_top + len(bands) * (_BAND_HEIGHT + _BAND_GAP)
    title = (
        f"run {number} of {count}: correlation_id {timeline.correlation_id}, "
        f"seq {timeline.first_seq}..{timeline.last_seq}, span {timeline.span:.3f} s"
    )
    parts = [
        f'<g class="run" id="run-{number}">',
        f'<text x="{_num(_MARGIN_LEFT)}" y="{_num(top + _TEXT_BASELINE)}" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    for band, y in row_of.items():
        parts.append(
            f'<text x="{_num(_MARGIN_LEFT - _LABEL_PADDING)}" '
            f'y="{_num(y + _TEXT_BASELINE)}" text-anchor="end">{escape(band)}</text>'
        )
        parts.append(
            f'<rect x="{_num(_MARGIN_LEFT)}" y="{_num(y)}" width="{_num(plot_width)}" '
            f'height="{_num(_BAND_HEIGHT)}" fill="{_BAND_BACKGROUND}"/>'
        )
    spans = [
        (i.state, i.start, i.end, _STATE_COLOURS.get(i.state, _OTHER_STATE_COLOUR), i.state)
        for i in timeline.intervals
    ] + [
        (_OUTAGE_BAND, o.start, o.end, _OUTAGE_COLOUR, f"outage: {o.cause}")
        for o in timeline.outages
    ]
    for band, start, end, colour, label in spans:
        width = max((end - start) * scale, _MIN_RECT_WIDTH)
        tooltip = f"{label}: {start:.3f} s to {end:.3f} s ({end - start:.3f} s)"
        parts.append(
            f'<rect x="{_num(_MARGIN_LEFT + start * scale)}" y="{_num(row_of[band])}" '
            f'width="{_num(width)}" height="{_num(_BAND_HEIGHT)}" fill="{colour}">'
            f"<title>{escape(tooltip)}</title></rect>"
        )
    parts.append(
        f'<line x1="{_num(_MARGIN_LEFT)}" y1="{_num(axis_y)}" '
        f'x2="{_num(_MARGIN_LEFT + plot_width)}" y2="{_num(axis_y)}" '
        f'stroke="{_AXIS_COLOUR}"/>'
    )
    # A span too large for a float (absurd but parseable times) gets no ticks, not a crash.
    step = _tick_step(axis_span) if math.isfinite(axis_span / _TARGET_TICKS) else math.inf
    for index in range(math.floor(axis_span / step) + 1 if math.isfinite(step) else 0):
        value = index * step
        x = _MARGIN_LEFT + value * scale
        parts.append(
            f'<line x1="{_num(x)}" y1="{_num(axis_y)}" x2="{_num(x)}" '
            f'y2="{_num(axis_y + _TICK_LENGTH)}" stroke="{_AXIS_COLOUR}"/>'
        )
        parts.append(
            f'<text x="{_num(x)}" y="{_num(axis_y + _TICK_LENGTH + _TEXT_BASELINE)}" '
            f'text-anchor="middle">{_tick_label(value, step)}</text>'
        )
    parts.append(
        f'<text x="{_num(_MARGIN_LEFT + plot_width / 2)}" y="{_num(axis_y + _AXIS_HEIGHT - 4)}" '
        f'text-anchor="middle">seconds since the run\'s first record (monotonic clock)</text>'
    )
    parts.append("</g>")
    return parts, axis_y + _AXIS_HEIGHT - top


def render_svg(timelines: Sequence[Timeline]) -> str:
    """The timelines as one SVG document: a panel per run, a band per state and one for outages.

    Each panel has the state names on the y axis, seconds since the run's first record on the
    x axis, and a rectangle (with a tooltip) per interval. A zero-length interval (the final
    state) is drawn :data:`_MIN_RECT_WIDTH` wide so it stays visible.

    Returns:
        UTF-8 SVG text, byte-stable for the same timelines.
    """
    body: list[str] = []
    top = _PANEL_GAP
    for number, timeline in enumerate(timelines, start=1):
        parts, height = _panel(timeline, number, len(timelines), top)
        body.extend(parts)
        top += height + _PANEL_GAP
    if not timelines:
        body.append(
            f'<text x="{_num(_MARGIN_LEFT)}" y="{_num(top + _TEXT_BASELINE)}">'
            "the journal has no records</text>"
        )
        top += _PANEL_TITLE_HEIGHT + _PANEL_GAP
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(_SVG_WIDTH)}" '
        f'height="{_num(top)}" viewBox="0 0 {_num(_SVG_WIDTH)} {_num(top)}" '
        f'font-family={quoteattr(_FONT)} font-size="{_FONT_SIZE}">',
        "<title>streamfsm journal timeline</title>",
        f'<rect width="{_num(_SVG_WIDTH)}" height="{_num(top)}" fill="white"/>',
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"
