"""The timeline as a picture: a dependency-free, byte-stable SVG.

One panel per run, one horizontal band per state plus one for outages, seconds on the x axis, one
rectangle per interval with a tooltip. An outage measured from the session's last data shows the
stretch between data stopping and the loss being detected in a lighter shade, so the picture says
which start it uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from streamfsm._core.machine import State
from streamfsm.audit.timeline import OutageStart, Timeline, state_order

__all__ = ["render_svg"]

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
#: Between the last data and the detection of the loss: data had stopped, nobody knew yet.
_UNDETECTED_COLOUR: Final = "#ef9a9a"
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
    bands = [*state_order(i.state for i in timeline.intervals), _OUTAGE_BAND]
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
    ]
    for o in timeline.outages:
        if o.start_basis is OutageStart.LAST_DATA and o.detected > o.start:
            spans.append(
                (
                    _OUTAGE_BAND,
                    o.start,
                    o.detected,
                    _UNDETECTED_COLOUR,
                    f"outage, data stopped (last data), not yet detected: {o.cause}",
                )
            )
            spans.append(
                (_OUTAGE_BAND, o.detected, o.end, _OUTAGE_COLOUR, f"outage, detected: {o.cause}")
            )
        else:
            spans.append(
                (_OUTAGE_BAND, o.start, o.end, _OUTAGE_COLOUR, f"outage from detection: {o.cause}")
            )
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
