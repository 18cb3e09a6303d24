"""``python -m benchmarks.cluster_failover [--smoke]``: data again after the holder's end.

Three member processes (``benchmarks.cluster_member``), each a clustered ``StreamController`` on
its own symbol, share one connection to the simulator through a local nats-server (lease TTL
2 s, the default). The holder is ended ``ROUNDS`` times with SIGKILL (a crash: nothing released,
the kernel closes its Alpaca socket) and ``ROUNDS`` times with SIGTERM (a rolling deploy:
``stop()`` closes Alpaca, then releases the lease); a replacement member starts after each.
Measured per round: from the signal to the last surviving member's first quote after it, which
covers the lease's expiry or release, the new holder's Alpaca session and its first relayed
frame. Median and max.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Final

from benchmarks import cluster_md
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.sim import SimConfig, SimulatorThread

__all__ = ["measure"]

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS: Final = ROOT / "docs" / "benchmarks.md"
ROUNDS: Final = 10
SMOKE_ROUNDS: Final = 1
MEMBERS: Final = 3
#: Generous bounds on each wait, far above the measured figures (a broken run fails, not hangs).
PATIENCE: Final = 60.0
SYMBOLS: Final = ("AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GOOG", "META", "NFLX")


class _Member:
    """One member process and the lines it printed."""

    def __init__(
        self,
        sim_url: str,
        nats_url: str,
        name: str,
        symbol: str,
        lines: queue.Queue[tuple[_Member, str]],
    ) -> None:
        self.name = name
        self.role = ""
        self.data: list[float] = []
        self.lines = lines
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cluster_member", sim_url, nats_url, name, symbol],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put((self, line.strip()))

    def take(self, line: str) -> None:
        """Note one line this member printed."""
        word, _, rest = line.partition(" ")
        if word == "ROLE":
            self.role = rest
        elif word == "DATA":
            self.data.append(float(rest))

    def end(self, signum: int) -> None:
        self.process.send_signal(signum)
        self.process.wait(PATIENCE)


def _wait(condition: Any, lines: queue.Queue[tuple[_Member, str]], what: str) -> None:
    """Wait until ``condition()`` holds, taking in the members' lines as they arrive.

    Raises:
        TimeoutError: after ``PATIENCE`` seconds.
    """
    deadline = time.monotonic() + PATIENCE
    while not condition():
        try:
            member, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(what) from None
        member.take(line)


def _round(members: list[_Member], lines: queue.Queue[tuple[_Member, str]], signum: int) -> float:
    """End the holder with ``signum``; seconds until every survivor has data again."""
    _wait(lambda: sum(m.role == "holder" for m in members) == 1, lines, "one holder")
    (holder,) = [m for m in members if m.role == "holder"]
    survivors = [m for m in members if m is not holder]
    _wait(lambda: all(m.data for m in survivors), lines, "data before the end")
    ended = time.monotonic()
    holder.end(signum)
    members.remove(holder)
    _wait(
        lambda: all(m.data and m.data[-1] > ended for m in survivors),
        lines,
        "data again after the end",
    )
    first = [next(t for t in m.data if t > ended) for m in survivors]
    return max(first) - ended


def _summary(times: list[float]) -> dict[str, Any]:
    return {
        "rounds": len(times),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
    }


def measure(*, smoke: bool = False) -> dict[str, Any]:
    """Run both kinds of ending; the figures as a dict."""
    rounds = SMOKE_ROUNDS if smoke else ROUNDS
    results: dict[str, Any] = {"lease_ttl_s": 2.0, "members": MEMBERS}
    with (
        tempfile.TemporaryDirectory() as store,
        LocalNatsServer(Path(store)) as nats_server,
        SimulatorThread(SimConfig(rate=400, batch=1, seed=5)) as sim,
    ):
        names = iter(range(1000))
        members: list[_Member] = []
        lines: queue.Queue[tuple[_Member, str]] = queue.Queue()

        def join() -> None:
            index = next(names)
            symbol = SYMBOLS[index % len(SYMBOLS)]
            members.append(_Member(sim.url(), nats_server.url, f"m{index}", symbol, lines))

        try:
            for _ in range(MEMBERS):
                join()
            for label, signum in (("kill", signal.SIGKILL), ("stop", signal.SIGTERM)):
                times = []
                for _ in range(rounds):
                    times.append(_round(members, lines, signum))
                    join()
                results[f"data_again_after_{label}"] = _summary(times)
        finally:
            for member in members:
                member.end(signal.SIGTERM)
    return results


def main() -> None:
    """Measure, print, and keep the figures for the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one round of each only")
    args = parser.parse_args()
    results = measure(smoke=args.smoke)
    print(json.dumps(results, indent=2))
    if not args.smoke:
        cluster_md.FAILOVER.write_text(json.dumps(results, indent=2) + "\n")
        lease = cluster_md.load()
        if lease is not None and DOCS.exists():
            DOCS.write_text(cluster_md.splice(DOCS.read_text(), lease))


if __name__ == "__main__":
    main()
