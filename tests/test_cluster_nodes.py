"""Chaos on real ``streamfsm node`` processes: the holder killed or stopped, connections counted.

Every member is a ``streamfsm node`` subprocess on a real nats-server (the ``nats_server``
fixture) reading a real simulator that allows one authenticated connection per key, as Alpaca
does. Tests wait on the nodes' event lines with bounded timeouts; the failover times they see are
printed (``pytest -rP`` shows them) and asserted only against generous bounds that still tell the
designed path from a broken one.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamfsm import ClusterConfig, StreamConfig, StreamController
from streamfsm.cli.cluster_demo.nodes import NodeGroup, NodeProcess
from streamfsm.cli.cluster_demo.play import CONNECTION_LIMIT, recovered
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.config import BackoffPolicy, StalePolicy
from streamfsm.credentials import KEY_ID_VARIABLE, SECRET_VARIABLE, Credentials
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimStats, SimulatorThread

#: Several Python processes start per test; on a loaded machine that takes far longer than the
#: suite's default 60 s budget allows for.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: Generous bound for anything awaited: Python processes start slowly on a loaded machine.
PATIENCE = 45.0
#: The default lease TTL, as a deployment would run it.
TTL = 2.0
#: Beyond lease expiry plus the budget's 1 s: a loaded 2-core machine delays the new holder's
#: processes (waking, connecting to the simulator, authenticating, relaying) but not the server's
#: TTL. A takeover stuck behind a 406 cool-down or a second lease wait would still exceed it.
LOADED_MARGIN = 6.0
#: A long TTL for the SIGTERM test: waiting the lease out would take at least 3/4 of it (the
#: last renewal is at most a quarter TTL old), so data back well before that proves the release.
LONG_TTL = 12.0
SYMBOLS = {"n1": ("AAPL", "MSFT"), "n2": ("AAPL", "TSLA"), "n3": ("NVDA",)}
ENV = {**os.environ, KEY_ID_VARIABLE: DEMO_KEY_ID, SECRET_VARIABLE: DEMO_SECRET}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator with one connection per key, freeing a closed socket's slot at once."""
    with SimulatorThread(SimConfig(rate=200, batch=4, seed=11, reap_delay=0.0)) as simulator:
        yield simulator


class ConnectionWatch:
    """Samples the simulator at every event it has (connection, auth, frame): the most
    authenticated connections open at once."""

    def __init__(self, sim: SimulatorThread) -> None:
        self.most = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(sim,), name="watch")
        self._thread.start()

    def _see(self, stats: SimStats) -> bool:
        open_now = [info for info in stats.connections if info.open and info.authenticated]
        self.most = max(self.most, len(open_now))
        return self._done.is_set()

    def _watch(self, sim: SimulatorThread) -> None:
        sim.wait_for(self._see, timeout=4 * PATIENCE)

    def close(self) -> int:
        """Stop watching (data must still flow: the next event ends the wait); the maximum."""
        self._done.set()
        self._thread.join(PATIENCE)
        assert not self._thread.is_alive()
        return self.most


def _group(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path, ttl: float
) -> NodeGroup:
    return NodeGroup(
        nats_server.url,
        "chaos",
        sim.url(),
        ENV,
        extra=["--lease-ttl", str(ttl), "--summary-every", "0"],
        log_dir=tmp_path,
    )


def _holder(
    group: NodeGroup, names: list[str], newer_than: int
) -> Callable[[], tuple[str, int] | None]:
    def check() -> tuple[str, int] | None:
        for name in names:
            for line in group.nodes[name].lines("lease"):
                if line.fields["to"] == "holder" and int(line.fields["epoch"]) > newer_than:
                    return name, int(line.fields["epoch"])
        return None

    return check


def _start_all(group: NodeGroup) -> tuple[str, int]:
    """Start n1..n3, wait until each gets its quotes; the holder and its epoch."""
    for name, symbols in SYMBOLS.items():
        group.start(name, symbols)

    def subscribed() -> bool:
        return all(
            set(SYMBOLS[name]) <= {line.fields["symbol"] for line in node.lines("data")}
            for name, node in group.nodes.items()
        )

    group.wait(subscribed, PATIENCE, "every node getting its quotes")
    return group.wait(_holder(group, list(SYMBOLS), 0), PATIENCE, "a holder")


def _recovery(group: NodeGroup, survivors: list[str], since: float) -> dict[str, float]:
    """Per survivor, when data flowed again for all its symbols after ``since``."""

    def check() -> dict[str, float] | None:
        times = {name: recovered(group.nodes[name], SYMBOLS[name], since) for name in survivors}
        return None if None in times.values() else {k: v for k, v in times.items() if v}

    return group.wait(check, PATIENCE, "data again on every survivor")


