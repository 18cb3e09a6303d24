"""The state machines the diagrams draw: each one's states in reading order and its table.

:func:`machines` lists them in document order; a new machine adds a builder to
:data:`MACHINE_BUILDERS`. Builders read their tables at call time, so a patched table is drawn.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from streamfsm._core import machine
from streamfsm._core.machine import State
from streamfsm.cluster import lease_table
from streamfsm.cluster.lease_table import LeaseState

__all__ = [
    "MACHINE_BUILDERS",
    "MachineSpec",
    "TableRow",
    "connection_machine",
    "lease_machine",
    "machines",
]


class TableRow(Protocol):
    """What the renderers read from a row (``streamfsm._core.machine.Row`` and its kin)."""

    @property
    def trigger(self) -> str: ...
    @property
    def sources(self) -> Sequence[enum.Enum]: ...
    @property
    def dest(self) -> enum.Enum | None: ...
    @property
    def conditions(self) -> Sequence[str]: ...
    @property
    def unless(self) -> Sequence[str]: ...
    @property
    def guard(self) -> str: ...
    @property
    def effects(self) -> str: ...


@attrs.frozen
class MachineSpec:
    """One state machine to draw.

    Attributes:
        name: a short identifier (``connection``), used for anchors and JSON.
        title: the heading of its section and diagram.
        states: every state, in the order a reader follows them (left to right).
        initial: where a new instance starts.
        rows: the transition table, in priority order.
        anywhere: triggers drawn as one note ("any state -> X") instead of an edge per state.
    """

    name: str
    title: str
    states: tuple[enum.Enum, ...]
    initial: enum.Enum
    rows: tuple[TableRow, ...]
    anywhere: tuple[str, ...] = ()


def connection_machine() -> MachineSpec:
    """The connection lifecycle, read from ``machine.TRANSITIONS`` at call time."""
    return MachineSpec(
        name="connection",
        title="Connection lifecycle",
        states=(
            State.IDLE,
            State.CONNECTING,
            State.SUBSCRIBED,
            State.BACKOFF,
            State.CIRCUIT_OPEN,
            State.STOPPED,
        ),
        initial=State.IDLE,
        rows=tuple(machine.TRANSITIONS),
        anywhere=("stop",),
    )


def lease_machine() -> MachineSpec:
    """The cluster lease lifecycle, read from ``lease_table.LEASE_TRANSITIONS`` at call time."""
    return MachineSpec(
        name="lease",
        title="Cluster lease lifecycle",
        states=(
            LeaseState.STOPPED,
            LeaseState.FOLLOWER,
            LeaseState.CANDIDATE,
            LeaseState.HOLDER,
            LeaseState.RESIGNING,
        ),
        initial=LeaseState.STOPPED,
        rows=tuple(lease_table.LEASE_TRANSITIONS),
    )


#: The machines drawn, in document order. Each entry builds its spec at call time.
MACHINE_BUILDERS: list[Callable[[], MachineSpec]] = [connection_machine, lease_machine]


def machines() -> tuple[MachineSpec, ...]:
    """Every machine to draw, in document order."""
    return tuple(build() for build in MACHINE_BUILDERS)
