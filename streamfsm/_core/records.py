"""The transition record: one frozen value per transition, the unit of the journal.

Every transition the machine executes (internal ones included) becomes a
:class:`TransitionRecord`. The controller keeps the latest ``journal_size`` records in a ring and,
when ``StreamConfig.journal_path`` is set, appends each record to a JSON Lines file as one complete
line, flushed before the transition's effects run, so a crash loses at most the transition in
progress. The schema is versioned by ``JOURNAL_SCHEMA``; ``docs/audit.md`` documents it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs

__all__ = ["JOURNAL_SCHEMA", "TransitionRecord"]

#: Version of the record layout below; bump it when a field changes meaning or goes away.
JOURNAL_SCHEMA: Final = 1


@attrs.frozen(kw_only=True)
class TransitionRecord:
    """Who moved the machine, from where to where, why and when.

    Attributes:
        schema: the record layout version (``JOURNAL_SCHEMA``).
        seq: 1 for the first transition of a controller, then consecutive.
        wall_time: UTC wall-clock time, ISO 8601 with microseconds.
        monotonic: the controller clock's reading, seconds.
        correlation_id: the controller's id, chosen by the caller or generated.
        connection_id: the session the transition concerns, when there is one.
        epoch: the connection epoch (bumped for every session opened).
        trigger: the trigger name from the transition table.
        src: the state before.
        dst: the state after (equal to ``src`` for internal transitions).
        reason: a short snake_case cause (``user``, ``socket_closed``, ``stale``, ...).
        error: the error class name when an error caused the transition.
        code: the Alpaca error code when there is one.
        attempt: how many connection attempts the controller has made so far.
        delay: the backoff or cool-down chosen, in seconds, when the transition armed one.
    """

    schema: int = JOURNAL_SCHEMA
    seq: int
    wall_time: str
    monotonic: float
    correlation_id: str
    connection_id: str | None
    epoch: int
    trigger: str
    src: str
    dst: str
    reason: str
    error: str | None = None
    code: int | None = None
    attempt: int = 0
    delay: float | None = None

    def to_json(self) -> str:
        """The record as one line of JSON (no newline), keys in field order."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransitionRecord:
        """Rebuild a record from its JSON form.

        Raises:
            TypeError: when a field is missing or unknown.
        """
        return cls(**data)