def _union_served(sim: SimulatorThread, symbols: set[str]) -> SimStats:
    """Wait until the one open connection subscribes exactly ``symbols`` (quotes)."""

    def served(stats: SimStats) -> bool:
        open_now = stats.open_connections
        return len(open_now) == 1 and set(open_now[0].subscriptions.quotes) == symbols

    return sim.wait_for(served, PATIENCE)


def _lease_lines(node: NodeProcess, to: str) -> list[float]:
    return [line.at for line in node.lines("lease") if line.fields["to"] == to]


def test_kill_9_of_the_holder_hands_the_connection_to_a_follower(
    nats_server: LocalNatsServer,
    sim: SimulatorThread,
    tmp_path: Path,
) -> None:
    """kill -9 of the holder: a follower holds under a newer epoch, every survivor gets data."""
    watch = ConnectionWatch(sim)
    with _group(nats_server, sim, tmp_path, TTL) as group:
        killed, old_epoch = _start_all(group)
        kill_at = _kill(group.nodes[killed], signal.SIGKILL)
        survivors = [name for name in SYMBOLS if name != killed]
        new_holder, new_epoch = group.wait(
            _holder(group, survivors, old_epoch), PATIENCE, "a new holder"
        )
        back = _recovery(group, survivors, kill_at)
        assert new_epoch > old_epoch
        # The lease expired (nothing released it): the followers found it vacant after the kill.
        vacancies = [
            line
            for name in survivors
            for line in group.nodes[name].lines("lease", after=kill_at)
            if line.fields["to"] == "candidate"
        ]
        assert vacancies
        assert {line.fields["reason"] for line in vacancies} <= {"vacated", "no_renewal_seen"}
        assert all(
            line.fields["reason"] == "handover"
            for name in survivors
            for line in group.nodes[name].lines("gap", after=kill_at)
        )
        takeover = _lease_lines(group.nodes[new_holder], "holder")[-1] - kill_at
        slowest = max(back.values()) - kill_at
        _record(f"kill -9: takeover {takeover:.3f} s, data again everywhere {slowest:.3f} s")
        assert takeover >= TTL * 0.5, "a lease cannot change hands long before it expires"
        assert slowest < TTL + 1.0 + LOADED_MARGIN, back
        # The killed holder's interest expires; Alpaca keeps exactly the survivors' union.
        _union_served(sim, {symbol for name in survivors for symbol in SYMBOLS[name]})
        assert watch.close() == 1
        stats = sim.stats()
        assert stats.errors_sent.get(CONNECTION_LIMIT, 0) == 0
        assert stats.auth_successes == 2  # one authenticated connection per tenure
        for name in survivors:
            _kill(group.nodes[name], signal.SIGTERM)
            assert group.nodes[name].wait_exit(PATIENCE) == 0


def test_sigterm_of_the_holder_releases_the_lease_and_data_resumes_at_once(
    nats_server: LocalNatsServer,
    sim: SimulatorThread,
    tmp_path: Path,
) -> None:
    """SIGTERM of the holder: Alpaca closed, lease deleted, a follower takes over long before
    the lease could have expired; the old holder exits 0."""
    watch = ConnectionWatch(sim)
    with _group(nats_server, sim, tmp_path, LONG_TTL) as group:
        stopped, old_epoch = _start_all(group)
        old = group.nodes[stopped]
        stop_at = _kill(old, signal.SIGTERM)
        assert old.wait_exit(PATIENCE) == 0
        survivors = [name for name in SYMBOLS if name != stopped]
        new_holder, new_epoch = group.wait(
            _holder(group, survivors, old_epoch), PATIENCE, "a new holder"
        )
        back = _recovery(group, survivors, stop_at)
        assert new_epoch > old_epoch
        # The old holder resigned (closing Alpaca), then released: resigning -> stopped.
        [resigned] = _lease_lines(old, "resigning")
        [released] = [
            line.at
            for line in old.lines("lease")
            if line.fields["from"] == "resigning" and line.fields["to"] == "stopped"
        ]
        taken = _lease_lines(group.nodes[new_holder], "holder")[-1]
        assert stop_at < resigned <= released < taken
        # Followers saw the key deleted, not a silent holder.
        reasons = {
            line.fields["reason"]
            for name in survivors
            for line in group.nodes[name].lines("lease", after=stop_at)
            if line.fields["to"] == "candidate"
        }
        assert reasons == {"vacated"}
        slowest = max(back.values()) - stop_at
        _record(f"SIGTERM: data again everywhere {slowest:.3f} s (lease TTL {LONG_TTL} s)")
        assert slowest < LONG_TTL * 0.75 - 3.0, "the lease was waited out, not released"
        assert watch.close() == 1
        assert sim.stats().errors_sent.get(CONNECTION_LIMIT, 0) == 0


