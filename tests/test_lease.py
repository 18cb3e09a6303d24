"""The lease core, step by step: each row of the lease table and the fencing arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lease_world import World

from streamfsm._core.records import TransitionRecord
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.lease import LeaseCore
from streamfsm.cluster.lease_commands import (
    Acquire,
    ArmLeaseTimer,
    BeginHolding,
    CancelLeaseTimer,
    Fence,
    LeaseCommand,
    LeaseTimer,
    Release,
    Renew,
)
from streamfsm.cluster.lease_table import LEASE_TRANSITIONS, LEASE_TRIGGERS, LeaseState
from streamfsm.errors import ConfigurationError, InvalidTransitionError

CONFIG = ClusterConfig(lease_ttl=2.0, renewals_per_ttl=4, max_clock_drift=0.01, fence_margin=0.2)


class Harness:
    """One core on a hand-moved clock, with its journal."""

    def __init__(self) -> None:
        self.now = 100.0
        self.records: list[TransitionRecord] = []
        self.core = LeaseCore(
            CONFIG,
            "me",
            clock=lambda: self.now,
            wall=lambda: datetime(2026, 1, 1, tzinfo=UTC),
            on_record=self.records.append,
        )

    def drain(self) -> list[LeaseCommand]:
        """The commands the core produced since the last drain."""
        return self.core.drain()

    def timer_token(self, commands: list[LeaseCommand], timer: LeaseTimer) -> int:
        """The token of the latest arming of ``timer`` in ``commands``."""
        tokens = [c.token for c in commands if isinstance(c, ArmLeaseTimer) and c.timer is timer]
        return tokens[-1]

    def hold(self, revision: int = 7) -> list[LeaseCommand]:
        """Join and win the create with ``revision``; the holder's first commands."""
        self.core.request_join()
        (acquire,) = self.drain()
        assert isinstance(acquire, Acquire)
        self.core.create_answered(acquire.token, revision)
        return self.drain()


def test_join_creates_and_a_created_lease_makes_a_holder() -> None:
    """Joining sends a create; its revision becomes the epoch, Alpaca opens, timers are armed."""
    harness = Harness()
    commands = harness.hold(revision=7)
    assert harness.core.state is LeaseState.HOLDER
    assert harness.core.epoch == 7
    assert commands[0] == BeginHolding(7)
    armed = {c.timer: c.delay for c in commands if isinstance(c, ArmLeaseTimer)}
    assert armed[LeaseTimer.RENEW] == pytest.approx(0.5)
    assert armed[LeaseTimer.FENCE] == pytest.approx(CONFIG.fence_window)
    assert [(r.trigger, r.src, r.dst, r.epoch) for r in harness.records] == [
        ("join", "stopped", "candidate", 0),
        ("acquired", "candidate", "holder", 7),
    ]


def test_publishing_stops_at_the_deadline_even_before_the_fence_timer_fires() -> None:
    """A holder resumed after a pause past its deadline may not publish, timer or not."""
    harness = Harness()
    harness.hold()
    assert harness.core.may_publish(harness.now)
    harness.now += CONFIG.fence_window
    assert not harness.core.may_publish(harness.now)
    assert harness.core.state is LeaseState.HOLDER


def test_renewal_moves_the_deadline_from_when_it_was_sent() -> None:
    """A renewal answered late extends the lease from its sending time, not its answer."""
    harness = Harness()
    commands = harness.hold(revision=7)
    harness.now += 0.5
    harness.core.timer_fired(LeaseTimer.RENEW, harness.timer_token(commands, LeaseTimer.RENEW))
    renew = next(c for c in harness.drain() if isinstance(c, Renew))
    assert (renew.epoch, renew.revision) == (7, 7)
    harness.now += 0.3
    harness.core.renew_answered(renew.token, 9)
    assert harness.core.fence_deadline == pytest.approx(100.5 + CONFIG.fence_window)
    assert harness.core.revision == 9
    assert harness.core.epoch == 7


