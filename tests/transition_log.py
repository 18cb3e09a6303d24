"""Waiting on transitions that happened, not on the state a controller happens to be in now.

A controller passes through ``backoff`` in a few milliseconds when the test's backoff is short;
``wait_for(State.BACKOFF)`` only sees the current state and can miss the pass entirely on a loaded
machine. A :class:`TransitionLog` is a listener: it keeps every record from the moment it is
attached, so a wait for "a record into backoff" holds once the transition happened, however
briefly the controller stayed there.
"""

from __future__ import annotations

import threading

from streamfsm._core.records import TransitionRecord
from streamfsm.controller import StreamController


class TransitionLog:
    """Every transition record of one controller from attachment on, and waits on them."""

    def __init__(self, controller: StreamController) -> None:
        self.records: list[TransitionRecord] = []
        self._changed = threading.Condition()
        controller.add_listener(self._append)

    def _append(self, record: TransitionRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def matching(
        self, dst: str | None = None, trigger: str | None = None
    ) -> list[TransitionRecord]:
        """The records so far into ``dst`` by ``trigger`` (None matches any)."""
        with self._changed:
            return [
                record
                for record in self.records
                if (dst is None or record.dst == dst)
                and (trigger is None or record.trigger == trigger)
            ]

    def wait(self, timeout: float, *, dst: str | None = None, trigger: str | None = None) -> bool:
        """True once a record into ``dst`` by ``trigger`` exists; False after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: bool(self.matching(dst, trigger)), timeout)
