"""The transition table: every (state, trigger) pair, and the rules the table itself must obey."""

from __future__ import annotations

import itertools

import pytest
from transitions import Machine, MachineError

from streamfsm._core.core import ConnectionCore
from streamfsm._core.machine import TRANSITIONS, TRIGGERS, Row, State, transition_dicts

GUARDS = ("has_symbols", "started", "is_fatal", "predecessor_connected", "breaker_trips", "forced")


class GuardModel:
    """A model whose guards return fixed values, to exercise the bare table."""

    state: State

    def __init__(self, values: dict[str, bool]) -> None:
        for name in GUARDS:
            setattr(self, name, lambda _event, value=values[name]: value)
        for row in TRANSITIONS:
            for effect in row.before:
                setattr(self, effect, lambda _event: None)


def expected(state: State, trigger: str, values: dict[str, bool]) -> State | str | None:
    """The oracle: the first row that applies, read straight from the table."""
    for row in TRANSITIONS:
        if row.trigger != trigger or state not in row.sources:
            continue
        if all(values[g] for g in row.conditions) and not any(values[g] for g in row.unless):
            return row.dest if row.dest is not None else state
    return "invalid"


def build(values: dict[str, bool], state: State) -> tuple[GuardModel, Machine]:
    model = GuardModel(values)
    machine = Machine(
        model=model,
        states=State,
        transitions=transition_dicts(),
        initial=state,
        auto_transitions=False,
        send_event=True,
    )
    return model, machine


COMBINATIONS = [
    dict(zip(GUARDS, bits, strict=True))
    for bits in itertools.product((False, True), repeat=len(GUARDS))
]


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_state_trigger_pair(state: State, trigger: str) -> None:
    """Legal pairs go where the table says; illegal pairs raise and leave the state unchanged."""
    for values in COMBINATIONS:
        model, _machine = build(values, state)
        outcome = expected(state, trigger, values)
        if outcome == "invalid":
            with pytest.raises(MachineError):
                model.trigger(trigger)  # type: ignore[attr-defined]
            assert model.state is state
        else:
            assert model.trigger(trigger) is True  # type: ignore[attr-defined]
            assert model.state is outcome, (state, trigger, values)


def test_stopped_is_left_only_by_start() -> None:
    """Stopped is absorbing except for an explicit start (gRPC's SHUTDOWN, plus a restart)."""
    leaving = {
        row.trigger for row in TRANSITIONS if State.STOPPED in row.sources and row.dest is not None
    }
    assert leaving == {"start"}


def test_stop_applies_in_every_state() -> None:
    """Stop has a row from every state, so a stop can never be refused."""
    covered = {s for row in TRANSITIONS if row.trigger == "stop" for s in row.sources}
    assert covered == set(State)


def test_every_state_is_reachable_and_guards_exist() -> None:
    """Every state is some row's destination and every guard/effect is a core method."""
    destinations = {row.dest for row in TRANSITIONS if row.dest is not None}
    assert destinations | {State.IDLE} == set(State)
    names = {n for row in TRANSITIONS for n in (*row.conditions, *row.unless, *row.before)}
    for name in names:
        assert callable(getattr(ConnectionCore, name, None)), name


def test_trigger_stubs_match_the_table() -> None:
    """The core declares a typed stub for exactly the table's triggers."""
    annotations = ConnectionCore.__annotations__
    stubs = {name for name in annotations if name not in {"state", "trigger"}}
    assert stubs == set(TRIGGERS)


def test_row_guard_reads_as_words() -> None:
    """A row's guard is rendered for the docs as a conjunction."""
    row = Row("x", (State.IDLE,), None, conditions=("a",), unless=("b",))
    assert row.guard == "a and not b"