def test_a_refused_renewal_fences_and_rejoins_as_follower() -> None:
    """Another revision on the key: stop publishing, close Alpaca, then follow."""
    harness = Harness()
    commands = harness.hold()
    harness.core.timer_fired(LeaseTimer.RENEW, harness.timer_token(commands, LeaseTimer.RENEW))
    renew = next(c for c in harness.drain() if isinstance(c, Renew))
    harness.core.renew_refused(renew.token)
    assert harness.core.state is LeaseState.RESIGNING
    assert not harness.core.may_publish(harness.now)
    assert Fence(7, "renew_refused") in harness.drain()
    harness.core.alpaca_closed(7)
    assert harness.core.state is LeaseState.FOLLOWER
    assert not any(isinstance(c, Release) for c in harness.drain())


def test_the_fence_timer_resigns_a_holder_that_could_not_renew() -> None:
    """No renewal by the deadline: the holder fences itself."""
    harness = Harness()
    commands = harness.hold()
    harness.now += CONFIG.fence_window
    harness.core.timer_fired(LeaseTimer.FENCE, harness.timer_token(commands, LeaseTimer.FENCE))
    assert harness.core.state is LeaseState.RESIGNING
    assert Fence(7, "fence_deadline") in harness.drain()


def test_stop_closes_alpaca_first_and_releases_the_lease_after() -> None:
    """A rolling deploy: fence, wait for Alpaca to close, then delete the key by revision."""
    harness = Harness()
    harness.hold(revision=7)
    harness.core.request_stop()
    first = harness.drain()
    assert Fence(7, "user") in first
    assert not any(isinstance(c, Release) for c in first)
    harness.core.alpaca_closed(7)
    second = harness.drain()
    assert [c.revision for c in second if isinstance(c, Release)] == [7]
    assert harness.core.state is LeaseState.STOPPED
    harness.core.request_stop()
    assert harness.core.state is LeaseState.STOPPED


def test_a_create_answered_after_stop_is_released() -> None:
    """A process that left before its create was answered frees the lease it got."""
    harness = Harness()
    harness.core.request_join()
    (acquire,) = harness.drain()
    assert isinstance(acquire, Acquire)
    harness.core.request_stop()
    harness.drain()
    harness.core.create_answered(acquire.token, 12)
    assert harness.core.state is LeaseState.STOPPED
    assert [c.revision for c in harness.drain() if isinstance(c, Release)] == [12]


def test_a_create_answered_too_late_never_publishes() -> None:
    """A create whose answer comes after the fence window is not a tenure."""
    harness = Harness()
    harness.core.request_join()
    (acquire,) = harness.drain()
    assert isinstance(acquire, Acquire)
    harness.now += CONFIG.fence_window
    harness.core.create_answered(acquire.token, 3)
    assert harness.core.state is LeaseState.FOLLOWER
    assert not any(isinstance(c, BeginHolding) for c in harness.drain())


def test_a_follower_tries_again_when_no_renewal_is_seen_for_a_ttl() -> None:
    """Observed renewals push the vacancy timer; its expiry makes a candidate."""
    harness = Harness()
    harness.core.request_join()
    (acquire,) = harness.drain()
    assert isinstance(acquire, Acquire)
    harness.core.create_refused(acquire.token)
    assert harness.core.state is LeaseState.FOLLOWER
    harness.core.observed("other", 4)
    commands = harness.drain()
    assert harness.core.known_epoch == 4
    token = harness.timer_token(commands, LeaseTimer.VACANCY)
    harness.core.timer_fired(LeaseTimer.VACANCY, token)
    assert harness.core.state is LeaseState.CANDIDATE
    assert isinstance(harness.drain()[-1], Acquire)


