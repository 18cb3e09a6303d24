"""What ``streamfsm demo`` prints: status lines, the quote table and the final summary.

Plain text only, so the demo runs without the optional ``rich`` package; the live view
(:mod:`streamfsm.cli.demo.live_view`) builds on these rows.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from streamfsm.cli.demo.faults import elapsed, rounded
from streamfsm.cli.demo.progress import Progress
from streamfsm.cli.demo.script import Script
from streamfsm.pricing import PricingService, QuoteSnapshot

__all__ = [
    "DIAGRAM_NAME",
    "JOURNAL_NAME",
    "LOG_NAME",
    "QUOTE_HEADER",
    "SUMMARY_NAME",
    "mermaid_diagram",
    "quote_rows",
    "seconds",
    "status_line",
    "summary_json",
    "summary_lines",
]

#: The files a run writes to its output directory; the summary names them.
JOURNAL_NAME: Final = "journal.jsonl"
DIAGRAM_NAME: Final = "state-diagram.mmd"
SUMMARY_NAME: Final = "summary.json"
LOG_NAME: Final = "streamfsm.log"
MS_PER_SECOND: Final = 1000.0


def _money(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _age(snapshot: QuoteSnapshot) -> str:
    return f"{snapshot.age * MS_PER_SECOND:.0f} ms"


def status_line(service: PricingService, now: float) -> str:
    """One plain status line: state, time in state and counters at ``now`` (seconds)."""
    health = service.health()
    stale = service.statistics()
    return (
        f"{now:6.2f}s  [{health.state.value} {health.time_in_state:.1f}s] "
        f"quotes {health.messages.get('quotes', 0)} trades {health.messages.get('trades', 0)} | "
        f"reconnects {health.reconnects} | gaps open {health.open_gaps} | "
        f"stale {stale.stale}/{stale.tracked} | malformed {health.malformed_frames} | "
        f"callback errors {health.callback_errors}"
    )


def quote_rows(service: PricingService) -> Iterator[tuple[str, ...]]:
    """One row per tracked symbol, highest rank first, in the columns of QUOTE_HEADER."""
    tracked = service.tracked()
    for symbol, priority in tracked.items():
        snapshot = service.quote(symbol)
        if snapshot is None:
            yield (symbol, str(priority), "-", "-", "-", "-", "-", "no quote yet")
            continue
        stale = snapshot.stale_reason.value if snapshot.stale_reason is not None else "fresh"
        yield (
            symbol,
            str(priority),
            _money(snapshot.bid),
            _money(snapshot.ask),
            f"{snapshot.mid:.3f}" if snapshot.mid is not None else "-",
            _money(snapshot.spread),
            _age(snapshot),
            stale,
        )


QUOTE_HEADER: Final = ("symbol", "prio", "bid", "ask", "mid", "spread", "age", "stale")


def seconds(value: float | None) -> str:
    """``1.23 s``, or ``-`` for None."""
    return "-" if value is None else f"{value:.2f} s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return [
        ("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()
        for row in (header, *rows)
    ]


def _gap_rows(progress: Progress) -> list[tuple[str, str, str]]:
    per_symbol: dict[str, list[float]] = collections.defaultdict(list)
    for report in progress.gaps:
        if report.channel != "quotes":
            continue
        start = report.last_seen_before or report.lost_at
        per_symbol[report.symbol].append((report.first_seen_after - start).total_seconds())
    rows = []
    for symbol in progress.symbols:
        windows = per_symbol.get(symbol, [])
        longest = f"{max(windows):.2f} s" if windows else "-"
        rows.append((symbol, str(len(windows)), longest))
    return rows


def summary_lines(
    service: PricingService,
    progress: Progress,
    script: Script,
    output: Path,
    failures: Sequence[str],
) -> list[str]:
    """The summary printed at the end: faults, quotes, gaps, counters, files and the result."""
    health = service.health()
    lines = ["", "summary"]
    if script.results:
        rows = [
            (
                str(index),
                result.spec.title,
                seconds(rounded(result.injected_at, 2)),
                result.detected_by or "-",
                seconds(elapsed(result.injected_at, result.reconnected_at)),
                seconds(result.recovery),
                result.status(),
                result.evidence,
            )
            for index, result in enumerate(script.results, start=1)
        ]
        header = (
            "#",
            "fault",
            "at",
            "detected by",
            "reconnected",
            "recovered",
            "result",
            "evidence",
        )
        lines += _table(header, rows)
        lines.append(
            "  (reconnected: subscribed again; recovered: every symbol freshly priced again;"
            " both from the injection)"
        )
    lines += ["", "quotes at the end (stale: disconnected, as the service is stopped)"]
    lines += _table(QUOTE_HEADER, list(quote_rows(service)))
    lines += ["", "gaps per symbol (quotes; window = last quote before to first quote after)"]
    lines += _table(("symbol", "gaps", "longest window"), _gap_rows(progress))
    lines += [
        "",
        f"messages: {health.messages.get('quotes', 0)} quotes, "
        f"{health.messages.get('trades', 0)} trades; connection attempts {health.attempts}, "
        f"reconnects {health.reconnects}, breaker trips {health.breaker_trips}, "
        f"malformed frames {health.malformed_frames}, callback errors {health.callback_errors}, "
        f"dropped {health.dropped_messages}",
        f"journal: {output / JOURNAL_NAME} ({len(service.controller.journal())} transitions)",
        f"state diagram: {output / DIAGRAM_NAME}   summary: {output / SUMMARY_NAME}   "
        f"log: {output / LOG_NAME}",
        "",
    ]
    if failures:
        lines += ["result: FAILED", *(f"  - {failure}" for failure in failures)]
    elif script.results:
        lines.append(f"result: all {len(script.results)} faults recovered")
    else:
        lines.append("result: calm run, the stream stayed up")
    return lines


def summary_json(
    service: PricingService, progress: Progress, script: Script, failures: Sequence[str]
) -> dict[str, Any]:
    """The machine-readable summary written to ``summary.json``."""
    health = service.health()
    return {
        "ok": not failures,
        "failures": list(failures),
        "faults": [result.to_json() for result in script.results],
        "gaps": {symbol: int(count) for symbol, count, _longest in _gap_rows(progress)},
        "messages": dict(health.messages),
        "attempts": health.attempts,
        "reconnects": health.reconnects,
        "malformed_frames": health.malformed_frames,
        "callback_errors": health.callback_errors,
        "transitions": len(service.controller.journal()),
    }


def mermaid_diagram() -> str:
    """The state diagram as Mermaid, from the transition table."""
    from streamfsm.audit.diagram import render_mermaid

    return render_mermaid()
