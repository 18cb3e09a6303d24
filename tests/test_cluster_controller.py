"""Cluster mode through the public API: controllers sharing one connection to the simulator.

Each test runs several ``StreamController(cluster=...)`` members in this process against a real
``nats-server`` (JetStream, temporary store) and the simulator over loopback, which allows one
authenticated connection per key. Waits are bounded waits on conditions, never sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from streamfsm import (
    BackoffPolicy,
    BreakerPolicy,
    ClusterConfig,
    Credentials,
    StalePolicy,
    StreamConfig,
    StreamController,
)
from streamfsm._core.machine import State
from streamfsm._core.subscriptions import Subscription
from streamfsm._core.tracking import GapReport
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.errors import (
    AuthenticationError,
    BusUnavailableError,
    ConfigurationError,
    StreamError,
    SymbolLimitError,
)
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 10.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
FAST = StreamConfig(
    backoff=BackoffPolicy(initial=0.05, maximum=0.2),
    breaker=BreakerPolicy(failure_threshold=50, cooldown=0.5),
    stale=StalePolicy(quotes=None),
    healthy_after=0.3,
    connection_limit_cooldown=0.1,
    connect_timeout=2.0,
    auth_timeout=1.0,
    subscribe_timeout=2.0,
)


class Member:
    """One controller of the cluster and what its callbacks received."""

    def __init__(
        self,
        sim: SimulatorThread,
        server: LocalNatsServer,
        name: str,
        symbols: tuple[str, ...],
        *,
        config: StreamConfig = FAST,
        credentials: Credentials = CREDENTIALS,
        **cluster: Any,
    ) -> None:
        self.quotes: list[Any] = []
        self.gaps: list[GapReport] = []
        self.errors: list[StreamError] = []
        self._changed = threading.Condition()
        self.ctl = StreamController(
            credentials,
            attrs.evolve(config, url=sim.url("iex")),
            cluster=ClusterConfig(url=server.url, name="desk", member=name, **cluster),
            on_quote=self._note(self.quotes),
            on_gap=self._note(self.gaps),
            on_error=self._note(self.errors),
            symbols=symbols,
            models="fast",
        )

    def _note(self, into: list[Any]) -> Callable[[Any], None]:
        def note(item: Any) -> None:
            with self._changed:
                into.append(item)
                self._changed.notify_all()

        return note

    def until(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), f"{self.ctl.cluster}: {what}"

    def more_quotes(self, than: int | None = None) -> None:
        """Wait for a quote after the ``than``-th (default: after those already received)."""
        count = len(self.quotes) if than is None else than
        self.until(lambda: len(self.quotes) > count, "no more quotes")

    def symbols(self) -> set[str]:
        with self._changed:
            return {quote.symbol for quote in self.quotes}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes, with a symbol limit of five."""
    with SimulatorThread(SimConfig(rate=400, batch=4, seed=3, symbol_limit=5)) as simulator:
        yield simulator


@pytest.fixture
def members() -> Iterator[list[Member]]:
    """The test's members; closed at the end whatever happened."""
    made: list[Member] = []
    yield made
    for member in made:
        member.ctl.close()


def served(sim: SimulatorThread) -> Subscription:
    """The quotes the one open connection at the simulator is subscribed to."""
    (connection,) = sim.stats().open_connections
    return Subscription(quotes=connection.subscriptions.quotes)


def holder_of(members: list[Member]) -> Member:
    (holder,) = [m for m in members if m.ctl.health().role == "holder"]
    return holder


def start_all(members: list[Member]) -> None:
    for member in members:
        member.ctl.start()
    for member in members:
        assert member.ctl.wait_for(State.SUBSCRIBED, timeout=WAIT)


