"""The faults a soak run draws from: one of each kind of the simulator's table that is not fatal.

Each :class:`FaultKind` says how to inject it, whether the session must be replaced, and what
to undo (an auth delay stays until lifted) once the fault has really hit an attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs

from streamfsm.sim import SimulatorThread

__all__ = ["AUTH_TIMEOUT", "FAULT_KINDS", "STALE_QUOTES", "FaultKind"]

#: The controller's stale threshold for quotes and its auth timeout in a soak run, seconds.
STALE_QUOTES: Final = 1.0
AUTH_TIMEOUT: Final = 1.0
CONNECTION_LIMIT: Final = 406
INTERNAL_ERROR: Final = 500


@attrs.frozen
class FaultKind:
    """One kind of fault: how to inject it and whether the session must be replaced."""

    name: str
    inject: Callable[[SimulatorThread], None]
    disconnects: bool
    #: Undo after the loss is seen (an auth delay stays until lifted).
    undo: Callable[[SimulatorThread], None] | None = None
    #: Undo only once a transition carried this error class (the fault really hit an attempt).
    undo_after: str | None = None


def _drop(sim: SimulatorThread) -> None:
    sim.drop()


def _close_1011(sim: SimulatorThread) -> None:
    sim.close_connections(1011, "soak")


def _mute(sim: SimulatorThread) -> None:
    sim.mute(3 * STALE_QUOTES)


def _refuse(sim: SimulatorThread) -> None:
    sim.refuse(1.0)
    sim.drop()


def _fail_auth(sim: SimulatorThread) -> None:
    sim.fail_auth(2, CONNECTION_LIMIT)
    sim.drop()


def _slow_auth(sim: SimulatorThread) -> None:
    sim.delay_auth(AUTH_TIMEOUT + 0.5)
    sim.drop()


def _fast_auth(sim: SimulatorThread) -> None:
    sim.delay_auth(0.0)


def _error_500(sim: SimulatorThread) -> None:
    sim.send_error(INTERNAL_ERROR)


def _malformed(sim: SimulatorThread) -> None:
    sim.send_malformed("garbage")


#: The faults drawn from, one of each kind of the simulator's fault table that is not fatal.
FAULT_KINDS: Final = (
    FaultKind("drop", _drop, disconnects=True),
    FaultKind("close_1011", _close_1011, disconnects=True),
    FaultKind("mute", _mute, disconnects=True),
    FaultKind("refuse_503", _refuse, disconnects=True),
    FaultKind("fail_auth_406", _fail_auth, disconnects=True),
    FaultKind(
        "slow_auth",
        _slow_auth,
        disconnects=True,
        undo=_fast_auth,
        undo_after="ConnectTimeoutError",
    ),
    FaultKind("error_500", _error_500, disconnects=False),
    FaultKind("malformed", _malformed, disconnects=False),
)
