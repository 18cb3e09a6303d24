"""The lease core: the lease table brought to life, with no I/O.

Theory of operation
-------------------
:class:`LeaseCore` is the model of a plain ``transitions.Machine`` built from
:data:`~streamfsm.cluster.lease_table.LEASE_TRANSITIONS`. The NATS adapter feeds it facts (the
answers of the KV store, what the watch saw, timer expiries, the Alpaca session closing) and
carries out the commands it appends to ``outbox``: create, renew or delete the lease key, open
Alpaca under an epoch, fence, arm or cancel a timer.

Safety rests on two rules:

* The fence deadline is measured from the moment a create or renewal was *sent*, on this
  process's monotonic clock, shortened by the clock-drift bound and the fence margin
  (``ClusterConfig.fence_window``). The store writes the entry after it was sent and keeps it for
  ``lease_ttl`` of its own time, so while ``clock() < fence_deadline`` the entry is still ours.
* :meth:`LeaseCore.may_publish` reads the clock itself, so a process resumed after a pause past
  its deadline publishes nothing, even before its fence timer has had a chance to fire.

Each create or renewal carries a token; at most one is in flight, and an answer with another
token is late and ignored, except a late successful create, whose lease is released at once.
Releases are not awaited: whatever their answer, nothing more is to be done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
from transitions import EventData, Machine, MachineError

from streamfsm._core.records import TransitionRecord
from streamfsm.cluster.config import ClusterConfig
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
from streamfsm.cluster.lease_table import LeaseState, lease_transition_dicts
from streamfsm.errors import InvalidTransitionError

__all__ = ["LeaseCore"]


@attrs.define
class _Request:
    """The KV request in flight: its token, kind and when it was sent on the local clock."""

    token: int
    kind: type[Acquire | Renew]
    sent_at: float


class LeaseCore:
    """The ``transitions`` model of the lease: election decisions and effect intents, no I/O.

    Args:
        config: the cluster configuration (TTL, renewal rate, drift bound, fence margin).
        member: this process's name, written into the lease key.
        clock: monotonic seconds, injected.
        wall: the current UTC time, injected (journal only).
        on_record: called with each journal record, right after its transition.
    """

    state: LeaseState
    trigger: Callable[..., bool]

    def __init__(
        self,
        config: ClusterConfig,
        member: str,
        *,
        clock: Callable[[], float],
        wall: Callable[[], datetime],
        on_record: Callable[[TransitionRecord], None],
    ) -> None:
        self.config = config
        self.member = member
        self.clock = clock
        self.wall = wall
        self.on_record = on_record
        self.outbox: list[LeaseCommand] = []
        #: The epoch of this process's latest tenure (0 before the first).
        self.epoch = 0
        #: The highest epoch seen anywhere: frames from older epochs are stale.
        self.known_epoch = 0
        #: The lease key's revision as of this holder's latest write.
        self.revision = 0
        #: Local monotonic time until which publishing is allowed (holder only).
        self.fence_deadline = float("-inf")
        self.holder: str | None = None
        self.tenures = 0
        self._leaving = False
        self._request: _Request | None = None
        self._tokens = 0
        self._armed: dict[LeaseTimer, int] = {}
        self._seq = 0
        self.machine = Machine(
            model=self,
            states=[
                {"name": LeaseState.STOPPED, "on_enter": ["_enter_stopped"]},
                {"name": LeaseState.FOLLOWER, "on_enter": ["_enter_follower"]},
                {
                    "name": LeaseState.CANDIDATE,
                    "on_enter": ["_enter_candidate"],
                    "on_exit": ["_exit_candidate"],
                },
                {
                    "name": LeaseState.HOLDER,
                    "on_enter": ["_enter_holder"],
                    "on_exit": ["_exit_holder"],
                },
                {"name": LeaseState.RESIGNING},
            ],
            transitions=lease_transition_dicts(),
            initial=LeaseState.STOPPED,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
            after_state_change="_record",
        )

    # ------------------------------------------------------------ inputs: commands

    def request_join(self) -> None:
        """Enter the election (try to create the lease at once).

        Raises:
            InvalidTransitionError: unless stopped.
        """
        self._leaving = False
        self._fire("join", reason="user")

    def request_stop(self) -> None:
        """Leave: a holder closes Alpaca first and releases the lease after; idempotent."""
        self._fire("stop", reason="user")

    # ------------------------------------------------------------ inputs: facts

    def create_answered(self, token: int, revision: int) -> None:
        """The create of ``token`` succeeded with ``revision``.

        A create answered after this core gave up on it (stopped, lost the store, or sent a newer
        request) still made this process the key's holder: that lease is released at once.
        """
        self.known_epoch = max(self.known_epoch, revision)
        request = self._answer(token, Acquire)
        if request is None:
            if revision != self.epoch:
                self._send_release(revision)
            return
        self._fire("acquired", reason="created", revision=revision, sent_at=request.sent_at)

    def create_refused(self, token: int) -> None:
        """The create of ``token`` found the key held by another process."""
        if self._answer(token, Acquire) is not None:
            self._fire("acquire_refused", reason="held")

    def create_failed(self, token: int) -> None:
        """The create of ``token`` got no answer in time, or the store reported an error."""
        if self._answer(token, Acquire) is not None:
            self._fire("acquire_failed", reason="store_error")

    def renew_answered(self, token: int, revision: int) -> None:
        """The renewal of ``token`` succeeded: the key now has ``revision``."""
        request = self._answer(token, Renew)
        if request is None or self.state is not LeaseState.HOLDER:
            return
        self.revision = revision
        deadline = request.sent_at + self.config.fence_window
        if deadline > self.fence_deadline:
            self.fence_deadline = deadline
            self._arm(LeaseTimer.FENCE, deadline - self.clock())

    def renew_refused(self, token: int) -> None:
        """The renewal of ``token`` found another revision: the lease is someone else's."""
        if self._answer(token, Renew) is not None and self.state is LeaseState.HOLDER:
            self._fire("lease_lost", reason="renew_refused")

    def renew_failed(self, token: int) -> None:
        """The renewal of ``token`` got no answer in time; the next tick tries again."""
        self._answer(token, Renew)

    def observed(self, member: str, epoch: int) -> None:
        """The watch saw the lease key written by ``member`` for tenure ``epoch``."""
        self.known_epoch = max(self.known_epoch, epoch)
        self.holder = member
        if member == self.member:
            return
        if self.state is LeaseState.FOLLOWER:
            self._arm(LeaseTimer.VACANCY, self.config.lease_ttl)
        elif self.state is LeaseState.HOLDER:
            self._fire("lease_lost", reason="taken_over")

    def vacated(self) -> None:
        """The watch saw the lease key deleted, purged or expired."""
        self.holder = None
        if self.state is LeaseState.FOLLOWER:
            self._fire("lease_vacant", reason="vacated")

    def store_lost(self) -> None:
        """The connection to the store dropped: a holder can no longer renew."""
        self._request = None
        if self.state in (LeaseState.HOLDER, LeaseState.CANDIDATE, LeaseState.FOLLOWER):
            self._fire("lease_lost", reason="store_lost")

    def alpaca_closed(self, epoch: int) -> None:
        """The Alpaca session of ``epoch`` (fenced by this core) is closed."""
        if epoch == self.epoch and self.state is LeaseState.RESIGNING:
            self._fire("session_closed", reason="closed")

    def timer_fired(self, timer: LeaseTimer, token: int) -> None:
        """A timer armed by this core expired; stale tokens are ignored."""
        if self._armed.get(timer) != token:
            return
        del self._armed[timer]
        if timer is LeaseTimer.RENEW:
            self._renew_tick()
        elif timer is LeaseTimer.FENCE:
            if self.state is LeaseState.HOLDER:
                self._fire("deadline_reached", reason="fence_deadline")
        elif self.state is LeaseState.FOLLOWER:
            self._fire("lease_vacant", reason="no_renewal_seen")

    def drain(self) -> list[LeaseCommand]:
        """Take the commands produced so far, oldest first."""
        commands, self.outbox = self.outbox, []
        return commands

    # ------------------------------------------------------------ reading

    def may_publish(self, now: float) -> bool:
        """True while this process holds the lease and ``now`` is before its fence deadline."""
        return self.state is LeaseState.HOLDER and now < self.fence_deadline

    @property
    def role(self) -> str:
        """``"holder"`` while holding, else ``"follower"``."""
        return "holder" if self.state is LeaseState.HOLDER else "follower"

    # ------------------------------------------------------------ guards (pure)

    def lease_fresh(self, event: EventData) -> bool:
        """The create was sent recently enough that the lease cannot have expired yet."""
        sent_at: float = event.kwargs["sent_at"]
        return self.clock() < sent_at + self.config.fence_window

    def leaving(self, _event: EventData) -> bool:
        """``stop`` was requested: release the lease rather than rejoin."""
        return self._leaving

    # ------------------------------------------------------------ effects on rows

    def take_lease(self, event: EventData) -> None:
        """Adopt the created revision as the epoch and the fence deadline it allows."""
        revision: int = event.kwargs["revision"]
        self.epoch = self.revision = revision
        self.holder = self.member
        self.fence_deadline = event.kwargs["sent_at"] + self.config.fence_window
        self.tenures += 1

    def fence(self, event: EventData) -> None:
        """Stop publishing now and ask for the Alpaca session to be closed."""
        self.fence_deadline = float("-inf")
        self.outbox.append(Fence(self.epoch, str(event.kwargs.get("reason", ""))))

    def mark_leaving(self, _event: EventData) -> None:
        """Remember that the lease is to be released, not kept for a rejoin."""
        self._leaving = True

    def release(self, _event: EventData) -> None:
        """Delete the lease key if it is still this tenure's."""
        self._send_release(self.revision)

    # ------------------------------------------------------------ state callbacks

    def _enter_stopped(self, _event: EventData) -> None:
        for timer in list(self._armed):
            self._disarm(timer)

    def _enter_follower(self, event: EventData) -> None:
        # A store that did not answer is asked again soon; a held or lost lease is watched for
        # a TTL (each renewal seen pushes the timer back).
        failed = event.event.name == "acquire_failed"
        self._arm(
            LeaseTimer.VACANCY, self.config.renew_interval if failed else self.config.lease_ttl
        )

    def _enter_candidate(self, _event: EventData) -> None:
        self._disarm(LeaseTimer.VACANCY)
        self._send_acquire()

    def _exit_candidate(self, _event: EventData) -> None:
        # An unanswered create is abandoned; if it succeeds late, ``acquired`` releases it.
        self._request = None

    def _enter_holder(self, _event: EventData) -> None:
        self.outbox.append(BeginHolding(self.epoch))
        self._arm(LeaseTimer.FENCE, self.fence_deadline - self.clock())
        self._arm(LeaseTimer.RENEW, self.config.renew_interval)

    def _exit_holder(self, _event: EventData) -> None:
        self._disarm(LeaseTimer.RENEW)
        self._disarm(LeaseTimer.FENCE)
        self.fence_deadline = float("-inf")
        self._request = None

    # ------------------------------------------------------------ journal

    def _record(self, event: EventData) -> None:
        """after_state_change: one journal record per executed transition."""
        transition = event.transition
        assert transition is not None  # after_state_change only runs for executed transitions
        src = LeaseState[transition.source]
        dst = LeaseState[transition.dest] if transition.dest is not None else src
        self._seq += 1
        self.on_record(
            TransitionRecord(
                seq=self._seq,
                wall_time=self.wall().isoformat(timespec="microseconds"),
                monotonic=self.clock(),
                correlation_id=self.member,
                connection_id=None,
                epoch=self.epoch,
                trigger=event.event.name,
                src=src.value,
                dst=dst.value,
                reason=str(event.kwargs.get("reason", "")),
                attempt=self.tenures,
            )
        )

    # ------------------------------------------------------------ helpers

    def _fire(self, trigger: str, **kwargs: Any) -> None:
        try:
            self.trigger(trigger, **kwargs)
        except MachineError as exc:
            raise InvalidTransitionError(self.state.value, trigger) from exc

    def _renew_tick(self) -> None:
        if self.state is not LeaseState.HOLDER:
            return
        if self._request is None:
            self._send_renew()
        self._arm(LeaseTimer.RENEW, self.config.renew_interval)

    def _send_acquire(self) -> None:
        self._tokens += 1
        self._request = _Request(self._tokens, Acquire, self.clock())
        self.outbox.append(Acquire(self._tokens, self.member))

    def _send_renew(self) -> None:
        self._tokens += 1
        self._request = _Request(self._tokens, Renew, self.clock())
        self.outbox.append(Renew(self._tokens, self.member, self.epoch, self.revision))

    def _send_release(self, revision: int) -> None:
        """A release is fire-and-forget: whatever its answer, nothing more is to be done."""
        self._tokens += 1
        self.outbox.append(Release(self._tokens, revision))

    def _answer(self, token: int, kind: type[Acquire | Renew]) -> _Request | None:
        """The request ``token`` answers, once; None for a late or unknown answer."""
        request = self._request
        if request is None or request.token != token or request.kind is not kind:
            return None
        self._request = None
        return request

    def _arm(self, timer: LeaseTimer, delay: float) -> None:
        self._tokens += 1
        self._armed[timer] = self._tokens
        self.outbox.append(ArmLeaseTimer(timer, max(0.0, delay), self._tokens))

    def _disarm(self, timer: LeaseTimer) -> None:
        if self._armed.pop(timer, None) is not None:
            self.outbox.append(CancelLeaseTimer(timer))
