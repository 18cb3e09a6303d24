"""The cluster section of ``docs/benchmarks.md``, rendered from ``results/cluster.json``.

``benchmarks.report`` includes it when the file exists, so a full ``make bench`` keeps it, and
``python -m benchmarks.cluster --write-docs`` splices a fresh one in without rerunning the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

__all__ = ["RESULTS", "load", "saved_section", "section", "splice"]

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "benchmarks" / "results" / "cluster.json"
#: ``benchmarks.cluster_failover``'s figures: data again at every member, with real processes.
FAILOVER: Final = ROOT / "benchmarks" / "results" / "cluster_failover.json"
HEADING: Final = "## Cluster: failover and the bus"
NEXT_HEADING: Final = "## Reading"


def load() -> dict[str, Any] | None:
    """The last full cluster run, or None when there is none."""
    if not RESULTS.exists():
        return None
    data: dict[str, Any] = json.loads(RESULTS.read_text())
    return data


def section(results: dict[str, Any]) -> list[str]:
    """The section's lines (no trailing blank line)."""
    kill, stop, bus = results["failover_kill"], results["failover_stop"], results["bus"]
    ttl = results["lease_ttl_s"]
    return [
        HEADING,
        "",
        "`python -m benchmarks.cluster` (part of `make bench`): three processes' leases on a "
        f"local nats-server, lease TTL {ttl:g} s, one event loop. A *kill* drops the holder's "
        "NATS connection without a release, as `kill -9` does; a *stop* fences and deletes the "
        "lease. Measured: from the holder's end to another member holding the lease (the "
        "Alpaca session the new holder then opens is not included).",
        "",
        "| handover | runs | median | max | budget |",
        "|---|---:|---:|---:|---|",
        f"| kill | {kill['runs']} | {kill['median_s'] * 1e3:,.0f} ms | "
        f"{kill['max_s'] * 1e3:,.0f} ms | TTL + 1 s = {(ttl + 1) * 1e3:,.0f} ms |",
        f"| stop | {stop['runs']} | {stop['median_s'] * 1e3:,.1f} ms | "
        f"{stop['max_s'] * 1e3:,.1f} ms | 200 ms |",
        "",
        f"The bus, per hop (publisher, nats-server, subscriber on separate connections), one "
        f"{bus['frame_bytes']}-byte quote frame per message with the 16-byte epoch and sequence "
        "prefix, against handing the same frame to a function in-process:",
        "",
        "| path | frames/s | µs per frame | p50 latency | p99 latency |",
        "|---|---:|---:|---:|---:|",
        f"| bus | {bus['bus_frames_per_s']:,.0f} | {bus['bus_us_per_frame']:.2f} | "
        f"{bus['latency_p50_us']:,.0f} µs | {bus['latency_p99_us']:,.0f} µs |",
        f"| in-process | {bus['in_process_frames_per_s']:,.0f} | "
        f"{bus['in_process_us_per_frame']:.2f} | n/a | n/a |",
        "",
        f"Latency is from the publish call to the subscriber's callback at "
        f"{bus['latency_rate_per_s']:,.0f} frames/s, both in one process; gaps seen: "
        f"{bus['gaps']}.",
        *_failover_lines(),
    ]


def _failover_lines() -> list[str]:
    """The end-to-end failover table, when ``benchmarks.cluster_failover`` has run."""
    if not FAILOVER.exists():
        return []
    data: dict[str, Any] = json.loads(FAILOVER.read_text())
    kill, stop = data["data_again_after_kill"], data["data_again_after_stop"]
    ttl = data["lease_ttl_s"]
    return [
        "",
        "`python -m benchmarks.cluster_failover` (part of `make bench`): "
        f"{data['members']} member processes, each a clustered `StreamController` on its own "
        "symbol, share one connection to the simulator. The holder is ended with SIGKILL (a "
        "crash) or SIGTERM (`stop()`: Alpaca closed, lease released); measured from the signal "
        "to the last surviving member's first quote after it: the lease's expiry or release, "
        "the new holder's Alpaca session and the first relayed frame.",
        "",
        "| holder ended by | rounds | median | max | budget |",
        "|---|---:|---:|---:|---|",
        f"| SIGKILL | {kill['rounds']} | {kill['median_ms']:,.0f} ms | {kill['max_ms']:,.0f} ms "
        f"| TTL + 1 s = {(ttl + 1) * 1e3:,.0f} ms |",
        f"| SIGTERM | {stop['rounds']} | {stop['median_ms']:,.0f} ms | {stop['max_ms']:,.0f} ms "
        "| 200 ms |",
    ]


def saved_section() -> list[str]:
    """A blank line and the section from the saved results; nothing when there are none."""
    results = load()
    return [] if results is None else ["", *section(results)]


def splice(document: str, results: dict[str, Any]) -> str:
    """``document`` with its cluster section replaced, or inserted before the reading."""
    lines = document.split("\n")
    new = section(results)
    if HEADING in lines:
        start = lines.index(HEADING)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        return "\n".join([*lines[:start], *new, "", *lines[end:]])
    at = lines.index(NEXT_HEADING) if NEXT_HEADING in lines else len(lines)
    return "\n".join([*lines[:at], *new, "", *lines[at:]])