def test_a_paused_holder_keeps_its_socket_the_new_holder_waits_and_the_old_one_fences(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path
) -> None:
    """SIGSTOP of the holder past its TTL: a follower takes the lease but the simulator refuses
    its connection (406) while the paused socket lives; after SIGCONT the old holder fences and
    closes, the new holder connects, and every process, the old holder included, gets data."""
    watch = ConnectionWatch(sim)
    with _group(nats_server, sim, tmp_path, TTL) as group:
        paused, old_epoch = _start_all(group)
        old = group.nodes[paused]
        pause_at = _kill(old, signal.SIGSTOP)
        others = [name for name in SYMBOLS if name != paused]
        new_holder, new_epoch = group.wait(
            _holder(group, others, old_epoch), PATIENCE, "a new holder"
        )
        assert new_epoch > old_epoch
        # The paused holder's socket is still open: the new holder's connection is refused.
        sim.wait_for(lambda stats: stats.errors_sent.get(CONNECTION_LIMIT, 0) > 0, PATIENCE)
        resume_at = _kill(old, signal.SIGCONT)
        # Resumed, the old holder finds its fence deadline passed (or its lease taken): it
        # resigns, closes Alpaca and follows.
        fenced = group.wait(
            lambda: next(
                (
                    line
                    for line in old.lines("lease", after=resume_at)
                    if line.fields["from"] == "holder"
                ),
                None,
            ),
            PATIENCE,
            "the old holder fencing",
        )
        assert fenced.fields["to"] == "resigning"
        assert fenced.fields["reason"] in {
            "fence_deadline",
            "taken_over",
            "renew_refused",
            "store_lost",
        }
        group.wait(
            lambda: any(
                line.fields["from"] == "resigning" and line.fields["to"] == "follower"
                for line in old.lines("lease", after=resume_at)
            ),
            PATIENCE,
            "the old holder following",
        )
        back = _recovery(group, list(SYMBOLS), resume_at)
        _record(
            f"SIGSTOP: data again everywhere {max(back.values()) - resume_at:.3f} s after SIGCONT "
            f"({resume_at - pause_at:.3f} s paused)"
        )
        assert new_holder != paused
        assert watch.close() == 1
        stats = sim.stats()
        assert stats.auth_successes == 2  # the paused holder's, then the new holder's
        # Nothing the resumed holder read from its old socket was relayed: no member ever saw a
        # frame of the old tenure after the new one (the fence is checked per frame).
        for name in SYMBOLS:
            _kill(group.nodes[name], signal.SIGTERM)
            assert group.nodes[name].wait_exit(PATIENCE) == 0
        for name in others:
            [final] = group.nodes[name].lines("stopped")
            assert final.fields["stale_frames"] == "0", final.text


def test_rolling_restarts_never_open_two_authenticated_connections(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path
) -> None:
    """Holders stopped, killed and replaced in turn: at every simulator event at most one
    authenticated connection is open, no 406 is sent, one authentication per tenure."""
    watch = ConnectionWatch(sim)
    symbols_of = dict(SYMBOLS)
    with _group(nats_server, sim, tmp_path, TTL) as group:
        holder, epoch = _start_all(group)
        epochs = {epoch}
        for round_number, how in enumerate((signal.SIGTERM, signal.SIGKILL, signal.SIGTERM)):
            at = _kill(group.nodes[holder], how)
            status = group.nodes[holder].wait_exit(PATIENCE)
            assert status == (0 if how == signal.SIGTERM else -signal.SIGKILL)
            replacement = f"r{round_number}"
            symbols_of[replacement] = symbols_of[holder]
            group.start(replacement, symbols_of[replacement])
            live = [name for name, node in group.nodes.items() if node.running]
            holder, epoch = group.wait(_holder(group, live, epoch), PATIENCE, "a new holder")
            epochs.add(epoch)

            def flowing(live: list[str] = live, at: float = at) -> bool:
                return all(recovered(group.nodes[n], symbols_of[n], at) for n in live)

            group.wait(flowing, PATIENCE, "data again everywhere")
        assert watch.close() == 1
        stats = sim.stats()
        assert stats.errors_sent.get(CONNECTION_LIMIT, 0) == 0
        assert stats.auth_successes == len(epochs)


def _record(text: str) -> None:
    """A measured figure, shown by ``pytest -rP`` (speed is asserted only against bounds)."""
    sys.stdout.write(f"{text}\n")


def _kill(node: NodeProcess, signum: int) -> float:
    """Send ``signum``; the monotonic time just before."""
    at = time.monotonic()
    node.signal(signum)
    return at


# ---------------------------------------------------------------- churning interest


CHURN_UNIVERSE = ("AAPL", "AMD", "AMZN", "GOOGL", "JPM", "META", "MSFT", "NVDA", "QQQ", "SPY")
CHURN_STEPS = 12


