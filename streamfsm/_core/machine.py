"""The connection lifecycle: its states and its one transition table.

Rules of this file:

1. Every transition the controller can make is a row of ``TRANSITIONS``. Nothing else moves the
   state: the runtime machine, ``docs/state-diagram.md`` and the Hypothesis reference model are all
   built from this table, so what an auditor reads is what the code does.
2. Rows with the same trigger and source are tried in order; the first whose guard holds wins, so
   a guarded row followed by an unguarded one is an if/else.
3. ``dest=None`` is an internal transition: the state stays, the effects run, the journal records
   it. A row whose destination equals its source is reflexive: the state is left and entered again
   (``restart`` closes the session and opens a new one).
4. Guards are the names of pure predicates on the model
(:class:`streamfsm._core.core.ConnectionCore`);
   effects are the names of its callbacks, which only append commands to an outbox.

Triggers are commands (``start``, ``stop``, ``restart``) or facts in the past tense
(``ready``, ``attempt_failed``, ``connection_lost``, ``data_stale``, ``backoff_elapsed``,
``cooldown_elapsed``, ``symbols_changed``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Final, Generic, TypeVar

import attrs

__all__ = [
    "TRANSITIONS",
    "TRIGGERS",
    "Row",
    "State",
    "state_callbacks",
    "table_dicts",
    "transition_dicts",
]


class State(enum.Enum):
    """The six states of a controller. ``is_connected()`` is true exactly in ``SUBSCRIBED``."""

    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    BACKOFF = "backoff"
    CIRCUIT_OPEN = "circuit_open"
    STOPPED = "stopped"


#: The state enum of a table: the connection's ``State`` here, the lease's ``LeaseState``.
StateT = TypeVar("StateT", bound=enum.Enum)


@attrs.frozen
class Row(Generic[StateT]):
    """One transition: ``trigger`` from any of ``sources`` to ``dest`` when the guards allow.

    Generic over the state enum, so every machine of the project (the connection's and the
    cluster lease's) is written as the same kind of table.

    Attributes:
        trigger: the event name.
        sources: the states the row applies in.
        dest: the destination, or None for an internal transition.
        conditions: guard names that must all hold.
        unless: guard names that must all fail.
        before: effect names run before the state changes (``on_exit``/``on_enter`` follow).
        effects: what the row does, in words, for the state diagram's table.
    """

    trigger: str
    sources: tuple[StateT, ...]
    dest: StateT | None
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    effects: str = ""

    @property
    def guard(self) -> str:
        """The guard in words: ``a and b and not c``, or empty when unguarded."""
        parts = [*self.conditions, *(f"not {name}" for name in self.unless)]
        return " and ".join(parts)


_I, _C, _S, _B, _O, _X = (
    State.IDLE,
    State.CONNECTING,
    State.SUBSCRIBED,
    State.BACKOFF,
    State.CIRCUIT_OPEN,
    State.STOPPED,
)
_RUNNING: Final = (_I, _C, _S, _B, _O)

TRANSITIONS: Final[tuple[Row[State], ...]] = (
    # ---- start: begin the lifecycle (again, after a stop)
    Row(
        "start",
        (_I, _X),
        _C,
        conditions=("has_symbols",),
        before=("mark_started",),
        effects="open a session for the desired symbols",
    ),
    Row(
        "start",
        (_I, _X),
        _I,
        before=("mark_started",),
        effects="wait for symbols without a socket or a timer",
    ),
    # ---- symbols_changed: the caller's desired set changed
    Row(
        "symbols_changed",
        (_I,),
        _C,
        conditions=("started", "has_symbols"),
        effects="open a session for the desired symbols",
    ),
    Row(
        "symbols_changed",
        (_S, _B),
        _I,
        unless=("has_symbols",),
        effects="nothing left to stream: close the session, cancel timers",
    ),
    Row(
        "symbols_changed",
        (_S,),
        None,
        before=("send_difference",),
        effects="send only the difference; no reconnect",
    ),
    Row(
        "symbols_changed",
        (_I, _C, _B, _O, _X),
        None,
        effects="record the desired set; the next session applies it",
    ),
    # ---- ready: socket open, authenticated, subscription acknowledged
    Row(
        "ready",
        (_C,),
        _I,
        unless=("has_symbols",),
        effects="every symbol was removed meanwhile: close the session",
    ),
    Row("ready", (_C,), _S, effects="arm the stale watchdog and the healthy-session timer"),
    # ---- attempt_failed: a connection attempt did not reach subscribed
    Row(
        "attempt_failed",
        (_C,),
        _X,
        conditions=("is_fatal",),
        effects="keep the typed error; never retry",
    ),
    Row(
        "attempt_failed",
        (_C,),
        _B,
        conditions=("predecessor_connected",),
        effects="close the session; wait the error's retry_after, uncounted by the breaker",
    ),
    Row(
        "attempt_failed",
        (_C,),
        _O,
        conditions=("breaker_trips",),
        before=("record_failure",),
        effects="close the session; arm the breaker cool-down",
    ),
    Row(
        "attempt_failed",
        (_C,),
        _B,
        before=("record_failure",),
        effects="close the session; arm a jittered backoff delay",
    ),
    # ---- connection_lost: a subscribed session ended (close frame, reset, ping timeout, error)
    Row(
        "connection_lost",
        (_S,),
        _X,
        conditions=("is_fatal",),
        effects="keep the typed error; never retry",
    ),
    Row(
        "connection_lost",
        (_S,),
        _B,
        conditions=("predecessor_connected",),
        effects="wait the error's retry_after, uncounted by the breaker",
    ),
    Row(
        "connection_lost",
        (_S,),
        _O,
        conditions=("breaker_trips",),
        before=("record_failure",),
        effects="arm the breaker cool-down",
    ),
    Row(
        "connection_lost",
        (_S,),
        _B,
        before=("record_failure",),
        effects="arm a jittered backoff delay",
    ),
    # ---- data_stale: the socket is open but no market data came within the threshold
    Row(
        "data_stale",
        (_S,),
        _O,
        conditions=("breaker_trips",),
        before=("record_failure",),
        effects="close the mute session; arm the breaker cool-down",
    ),
    Row(
        "data_stale",
        (_S,),
        _B,
        before=("record_failure",),
        effects="close the mute session; arm a jittered backoff delay",
    ),
    # ---- timers
    Row("backoff_elapsed", (_B,), _C, effects="open a session for the desired symbols"),
    Row(
        "cooldown_elapsed",
        (_O,),
        _C,
        before=("begin_probe",),
        effects="half-open: exactly one probe attempt",
    ),
    # ---- restart: close and reconnect
    Row(
        "restart",
        (_I, _C, _S, _B),
        _C,
        conditions=("has_symbols",),
        before=("mark_started",),
        effects="close the current session; open a new one",
    ),
    Row(
        "restart",
        (_O,),
        _C,
        conditions=("forced", "has_symbols"),
        before=("begin_probe",),
        effects="operator override of the open breaker: one probe attempt",
    ),
    Row(
        "restart",
        (_I, _C, _S, _B),
        _I,
        before=("mark_started",),
        effects="no symbols: close the session and wait",
    ),
    Row("restart", (_O,), None, effects="refused: the breaker stays open until its cool-down"),
    # ---- stop: from anywhere, idempotent
    Row("stop", _RUNNING, _X, effects="close the session, cancel every timer"),
    Row("stop", (_X,), None, effects="already stopped: nothing to do"),
)

#: Every trigger name, in table order.
TRIGGERS: Final[tuple[str, ...]] = tuple(dict.fromkeys(row.trigger for row in TRANSITIONS))


def state_callbacks() -> list[dict[str, object]]:
    """The states with the model's enter and exit callbacks, as ``transitions.Machine`` takes them.

    Each callback is named after its state (``_enter_subscribed``...); the model defines it.
    """
    exits = {State.SUBSCRIBED, State.BACKOFF, State.CIRCUIT_OPEN}
    return [
        {
            "name": state,
            "on_enter": [f"_enter_{state.value}"],
            "on_exit": [f"_exit_{state.value}"] if state in exits else [],
        }
        for state in State
    ]


def table_dicts(rows: Iterable[Row[Any]]) -> list[dict[str, object]]:
    """A table in the form ``transitions.Machine(transitions=...)`` takes."""
    return [
        {
            "trigger": row.trigger,
            "source": list(row.sources),
            "dest": row.dest,
            "conditions": list(row.conditions),
            "unless": list(row.unless),
            "before": list(row.before),
        }
        for row in rows
    ]


def transition_dicts() -> list[dict[str, object]]:
    """The connection table in the form ``transitions.Machine(transitions=...)`` takes."""
    return table_dicts(TRANSITIONS)
