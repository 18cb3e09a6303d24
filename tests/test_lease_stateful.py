"""Hypothesis drives several lease cores sharing one fake KV store through faults.

Rules play time (with each process's clock drifting within the configured bound), the network
(deliver, reorder or lose any request, answer or watch notification), the operating system
(pause and resume a process, as SIGSTOP and SIGCONT do) and the operators (stop, rejoin, a lost
connection to the store). After every step: no two processes may publish, and a process that may
publish holds the live lease and will have fenced itself before that lease can expire, whatever
its clock does within the drift bound.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from lease_world import World

from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.lease_table import LEASE_TRANSITIONS, LeaseState

CONFIG = ClusterConfig(lease_ttl=2.0, renewals_per_ttl=4, max_clock_drift=0.05, fence_margin=0.1)
NAMES = ("a", "b", "c")
EXAMPLES = 200
EDGES = {
    (row.trigger, source.value, (row.dest or source).value)
    for row in LEASE_TRANSITIONS
    for source in row.sources
}

names = st.sampled_from(NAMES)


class LeaseCluster(RuleBasedStateMachine):
    """Three processes electing a holder through a lossy, reordering network."""

    @initialize(joiners=st.sets(names, min_size=1))
    def build(self, joiners: set[str]) -> None:
        """Every process starts; some join the election at once."""
        self.world = World(CONFIG, NAMES)
        for name in sorted(joiners):
            self._join(name)

    def _join(self, name: str) -> None:
        process = self.world.processes[name]
        process.core.request_join()
        self.world.run(process)

    # ------------------------------------------------------------ time and clocks

    @rule(seconds=st.floats(0.01, 3.0))
    def advance(self, seconds: float) -> None:
        """True time passes; timers of running processes fire."""
        self.world.advance(seconds)

    @rule(name=names, skew=st.floats(-1.0, 1.0))
    def set_clock_rate(self, name: str, skew: float) -> None:
        """A process's monotonic clock runs faster or slower, within the drift bound."""
        self.world.processes[name].rate = 1.0 + skew * CONFIG.max_clock_drift

    # ------------------------------------------------------------ network

    @precondition(lambda self: bool(self.world.deliverable()))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """Any deliverable message arrives, in any order."""
        index = data.draw(st.sampled_from(self.world.deliverable()))
        self.world.deliver(index)

    @rule()
    def calm_network(self) -> None:
        """Everything deliverable arrives, oldest first (a quiet moment on the wire)."""
        self.world.settle()

    @rule(seconds=st.floats(0.01, 1.5))
    def store_answers_slowly(self, seconds: float) -> None:
        """Every request reaches the store at once; the answers arrive ``seconds`` later."""
        for index in reversed(range(len(self.world.pending))):
            if self.world.pending[index].target == "kv":
                self.world.deliver(index)
        self.world.advance(seconds)
        self.world.settle()

    @precondition(lambda self: bool(self.world.pending))
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        """Any message is lost; a waiting sender sees its timeout."""
        index = data.draw(st.integers(0, len(self.world.pending) - 1))
        self.world.lose(index)

    # ------------------------------------------------------------ processes

    @rule(name=names)
    def pause(self, name: str) -> None:
        """A process stops running (SIGSTOP, a GC pause); its clock keeps going."""
        self.world.processes[name].paused = True

    @rule(name=names)
    def pause_past_the_lease(self, name: str) -> None:
        """A process is paused for longer than a whole lease TTL (the SIGSTOP chaos case)."""
        self.world.processes[name].paused = True
        self.world.advance(CONFIG.lease_ttl * 1.5)

    @rule(name=names)
    def resume(self, name: str) -> None:
        """A paused process runs again and fires whatever timers are overdue."""
        process = self.world.processes[name]
        process.paused = False
        self.world.fire_timers(process)

    @rule(name=names)
    def stop(self, name: str) -> None:
        """The operator stops a running process."""
        process = self.world.processes[name]
        if not process.paused:
            process.core.request_stop()
            self.world.run(process)

    @rule(name=names)
    def rejoin(self, name: str) -> None:
        """A stopped process joins again."""
        process = self.world.processes[name]
        if not process.paused and process.core.state is LeaseState.STOPPED:
            self._join(name)

    @rule(name=names)
    def store_lost(self, name: str) -> None:
        """A running process loses its connection to the store."""
        process = self.world.processes[name]
        if not process.paused:
            process.core.store_lost()
            self.world.run(process)

    # ------------------------------------------------------------ invariants

    @invariant()
    def never_two_publishers(self) -> None:
        """At most one process may publish at any moment."""
        publishers = self.world.publishers()
        assert len(publishers) <= 1, [p.name for p in publishers]

    @invariant()
    def a_publisher_holds_the_live_lease(self) -> None:
        """A process that may publish is the live entry's holder, for its own epoch."""
        entry = self.world.holder_entry()
        for process in self.world.publishers():
            assert entry is not None, f"{process.name} publishes without a live lease"
            assert (entry.member, entry.epoch) == (process.name, process.core.epoch)

    @invariant()
    def fenced_before_the_lease_can_expire(self) -> None:
        """Even on the slowest clock allowed, a holder's fence deadline comes before expiry."""
        slowest = 1.0 - CONFIG.max_clock_drift
        for process in self.world.processes.values():
            core = process.core
            if core.state is not LeaseState.HOLDER or not core.may_publish(process.local):
                continue
            entry = self.world.holder_entry()
            assert entry is not None
            fence_at = self.world.now + (core.fence_deadline - process.local) / slowest
            assert fence_at < entry.expires_at, (process.name, fence_at, entry.expires_at)

    @invariant()
    def journal_follows_the_table(self) -> None:
        """Every journaled lease transition is an edge of the lease table, numbered in order."""
        for process in self.world.processes.values():
            for seq, record in enumerate(process.records, start=1):
                assert record.seq == seq
                assert (record.trigger, record.src, record.dst) in EDGES, record

    @invariant()
    def only_holders_keep_alpaca_open(self) -> None:
        """An open Alpaca session belongs to a holder of that epoch; fencing closes it."""
        for process in self.world.processes.values():
            if process.alpaca_epoch is not None:
                assert process.core.state is LeaseState.HOLDER
                assert process.alpaca_epoch == process.core.epoch


TestLeaseCluster = LeaseCluster.TestCase
# Several processes make the interesting interleavings rarer: search more than the profile does.
TestLeaseCluster.settings = settings(
    settings.default, max_examples=max(EXAMPLES, settings.default.max_examples)
)
