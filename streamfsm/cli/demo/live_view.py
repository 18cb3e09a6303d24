"""The live terminal view of ``streamfsm demo``; the one demo module that needs ``rich``.

``rich`` comes with the ``demo`` extra (``pip install 'streamfsm[demo]'``; ``make demo``
installs it). Without it this module cannot be imported, and the demo prints plain lines.
"""

from __future__ import annotations

import collections
import queue
from collections.abc import Callable
from typing import Final, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamfsm._core.machine import State
from streamfsm.cli.demo.faults import elapsed
from streamfsm.cli.demo.progress import Progress
from streamfsm.cli.demo.script import Script
from streamfsm.cli.demo.view import QUOTE_HEADER, quote_rows, seconds
from streamfsm.pricing import PricingService

__all__ = ["LiveView", "show_live"]

#: Events kept for the live view.
RECENT_EVENTS: Final = 8
#: Seconds between redraws: eight a second reads as live without costing the stream CPU.
REFRESH_INTERVAL: Final = 1 / 8


class LiveView:
    """The rich live view, rendered by rich's refresh thread from thread-safe reads."""

    def __init__(
        self, service: PricingService, progress: Progress, script: Script, duration: float
    ) -> None:
        self._service = service
        self._progress = progress
        self._script = script
        self._duration = duration
        self._events: collections.deque[str] = collections.deque(maxlen=RECENT_EVENTS)

    def render(self) -> RenderableType:
        """The current view: header, faults, quotes, counters and recent events."""
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
                seconds(elapsed(result.injected_at, result.reconnected_at)),
                seconds(result.recovery),
            )
        quotes = Table(title="quotes", expand=False)
        for column in QUOTE_HEADER:
            quotes.add_column(
                column, justify="right" if column not in ("symbol", "stale") else "left"
            )
        for row in quote_rows(self._service):
            quotes.add_row(*row, style="red" if row[-1] not in ("fresh",) else None)
        counters = Text(
            f"quotes {health.messages.get('quotes', 0)}  trades {health.messages.get('trades', 0)}"
            f"  gaps open {health.open_gaps}  gap reports {len(self._progress.gaps)}"
            f"  malformed {health.malformed_frames}  callback errors {health.callback_errors}"
            f"  dropped {health.dropped_messages}"
        )
        events = Text("\n".join(self._events) or "-")
        return Group(header, faults, quotes, counters, Text("recent events", style="bold"), events)


def show_live(out: TextIO, view: LiveView, wait: Callable[[float], bool]) -> None:
    """Redraw ``view`` on ``out`` (a terminal) until the run is over, then leave it shown.

    ``wait(seconds)`` waits up to that long and returns False once the run is over. The redraws
    happen on the calling thread (rich's own refresh thread is not used, so nothing is left
    running when this returns).
    """
    console = Console(file=out, highlight=False, soft_wrap=True)
    with Live(console=console, get_renderable=view.render, auto_refresh=False) as live:
        live.refresh()
        while wait(REFRESH_INTERVAL):
            live.refresh()
        live.refresh()
