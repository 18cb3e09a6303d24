"""The one-minute soak: random simulator faults, every one recovered, every hole accounted for."""

from __future__ import annotations

import pytest

from tools.soak import FAULT_KINDS, run_soak

#: Long enough for about fifteen faults at one every three seconds.
MINUTES = 1.0


@pytest.mark.soak
@pytest.mark.timeout(240)
def test_a_one_minute_soak_recovers_from_every_fault() -> None:
    """Faults from the simulator's table for a minute: all recovered, holes covered, flat."""
    lines: list[str] = []
    report = run_soak(MINUTES, interval=3.0, seed=11, say=lines.append)
    text = "\n".join([*lines, *report.lines()])
    assert report.ok, text
    assert len(report.outcomes) >= len(FAULT_KINDS), text
    assert report.unrecovered == 0
    assert report.uncovered_missing <= report.dropped
    assert report.final_state == "stopped"
