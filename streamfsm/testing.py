"""Test doubles for code built on streamfsm: a fake clock and a fake session port.

``FakeClock`` moves only when told to. ``FakeSessionPort`` records what a core asked of the I/O
layer (sessions opened and closed, subscription changes, errors) so a test can answer as a server
would, synchronously, through the core's fact inputs. With :class:`~streamfsm._core.runner.Runner`
they drive a :class:`~streamfsm._core.core.ConnectionCore` deterministically, with no socket and no
loop.
For tests against a real socket, use :mod:`streamfsm.sim`.
"""

from __future__ import annotations

import attrs

from streamfsm._core.clock import FakeClock
from streamfsm._core.commands import CloseSession, OpenSession, SendChange
from streamfsm.errors import StreamError

__all__ = ["FakeClock", "FakeSessionPort"]


@attrs.define
class FakeSessionPort:
    """Records the runner's session commands.

    Attributes:
        open: the sessions currently open, by epoch.
        opened: every session ever opened, in order.
        changes: every subscription change sent, in order.
        errors: every error reported to the user.
        most_open: the largest number of sessions open at once.
    """

    open: dict[int, OpenSession] = attrs.Factory(dict)
    opened: list[OpenSession] = attrs.Factory(list)
    changes: list[SendChange] = attrs.Factory(list)
    errors: list[StreamError] = attrs.Factory(list)
    most_open: int = 0

    def open_session(self, command: OpenSession) -> None:
        """Record an opened session."""
        self.open[command.epoch] = command
        self.opened.append(command)
        self.most_open = max(self.most_open, len(self.open))

    def close_session(self, command: CloseSession) -> None:
        """Record a closed session."""
        self.open.pop(command.epoch, None)

    def send_change(self, command: SendChange) -> None:
        """Record a subscription change."""
        self.changes.append(command)

    def report_error(self, error: StreamError) -> None:
        """Record an error for the user."""
        self.errors.append(error)