def test_churning_interest_of_five_members_keeps_alpaca_on_the_union(
    nats_server: LocalNatsServer, sim: SimulatorThread
) -> None:
    """Five in-process members subscribe, unsubscribe, one leaves and the holder stops: after
    every step the simulator's one connection subscribes exactly the union of live interest."""
    rng = random.Random(5)
    config = StreamConfig(
        url=sim.url(),
        stale=StalePolicy(quotes=None),
        backoff=BackoffPolicy(initial=0.05, maximum=0.2),
    )
    members: dict[str, StreamController] = {}
    try:
        for index in range(5):
            name = f"c{index}"
            members[name] = StreamController(
                Credentials(DEMO_KEY_ID, DEMO_SECRET),
                config,
                cluster=ClusterConfig(url=nats_server.url, name="churn", member=name),
                on_quote=lambda _quote: None,
                models="fast",
                symbols=rng.sample(CHURN_UNIVERSE, 2),
            )
            members[name].start()
        live = dict(members)

        def union() -> set[str]:
            return {symbol for ctl in live.values() for symbol in ctl.desired().quotes}

        for ctl in live.values():
            assert ctl.wait_synced(PATIENCE)
        _union_served(sim, union())
        for step in range(CHURN_STEPS):
            name = rng.choice(sorted(live))
            ctl = live[name]
            held = sorted(ctl.desired().quotes)
            if len(held) > 1 and rng.random() < 0.5:  # keep one: an empty member goes idle
                ctl.unsubscribe(quotes=[rng.choice(held)])
            else:
                ctl.subscribe(quotes=[rng.choice(CHURN_UNIVERSE)])
            if step == CHURN_STEPS // 3:
                live.pop(name).stop()  # a member leaves: its interest is deleted
            if step == 2 * CHURN_STEPS // 3:
                holder = next(n for n, c in live.items() if c.health().role == "holder")
                live.pop(holder).stop()  # the holder leaves: a handover mid-churn
            for member in live.values():
                assert member.wait_synced(PATIENCE)
            _union_served(sim, union())
        assert sim.stats().errors_sent.get(CONNECTION_LIMIT, 0) == 0
    finally:
        for ctl in members.values():
            ctl.close()


def test_churning_interest_of_five_node_processes_keeps_alpaca_on_the_union(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path
) -> None:
    """Five `streamfsm node` processes change their symbols on standard input; one is killed,
    the holder is stopped: after every step the simulator's one connection subscribes exactly
    the union of the live members' symbols."""
    rng = random.Random(9)
    watch = ConnectionWatch(sim)
    wanted = {f"p{index}": set(rng.sample(CHURN_UNIVERSE, 2)) for index in range(5)}
    with _group(nats_server, sim, tmp_path, TTL) as group:
        for name, symbols in wanted.items():
            group.start(name, sorted(symbols), commands=True)

        def union() -> set[str]:
            return {symbol for symbols in wanted.values() for symbol in symbols}

        _union_served(sim, union())
        sent = dict.fromkeys(wanted, 0)
        for step in range(CHURN_STEPS):
            name = rng.choice(sorted(wanted))
            node = group.nodes[name]
            held = sorted(wanted[name])
            if len(held) > 1 and rng.random() < 0.5:  # keep one: an empty member goes idle
                symbol = rng.choice(held)
                wanted[name].discard(symbol)
                node.command(f"unsubscribe {symbol}")
            else:
                symbol = rng.choice(CHURN_UNIVERSE)
                wanted[name].add(symbol)
                node.command(f"subscribe {symbol}")
            sent[name] += 1
            applied = group.wait(
                lambda node=node, count=sent[name]: (
                    node.lines("command") if len(node.lines("command")) >= count else None
                ),
                PATIENCE,
                f"step {step} applied",
            )
            assert all("error" not in line.fields for line in applied), applied
            if step == CHURN_STEPS // 3:
                victim = next(n for n in sorted(wanted) if n != _current_holder(group))
                group.nodes[victim].signal(signal.SIGKILL)  # its interest expires after a TTL
                del wanted[victim]
            if step == 2 * CHURN_STEPS // 3:
                holder = _current_holder(group)
                group.nodes[holder].signal(signal.SIGTERM)  # a handover mid-churn
                assert group.nodes[holder].wait_exit(PATIENCE) == 0
                del wanted[holder]
            _union_served(sim, union())
        assert watch.close() == 1


def _current_holder(group: NodeGroup) -> str:
    """The running member whose latest role line says holder."""
    for name, node in group.nodes.items():
        role = node.last("role")
        if node.running and role is not None and role.fields["role"] == "holder":
            return name
    raise AssertionError("no running holder")
