"""The commands a lease core emits (effects as data) and the timers it arms.

The NATS adapter carries each out and reports the result back to the core as a fact.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "Acquire",
    "ArmLeaseTimer",
    "BeginHolding",
    "CancelLeaseTimer",
    "Fence",
    "LeaseCommand",
    "LeaseTimer",
    "Release",
    "Renew",
]


class LeaseTimer(enum.Enum):
    """The timers a lease core arms; at most one of each kind at a time."""

    RENEW = "renew"
    FENCE = "fence"
    VACANCY = "vacancy"


@attrs.frozen
class Acquire:
    """Create the lease key with ``member`` as its holder, only if it does not exist."""

    token: int
    member: str


@attrs.frozen
class Renew:
    """Rewrite the lease key only if its revision is still ``revision`` (compare-and-set)."""

    token: int
    member: str
    epoch: int
    revision: int


@attrs.frozen
class Release:
    """Delete the lease key only if its revision is still ``revision``."""

    token: int
    revision: int


@attrs.frozen
class BeginHolding:
    """This process holds the lease under ``epoch``: open Alpaca and start relaying."""

    epoch: int


@attrs.frozen
class Fence:
    """Stop publishing and close the Alpaca session of ``epoch`` now; report it closed."""

    epoch: int
    reason: str


@attrs.frozen
class ArmLeaseTimer:
    """Call ``timer_fired(timer, token)`` after ``delay`` seconds, replacing any armed one."""

    timer: LeaseTimer
    delay: float
    token: int


@attrs.frozen
class CancelLeaseTimer:
    """Disarm ``timer`` if armed."""

    timer: LeaseTimer


LeaseCommand = Acquire | Renew | Release | BeginHolding | Fence | ArmLeaseTimer | CancelLeaseTimer