def test_a_failed_create_is_retried_after_the_renewal_interval() -> None:
    """The store did not answer: the follower tries again soon, not a whole TTL later."""
    harness = Harness()
    harness.core.request_join()
    (acquire,) = harness.drain()
    assert isinstance(acquire, Acquire)
    harness.core.create_failed(acquire.token)
    (arm,) = [c for c in harness.drain() if isinstance(c, ArmLeaseTimer)]
    assert (arm.timer, arm.delay) == (LeaseTimer.VACANCY, CONFIG.renew_interval)


def test_a_vacated_key_makes_a_follower_candidate_at_once() -> None:
    """The watch seeing the key deleted or expired starts a create at once."""
    harness = Harness()
    harness.core.request_join()
    (acquire,) = harness.drain()
    assert isinstance(acquire, Acquire)
    harness.core.create_refused(acquire.token)
    harness.drain()
    harness.core.vacated()
    assert harness.core.state is LeaseState.CANDIDATE
    assert CancelLeaseTimer(LeaseTimer.VACANCY) in harness.drain()


def test_another_holder_seen_by_a_holder_fences_it() -> None:
    """A holder that sees someone else's write on its key has lost it."""
    harness = Harness()
    harness.hold(revision=7)
    harness.core.observed("other", 9)
    assert harness.core.state is LeaseState.RESIGNING


def test_losing_the_store_fences_a_holder() -> None:
    """A holder cut off from NATS cannot renew: it fences at once."""
    harness = Harness()
    harness.hold(revision=7)
    harness.core.store_lost()
    assert harness.core.state is LeaseState.RESIGNING
    assert Fence(7, "store_lost") in harness.drain()


def test_join_twice_is_refused() -> None:
    """Joining while in the election is a caller error, typed."""
    harness = Harness()
    harness.core.request_join()
    with pytest.raises(InvalidTransitionError):
        harness.core.request_join()


def test_late_answers_are_ignored() -> None:
    """An answer with a token that is not the request in flight changes nothing."""
    harness = Harness()
    harness.hold(revision=7)
    harness.core.renew_answered(999, 50)
    harness.core.renew_refused(999)
    assert harness.core.state is LeaseState.HOLDER
    assert harness.core.revision == 7


def test_every_trigger_has_a_row_and_every_state_is_reached() -> None:
    """The table names each trigger once in order and every state appears as a destination."""
    assert set(LEASE_TRIGGERS) == {row.trigger for row in LEASE_TRANSITIONS}
    reached = {row.dest for row in LEASE_TRANSITIONS if row.dest is not None}
    assert reached == set(LeaseState)


def test_a_new_holder_takes_over_within_a_ttl_after_the_old_one_freezes() -> None:
    """Liveness on a calm network: a frozen holder is replaced within TTL plus a renewal."""
    world = World(CONFIG, ("a", "b"))
    for process in world.processes.values():
        process.core.request_join()
        world.run(process)
    world.settle()
    (holder,) = [p for p in world.processes.values() if p.core.state is LeaseState.HOLDER]
    holder.paused = True
    frozen_at = world.now
    step = 0.05
    while not any(p.core.may_publish(p.local) for p in world.processes.values() if not p.paused):
        world.advance(step)
        world.settle()
        assert world.now - frozen_at <= CONFIG.lease_ttl + CONFIG.renew_interval
    assert holder.core.state is LeaseState.HOLDER
    assert not holder.core.may_publish(holder.local)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "http://127.0.0.1:4222"),
        ("name", "has space"),
        ("lease_ttl", 0),
        ("renewals_per_ttl", 1),
        ("max_clock_drift", 0.5),
        ("fence_margin", 5.0),
        ("request_timeout", 1.0),
        ("replicas", 2),
        ("member", "a.b"),
    ],
)
def test_cluster_config_refuses_unsafe_values(field: str, value: object) -> None:
    """Each invalid setting is refused with a typed error naming the field."""
    with pytest.raises(ConfigurationError, match=field):
        ClusterConfig(**{field: value})  # type: ignore[arg-type]
