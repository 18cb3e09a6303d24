"""The cluster demo: three ``streamfsm node`` processes, the holder killed, a follower takes over.

:func:`run_demo` starts a local ``nats-server`` (JetStream, from the venv) and the simulator,
then three nodes as real subprocesses, each for its own symbols. Once every node gets its quotes
it kills the holder with SIGKILL, waits until a follower holds the lease under a newer epoch and
every surviving node gets data again (a ``gap`` line for each of its symbols, after the kill),
lets data flow a little, stops the survivors with SIGTERM, and prints the handover timeline and
each node's figures. The result is 0 only when every survivor recovered and exited cleanly.

The simulator lets one authenticated connection per key at a time, as Alpaca does, and frees a
connection's slot as soon as its TCP connection closes (``reap_delay`` 0): the kernel closes a
killed process's sockets at once, so a crashed holder's slot is free long before its lease
expires. (A host that vanishes from the network leaves Alpaca holding the slot for about 90 s;
``streamfsm sim --reap-delay 90`` shows that case.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TextIO

import attrs

from streamfsm.cli.cluster_demo.nodes import NodeGroup, NodeLine, NodeProcess
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.credentials import KEY_ID_VARIABLE, SECRET_VARIABLE
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

__all__ = ["CONNECTION_LIMIT", "ClusterDemoOptions", "Outcome", "recovered", "run_demo"]

#: Each node's symbols: AAPL is wanted by two nodes, so the union has a shared pair.
NODE_SYMBOLS: Final = {
    "n1": ("AAPL", "MSFT"),
    "n2": ("AAPL", "TSLA"),
    "n3": ("NVDA",),
}
#: The simulator's error code for a second connection of one key.
CONNECTION_LIMIT: Final = 406
#: Events the timeline shows (``lease`` lines only when the role changes hands).
_TIMELINE_LEASE: Final = frozenset({"holder", "resigning", "candidate"})
_CLUSTER: Final = "demo"


@attrs.frozen(kw_only=True)
class ClusterDemoOptions:
    """How the demo runs.

    Attributes:
        settle: seconds of data before the holder is killed.
        after: seconds of data after every survivor recovered.
        timeout: the bound on every wait (a node that never subscribes, a takeover that never
            comes); generous, since a loaded machine starts Python processes slowly.
        rate: the simulator's messages per second.
        lease_ttl: the lease's time to live, seconds.
        log_dir: where each node's standard error goes; None: a temporary directory.
    """

    settle: float = 2.0
    after: float = 2.0
    timeout: float = 60.0
    rate: float = 200.0
    lease_ttl: float = 2.0
    log_dir: Path | None = None


@attrs.frozen(kw_only=True)
class Outcome:
    """What the demo saw.

    Attributes:
        killed: the member killed (the first holder).
        new_holder: the member that took over.
        old_epoch: the killed holder's tenure.
        new_epoch: the new holder's tenure.
        kill_at: ``time.monotonic()`` of the kill.
        taken_over_at: when the new holder's lease machine entered ``holder``.
        recovered_at: per survivor, its first gap line after the kill (its data flows again).
        exit_codes: per survivor, its exit status after SIGTERM.
        refusals: 406 refusals the simulator sent (a second connection of one key).
    """

    killed: str
    new_holder: str
    old_epoch: int
    new_epoch: int
    kill_at: float
    taken_over_at: float
    recovered_at: Mapping[str, float]
    exit_codes: Mapping[str, int]
    refusals: int


def recovered(node: NodeProcess, symbols: tuple[str, ...], after: float) -> float | None:
    """When ``node`` had data for every one of ``symbols`` after ``after``, or None while one is
    missing. A node that had data before sees it again with a ``gap`` line (it comes with the
    first message after the outage); a node started since, with its first ``data`` line."""
    latest = None
    for symbol in symbols:
        times = [
            line.at
            for line in node.lines(after=after)
            if line.event in ("gap", "data") and line.fields["symbol"] == symbol
        ]
        if not times:
            return None
        latest = max(times[0], latest) if latest is not None else times[0]
    return latest


def _holder(group: NodeGroup, candidates: list[str], newer_than: int) -> tuple[str, int] | None:
    """The member among ``candidates`` whose lease entered ``holder`` with an epoch above
    ``newer_than``, with that epoch."""
    for name in candidates:
        for line in group.nodes[name].lines("lease"):
            epoch = int(line.fields["epoch"])
            if line.fields["to"] == "holder" and epoch > newer_than:
                return name, epoch
    return None


def _taken_over_at(node: NodeProcess, epoch: int) -> float:
    return next(
        line.at
        for line in node.lines("lease")
        if line.fields["to"] == "holder" and int(line.fields["epoch"]) == epoch
    )


def _subscribed(group: NodeGroup) -> bool:
    """Every node got a quote of each of its symbols."""
    for name, node in group.nodes.items():
        seen = {line.fields["symbol"] for line in node.lines("data")}
        if not set(NODE_SYMBOLS[name]) <= seen:
            return False
    return True


class _Printer:
    def __init__(self, out: TextIO, start: float) -> None:
        self.out = out
        self.start = start

    def say(self, text: str, at: float | None = None) -> None:
        stamp = (time.monotonic() if at is None else at) - self.start
        self.out.write(f"{stamp:8.3f}s  {text}\n")
        self.out.flush()


def run_demo(options: ClusterDemoOptions, out: TextIO) -> tuple[int, Outcome | None]:
    """Run the demo, printing to ``out``; the exit status and what it saw (None on a failure
    before the kill)."""
    with tempfile.TemporaryDirectory(prefix="streamfsm-cluster-demo-") as scratch:
        log_dir = options.log_dir or Path(scratch)
        printer = _Printer(out, time.monotonic())
        nats_server = LocalNatsServer(Path(scratch) / "jetstream")
        nats_server.start()
        try:
            sim_config = SimConfig(rate=options.rate, batch=4, seed=7, reap_delay=0.0)
            with SimulatorThread(sim_config) as sim:
                env = {**os.environ, KEY_ID_VARIABLE: DEMO_KEY_ID, SECRET_VARIABLE: DEMO_SECRET}
                extra = ["--lease-ttl", str(options.lease_ttl), "--summary-every", "0.5"]
                with NodeGroup(
                    nats_server.url, _CLUSTER, sim.url(), env, extra=extra, log_dir=log_dir
                ) as group:
                    printer.say(
                        f"nats-server {nats_server.url}; simulator {sim.url()} (one connection "
                        "per key; a closed socket frees its slot at once); node logs in "
                        f"{log_dir}"
                    )
                    try:
                        outcome = _play(group, options, printer)
                    except TimeoutError as error:
                        printer.say(f"FAILED: {error}")
                        return 1, None
                    refusals = sim.stats().errors_sent.get(CONNECTION_LIMIT, 0)
                    outcome = attrs.evolve(outcome, refusals=refusals)
                    _report(group, outcome, printer)
        finally:
            nats_server.stop()
    return (0 if _succeeded(outcome) else 1), outcome


def _play(group: NodeGroup, options: ClusterDemoOptions, printer: _Printer) -> Outcome:
    """Start, kill the holder, wait for the takeover and the data, stop the survivors.

    Raises:
        TimeoutError: when a step does not happen within ``options.timeout``.
    """
    for name, symbols in NODE_SYMBOLS.items():
        group.start(name, symbols)
        printer.say(f"started node {name} for {','.join(symbols)}")
    names = list(NODE_SYMBOLS)
    group.wait(lambda: _subscribed(group), options.timeout, "every node getting its quotes")
    killed, old_epoch = group.wait(lambda: _holder(group, names, 0), options.timeout, "a holder")
    printer.say(f"every node gets its quotes; {killed} holds the connection (epoch {old_epoch})")
    threading.Event().wait(options.settle)  # pacing: let data flow before the crash
    holder = group.nodes[killed]
    group.wait(
        lambda: any(int(line.fields["delivered"]) for line in holder.lines("figures")),
        options.timeout,
        "the holder's figures",
    )
    kill_at = time.monotonic()
    group.nodes[killed].signal(signal.SIGKILL)
    printer.say(f"kill -9 {killed} (the holder)", kill_at)
    survivors = [name for name in names if name != killed]
    new_holder, new_epoch = group.wait(
        lambda: _holder(group, survivors, old_epoch), options.timeout, "a new holder"
    )
    taken_over_at = _taken_over_at(group.nodes[new_holder], new_epoch)

    def all_recovered() -> dict[str, float] | None:
        times = {
            name: recovered(group.nodes[name], NODE_SYMBOLS[name], kill_at) for name in survivors
        }
        return None if None in times.values() else {k: v for k, v in times.items() if v}

    recovered_at = group.wait(all_recovered, options.timeout, "data again on every survivor")
    threading.Event().wait(options.after)  # pacing: show data flowing under the new holder
    for name in survivors:
        group.nodes[name].signal(signal.SIGTERM)
    exit_codes: dict[str, int] = {}
    for name in survivors:
        try:
            exit_codes[name] = group.nodes[name].wait_exit(options.timeout)
        except subprocess.TimeoutExpired:
            exit_codes[name] = -1
    return Outcome(
        killed=killed,
        new_holder=new_holder,
        old_epoch=old_epoch,
        new_epoch=new_epoch,
        kill_at=kill_at,
        taken_over_at=taken_over_at,
        recovered_at=recovered_at,
        exit_codes=exit_codes,
        refusals=0,
    )


def _succeeded(outcome: Outcome | None) -> bool:
    return outcome is not None and all(code == 0 for code in outcome.exit_codes.values())


def _timeline(group: NodeGroup, kill_at: float) -> list[tuple[float, str]]:
    """The lines that tell the handover, with their times, in time order."""
    rows: list[tuple[float, str]] = [(kill_at, "demo: kill -9 of the holder")]
    for name, node in group.nodes.items():
        first_gap_after_kill = True
        for line in node.lines():
            text = _describe(line, kill_at, first_gap_after_kill)
            if line.event == "gap" and line.at > kill_at:
                first_gap_after_kill = False
            if text is not None:
                rows.append((line.at, f"{name}: {text}"))
    return sorted(rows)


def _describe(line: NodeLine, kill_at: float, first_gap: bool) -> str | None:
    fields = line.fields
    if line.event == "joined":
        return "joined the election"
    if line.event == "lease" and fields["from"] == "resigning" and fields["to"] == "stopped":
        return "lease released (Alpaca closed first)"
    if line.event == "lease" and fields["to"] in _TIMELINE_LEASE and fields["trigger"] != "join":
        moved = f"{fields['from']} -> {fields['to']}"
        return f"lease {moved} ({fields['reason']}, epoch {fields['epoch']})"
    if line.event == "gap" and line.at > kill_at and first_gap:
        return f"data again ({fields['reason']} gap closed on {fields['symbol']})"
    if line.event == "stopped":
        return "stopped"
    return None


def _report(group: NodeGroup, outcome: Outcome, printer: _Printer) -> None:
    printer.say("handover timeline (times since the demo began):")
    for at, text in _timeline(group, outcome.kill_at):
        after = at - outcome.kill_at
        note = f"  [kill {after * 1000:+.0f} ms]" if at >= outcome.kill_at else ""
        printer.say(f"  {text}{note}", at)
    takeover_ms = (outcome.taken_over_at - outcome.kill_at) * 1000
    printer.say(
        f"failover: {outcome.new_holder} holds (epoch {outcome.old_epoch} -> "
        f"{outcome.new_epoch}) {takeover_ms:.0f} ms after the kill; data again "
        + ", ".join(
            f"on {name} after {(at - outcome.kill_at) * 1000:.0f} ms"
            for name, at in sorted(outcome.recovered_at.items())
        )
    )
    printer.say("figures per node (quotes delivered; gap reports by reason):")
    for name, node in group.nodes.items():
        last = node.last("stopped") or node.last("figures")
        fate = (
            "killed; its last figures"
            if name == outcome.killed
            else f"exit {outcome.exit_codes.get(name)}"
        )
        if last is None:
            printer.say(f"  {name}: no figures ({fate})")
            continue
        fields = last.fields
        printer.say(
            f"  {name} ({fate}): delivered {fields['delivered']}, gaps {fields['gaps']}, "
            f"bus frames received {fields['frames_received']}, published "
            f"{fields['frames_published']}, handovers {fields['handovers']}"
        )
    printer.say(f"simulator: {outcome.refusals} refusals (406) of a second connection")
    verdict = "recovered" if _succeeded(outcome) else "DID NOT RECOVER"
    printer.say(f"every surviving node {verdict}")
