"""``Health``: one frozen snapshot of a controller, from its core, tracker and dispatcher."""

from __future__ import annotations

import attrs

from streamfsm._aio.dispatch import Dispatcher
from streamfsm._core.core import ConnectionCore
from streamfsm._core.lag import LagSnapshot
from streamfsm._core.machine import State
from streamfsm._core.policies import BreakerState
from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm._core.tracking import DataTracker, GapReport

__all__ = ["BusFigures", "ClusterReading", "Health", "snapshot"]


@attrs.frozen(kw_only=True)
class BusFigures:
    """What crossed the bus for this member.

    Attributes:
        frames_received: relayed frames that arrived.
        frames_published: frames this member relayed as holder (every tenure).
        publish_refused: frames not relayed because the lease no longer allowed it.
        gaps: sequence jumps seen (frames lost on the bus).
        missing_frames: frames those jumps skipped.
        handovers: new tenures seen after the first.
        stale_frames: frames of an older tenure, dropped.
        malformed_frames: bus messages that were not relayed frames.
    """

    frames_received: int = 0
    frames_published: int = 0
    publish_refused: int = 0
    gaps: int = 0
    missing_frames: int = 0
    handovers: int = 0
    stale_frames: int = 0
    malformed_frames: int = 0


@attrs.frozen(kw_only=True)
class ClusterReading:
    """The cluster part of ``health()``: role, tenure, members and the bus."""

    role: str | None
    lease_epoch: int | None
    members: tuple[str, ...]
    bus: BusFigures


@attrs.frozen(kw_only=True)
class Health:
    """A frozen snapshot of a controller, for dashboards and health checks."""

    correlation_id: str
    state: State
    time_in_state: float
    attempts: int
    reconnects: int
    connection_id: str | None
    breaker: BreakerState
    breaker_trips: int
    consecutive_failures: int
    messages: dict[str, int]
    last_message_age: dict[str, float | None]
    callback_errors: int
    dropped_messages: int
    queued_messages: int
    malformed_frames: int
    skipped_messages: int
    rejected_changes: int
    desired: Subscription
    confirmed: Subscription
    in_sync: bool
    open_gaps: int
    recent_gaps: tuple[GapReport, ...]
    last_error: str | None
    #: Gap reports closed since the controller was created.
    gaps_reported: int = 0
    #: Each delivery's wait between its frame's arrival and its callbacks; None before a loop.
    delivery_lag: LagSnapshot | None = None
    #: Cluster mode: ``holder`` or ``follower`` (None when not clustered or not yet joined).
    role: str | None = None
    #: Cluster mode: the tenure of the shared connection (the lease's revision) this member
    #: holds or follows; None before one is known.
    lease_epoch: int | None = None
    #: Cluster mode: the members whose interest the holder sees.
    cluster_members: tuple[str, ...] = ()
    #: Cluster mode: what crossed the bus for this member.
    bus: BusFigures | None = None


def snapshot(
    correlation_id: str,
    core: ConnectionCore,
    tracker: DataTracker,
    dispatcher: Dispatcher | None,
    now: float,
    *,
    cluster: ClusterReading | None = None,
) -> Health:
    """The controller's health at monotonic time ``now``; take it on the controller's loop.

    ``dispatcher`` is None when no loop runs: nothing is queued and nothing was delivered.
    """
    error = core.last_error
    last_seen = tracker.activity.last_seen
    return Health(
        correlation_id=correlation_id,
        state=core.state,
        time_in_state=max(0.0, now - core.state_since),
        attempts=core.attempts,
        reconnects=core.reconnects,
        connection_id=core.connection_id,
        breaker=core.breaker.state,
        breaker_trips=core.breaker.trips,
        consecutive_failures=core.breaker.failures,
        messages=dict(tracker.counts),
        last_message_age={
            channel: (now - last_seen[channel]) if channel in last_seen else None
            for channel in CHANNELS
        },
        callback_errors=dispatcher.callback_errors if dispatcher is not None else 0,
        dropped_messages=dispatcher.dropped if dispatcher is not None else 0,
        queued_messages=dispatcher.pending if dispatcher is not None else 0,
        malformed_frames=tracker.malformed_frames,
        skipped_messages=tracker.skipped_messages,
        rejected_changes=core.rejected_changes,
        desired=core.book.desired,
        confirmed=core.book.confirmed,
        in_sync=core.book.in_sync and not core.change_in_flight,
        open_gaps=tracker.open_gap_count,
        recent_gaps=tuple(tracker.recent_gaps),
        last_error=f"{type(error).__name__}: {error}" if error is not None else None,
        gaps_reported=tracker.gaps_reported,
        delivery_lag=dispatcher.lag_histogram.snapshot() if dispatcher is not None else None,
        role=cluster.role if cluster is not None else None,
        lease_epoch=cluster.lease_epoch if cluster is not None else None,
        cluster_members=cluster.members if cluster is not None else (),
        bus=cluster.bus if cluster is not None else None,
    )