def test_members_share_one_connection_and_get_only_their_own_symbols(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """One connection at the simulator serves the union; each member sees only its symbols."""
    wanted = {"n0": ("AAPL",), "n1": ("AAPL", "MSFT"), "n2": ("TSLA",)}
    members += [Member(sim, nats_server, name, symbols) for name, symbols in wanted.items()]
    start_all(members)
    for member in members:
        member.more_quotes()
    sim.wait_for(lambda stats: len(stats.open_connections) == 1, WAIT)
    assert served(sim) == Subscription(quotes={"AAPL", "MSFT", "TSLA"})
    for member, (_name, symbols) in zip(members, wanted.items(), strict=True):
        member.until(lambda m=member, s=symbols: m.symbols() == set(s), "its own symbols")
        assert member.symbols() == set(symbols)
    roles = sorted(str(m.ctl.health().role) for m in members)
    assert roles == ["follower", "follower", "holder"]
    health = holder_of(members).ctl.health()
    assert health.cluster_members == ("n0", "n1", "n2")
    assert health.bus is not None
    assert health.bus.frames_published > 0
    assert all(m.ctl.health().lease_epoch == health.lease_epoch for m in members)
    assert sim.stats().auth_successes == 1


def test_a_stopped_holder_hands_over_and_followers_report_the_handover(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """stop() on the holder: a follower takes the connection; the others see a handover gap."""
    members += [
        Member(sim, nats_server, "n0", ("AAPL",)),
        Member(sim, nats_server, "n1", ("MSFT",)),
        Member(sim, nats_server, "n2", ("TSLA",)),
    ]
    heard: dict[str, list[tuple[str, str]]] = {}
    for member in members:
        trail = heard.setdefault(str(member.ctl.cluster and member.ctl.cluster.member), [])
        member.ctl.add_lease_listener(lambda record, t=trail: t.append((record.src, record.dst)))
    with pytest.raises(ConfigurationError):
        members[0].ctl.add_lease_listener(42)  # type: ignore[arg-type]
    start_all(members)
    old = holder_of(members)
    old_epoch = old.ctl.health().lease_epoch
    assert old_epoch is not None
    rest = [m for m in members if m is not old]
    for member in rest:
        member.more_quotes()
    old.ctl.stop()
    assert old.ctl.health().role is None
    for member in rest:
        member.until(lambda m=member: any(g.reason == "handover" for g in m.gaps), "a handover")
        member.more_quotes()
    new = holder_of(rest)
    new_epoch = new.ctl.health().lease_epoch
    assert new_epoch is not None
    assert new_epoch > old_epoch
    handovers = [g for m in rest for g in m.gaps if g.reason == "handover"]
    assert {g.epoch for g in handovers} == {new_epoch}
    # The leaver's interest is gone with it: the union no longer holds its symbol.
    sim.wait_for(lambda stats: len(stats.open_connections) == 1, WAIT)
    left = {"n0": "AAPL", "n1": "MSFT", "n2": "TSLA"}[
        str(old.ctl.cluster and old.ctl.cluster.member)
    ]
    union = {"AAPL", "MSFT", "TSLA"} - {left}
    sim.wait_for(lambda stats: stats.open_connections[0].subscriptions.quotes == union, WAIT)
    trail = [(r.src, r.dst) for r in old.ctl.lease_journal()]
    assert trail[-2:] == [("holder", "resigning"), ("resigning", "stopped")]
    # The listeners heard exactly what the journals kept.
    for member in members:
        name = str(member.ctl.cluster and member.ctl.cluster.member)
        assert heard[name] == [(r.src, r.dst) for r in member.ctl.lease_journal()]


def test_symbol_changes_reach_the_union_as_differences(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """A member's subscribe and unsubscribe move the union; a pair another wants stays."""
    members += [
        Member(sim, nats_server, "n0", ("AAPL",)),
        Member(sim, nats_server, "n1", ("AAPL", "MSFT")),
    ]
    start_all(members)
    first, second = members
    first.ctl.subscribe(quotes=["TSLA"])
    assert first.ctl.wait_synced(timeout=WAIT)
    first.until(lambda: "TSLA" in first.symbols(), "TSLA quotes")
    sim.wait_for(lambda s: s.open_connections[0].subscriptions.quotes == {"AAPL", "MSFT", "TSLA"})
    first.ctl.unsubscribe(quotes=["AAPL"])
    assert first.ctl.wait_synced(timeout=WAIT)
    assert first.ctl.health().confirmed == Subscription(quotes={"TSLA"})
    # n1 still wants AAPL: Alpaca keeps it.
    assert served(sim) == Subscription(quotes={"AAPL", "MSFT", "TSLA"})
    received = len(first.quotes)
    first.more_quotes(received)
    second.more_quotes()
    with first._changed:
        assert {q.symbol for q in first.quotes[received:]} <= {"TSLA"}
    second.ctl.unsubscribe(quotes=["AAPL"])
    sim.wait_for(lambda s: s.open_connections[0].subscriptions.quotes == {"MSFT", "TSLA"}, WAIT)


def test_a_symbol_limit_on_the_union_reaches_only_the_member_that_asked(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """405 on the union: the asking member gets SymbolLimitError; the others stream on."""
    members += [
        Member(sim, nats_server, "n0", ("AAPL", "MSFT", "TSLA")),
        Member(sim, nats_server, "n1", ("NVDA", "AMZN")),
    ]
    start_all(members)
    first, second = members
    second.ctl.subscribe(quotes=["GOOG"])  # a sixth symbol: over the simulator's limit of five
    second.until(lambda: bool(second.errors), "an error")
    assert isinstance(second.errors[0], SymbolLimitError)
    assert second.ctl.wait_synced(timeout=WAIT)
    assert second.ctl.desired() == Subscription(quotes={"NVDA", "AMZN"})
    assert second.ctl.state is State.SUBSCRIBED
    assert first.errors == []
    first.more_quotes()
    second.more_quotes()


def test_an_opening_set_over_the_limit_is_refused_whole_as_alpaca_would(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """A member joining with a set the union cannot fit gets SymbolLimitError and an empty set,
    and its machine rests in idle, as alone after Alpaca refused its opening subscribe."""
    members += [Member(sim, nats_server, "n0", ("AAPL", "MSFT", "TSLA", "NVDA", "AMZN"))]
    start_all(members)
    late = Member(sim, nats_server, "n1", ("AAPL", "GOOG"))
    members.append(late)
    late.ctl.start()
    late.until(lambda: bool(late.errors), "an error")
    assert isinstance(late.errors[0], SymbolLimitError)
    # Nothing left to stream: the machine rests in idle, as it would alone after such a 405.
    assert late.ctl.wait_for(State.IDLE, timeout=WAIT)
    assert late.ctl.desired() == Subscription()
    # The first member streams on, and the union is back to its five symbols.
    members[0].more_quotes()
    assert members[0].errors == []
    assert served(sim) == Subscription(quotes={"AAPL", "MSFT", "TSLA", "NVDA", "AMZN"})


def test_a_406_after_a_takeover_waits_for_the_predecessor_without_tripping_the_breaker(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """Alpaca still holding the old socket: 406s are PredecessorStillConnected, no breaker."""
    config = attrs.evolve(FAST, breaker=BreakerPolicy(failure_threshold=2, cooldown=30.0))
    members += [
        Member(sim, nats_server, "n0", ("AAPL",), config=config, takeover_retry=0.05),
        Member(sim, nats_server, "n1", ("MSFT",), config=config, takeover_retry=0.05),
    ]
    start_all(members)
    old = holder_of(members)
    (new,) = [m for m in members if m is not old]
    sim.fail_auth(count=3, code=406)
    old.ctl.stop()
    new.until(lambda: any(g.reason == "handover" for g in new.gaps), "a handover", timeout=20)
    node = new.ctl._node
    assert node is not None
    assert node.upstream is not None
    trail = [(r.dst, r.error) for r in node.upstream.journal]
    refused = [dst for dst, error in trail if error == "PredecessorStillConnectedError"]
    assert refused == ["backoff"] * 3
    assert "circuit_open" not in [dst for dst, _error in trail]
    assert new.ctl.health().breaker_trips == 0


def test_a_fatal_error_upstream_stops_every_member(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """A refused key stops the shared connection, and with it every member, typed."""
    wrong = Credentials(DEMO_KEY_ID, "not-the-secret")
    members += [
        Member(sim, nats_server, "n0", ("AAPL",), credentials=wrong),
        Member(sim, nats_server, "n1", ("MSFT",), credentials=wrong),
    ]
    for member in members:
        member.ctl.start()
    for member in members:
        assert member.ctl.wait_for(State.STOPPED, timeout=WAIT)
        assert isinstance(member.ctl.last_error, AuthenticationError)
        assert str(member.ctl.last_error).count("alpaca error 402") == 1


def test_an_unreachable_bus_is_a_transient_failure(sim: SimulatorThread, tmp_path: Any) -> None:
    """No NATS yet: the member backs off with BusUnavailableError, then joins when it appears."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = LocalNatsServer(tmp_path / "js", port=port)
    member = Member(sim, server, "n0", ("AAPL",))
    try:
        member.ctl.start()
        member.ctl.wait_for(State.BACKOFF, timeout=WAIT)
        assert isinstance(member.ctl.last_error, BusUnavailableError)
        server.start()
        assert member.ctl.wait_for(State.SUBSCRIBED, timeout=WAIT)
        member.more_quotes()
    finally:
        member.ctl.close()
        server.stop()


def test_every_member_recovers_from_a_nats_server_restart(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """nats-server killed and restarted: a new tenure serves everyone; the loss is a gap."""
    members += [
        Member(sim, nats_server, "n0", ("AAPL",)),
        Member(sim, nats_server, "n1", ("MSFT",)),
        Member(sim, nats_server, "n2", ("TSLA",)),
    ]
    start_all(members)
    for member in members:
        member.more_quotes()
    old_epoch = holder_of(members).ctl.health().lease_epoch
    assert old_epoch is not None
    nats_server.kill()
    # The holder cannot renew: it fences and closes its Alpaca connection.
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)
    nats_server.start()
    for member in members:
        member.until(lambda m=member: bool(m.gaps), "a gap", timeout=20)
        member.more_quotes()
    epochs = {m.ctl.health().lease_epoch for m in members}
    assert len(epochs) == 1
    (new_epoch,) = epochs
    assert new_epoch is not None
    assert new_epoch > old_epoch
    assert {g.reason for m in members for g in m.gaps} <= {"handover", "bus_gap"}
    assert all(m.ctl.state is State.SUBSCRIBED for m in members)
    sim.wait_for(lambda stats: len(stats.open_connections) == 1, WAIT)


def test_the_async_api_runs_a_member_in_the_callers_loop(
    sim: SimulatorThread, nats_server: LocalNatsServer
) -> None:
    """async with: the member joins, is served, and leaves the cluster on exit."""
    member = Member(sim, nats_server, "n0", ("AAPL",))

    async def scenario() -> None:
        async with member.ctl:
            await asyncio.wait_for(member.ctl.await_state(State.SUBSCRIBED), WAIT)
            assert member.ctl.health().role == "holder"
            await asyncio.to_thread(member.more_quotes, 0)
        assert member.ctl.state is State.STOPPED
        assert member.ctl.health().role is None

    asyncio.run(scenario())
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)


def test_stop_returns_in_its_budget_while_the_bus_is_down(
    sim: SimulatorThread, nats_server: LocalNatsServer, members: list[Member]
) -> None:
    """With nats-server gone, stop() still fences, gives up on the store quickly and returns."""
    members += [
        Member(sim, nats_server, "n0", ("AAPL",)),
        Member(sim, nats_server, "n1", ("MSFT",)),
    ]
    start_all(members)
    nats_server.kill()
    for member in members:
        member.ctl.stop()  # raises ShutdownTimeoutError past its default 5 s
        assert member.ctl.state is State.STOPPED
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)
