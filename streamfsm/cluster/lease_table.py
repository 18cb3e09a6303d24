"""The lease lifecycle: its states and its one transition table.

Among the processes of one cluster, the one whose lease is live in the KV store (the holder) owns
the Alpaca connection and relays it on the bus; the others follow. The same rules as the
connection table (:mod:`streamfsm._core.machine`) hold here:

1. Every state change of the lease is a row of ``LEASE_TRANSITIONS``; the runtime machine, the
   state diagram and the tests are built from this table.
2. Rows with the same trigger and source are tried in order; the first whose guard holds wins.
3. ``dest=None`` is an internal transition: journaled, the state stays.
4. Guards are pure predicates of :class:`streamfsm.cluster.lease.LeaseCore`; effects are its
   callbacks, which only append commands to its outbox.

Renewals and observations of other holders do not change the state, so they are not rows: they
move the fence deadline and the follower's vacancy timer (see ``LeaseCore.renew_answered`` and
``LeaseCore.observed``), several times per TTL, without filling the journal.
"""

from __future__ import annotations

import enum
from typing import Final

from streamfsm._core.machine import Row, table_dicts

__all__ = [
    "LEASE_TRANSITIONS",
    "LEASE_TRIGGERS",
    "LeaseRow",
    "LeaseState",
    "lease_transition_dicts",
]


class LeaseState(enum.Enum):
    """Where a process stands in the election. Only ``HOLDER`` may publish."""

    STOPPED = "stopped"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    HOLDER = "holder"
    RESIGNING = "resigning"


#: One transition of the lease machine: the connection table's row type over ``LeaseState``.
LeaseRow = Row[LeaseState]


_X, _F, _C, _H, _R = (
    LeaseState.STOPPED,
    LeaseState.FOLLOWER,
    LeaseState.CANDIDATE,
    LeaseState.HOLDER,
    LeaseState.RESIGNING,
)

LEASE_TRANSITIONS: Final[tuple[LeaseRow, ...]] = (
    # ---- join: enter the election
    LeaseRow("join", (_X,), _C, effects="try to create the lease key"),
    # ---- answers to the create
    LeaseRow(
        "acquired",
        (_C,),
        _H,
        conditions=("lease_fresh",),
        before=("take_lease",),
        effects="the revision is the epoch: open Alpaca, arm renewal and fence deadline",
    ),
    LeaseRow(
        "acquired",
        (_C,),
        _F,
        effects="the answer came too late to be safe: never publish, let the lease expire",
    ),
    LeaseRow(
        "acquire_refused",
        (_C,),
        _F,
        effects="another process holds the lease: watch it, arm the vacancy timer",
    ),
    LeaseRow(
        "acquire_failed",
        (_C,),
        _F,
        effects="the store did not answer: retry after the renewal interval",
    ),
    # ---- the lease became free (deleted, expired, or no renewal seen for a TTL)
    LeaseRow("lease_vacant", (_F,), _C, effects="try to create the lease key"),
    # ---- the holder loses its right to publish
    LeaseRow(
        "deadline_reached",
        (_H,),
        _R,
        before=("fence",),
        effects="no renewal by the fence deadline: stop publishing, close Alpaca",
    ),
    LeaseRow(
        "lease_lost",
        (_H,),
        _R,
        before=("fence",),
        effects="a renewal was refused or the store is gone: stop publishing, close Alpaca",
    ),
    LeaseRow("lease_lost", (_C,), _F, effects="the store is gone: wait for it as a follower"),
    LeaseRow("lease_lost", (_F,), None, effects="the store is gone: the relay reports a bus gap"),
    # ---- stop: leave the cluster
    LeaseRow(
        "stop",
        (_H,),
        _R,
        before=("mark_leaving", "fence"),
        effects="close Alpaca first; the lease is released once it is closed",
    ),
    LeaseRow("stop", (_R,), None, before=("mark_leaving",), effects="release once closed"),
    LeaseRow("stop", (_F, _C), _X, effects="nothing is held: leave at once"),
    LeaseRow("stop", (_X,), None, effects="already stopped: nothing to do"),
    # ---- the Alpaca session of a resigning holder is closed
    LeaseRow(
        "session_closed",
        (_R,),
        _X,
        conditions=("leaving",),
        before=("release",),
        effects="delete the lease (compare-and-set) so a follower takes over at once",
    ),
    LeaseRow(
        "session_closed",
        (_R,),
        _F,
        effects="fenced: rejoin as a follower",
    ),
)

#: Every trigger name, in table order.
LEASE_TRIGGERS: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(row.trigger for row in LEASE_TRANSITIONS)
)


def lease_transition_dicts() -> list[dict[str, object]]:
    """The lease table in the form ``transitions.Machine(transitions=...)`` takes."""
    return table_dicts(LEASE_TRANSITIONS)
