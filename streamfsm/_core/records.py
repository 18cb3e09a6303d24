"""The transition record: one frozen value per transition, the unit of the journal.

Every transition the machine executes (internal ones included) becomes a
:class:`TransitionRecord`. The controller keeps the latest ``journal_size`` records in a ring and,
when ``StreamConfig.journal_path`` is set, appends each record to a JSON Lines file as one complete
line before the transition's effects run. The schema is versioned by ``JOURNAL_SCHEMA``;
``docs/audit.md`` documents it.

Schema 2 makes the journal tamper-evident: each record carries ``prev_hash``, the SHA-256 of the
line before it, so removing or editing a record breaks the next link. It also carries
``last_data``, the monotonic time of the last market data of the session, so an outage can be
dated from when data stopped rather than from when the loss was detected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import attrs

__all__ = [
    "JOURNAL_SCHEMA",
    "SUPPORTED_SCHEMAS",
    "V1_FIELDS",
    "TransitionRecord",
    "line_hash",
]

#: Version of the record layout below; bump it when a field changes meaning or goes away.
JOURNAL_SCHEMA: Final = 2
#: Layouts a reader understands: version 1 lacks ``last_data`` and ``prev_hash``.
SUPPORTED_SCHEMAS: Final = frozenset({1, 2})


def line_hash(line: bytes) -> str:
    """The link to a journal line: SHA-256 of its bytes without the newline, lowercase hex."""
    return hashlib.sha256(line).hexdigest()


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
        last_data: monotonic time of the last market data the current session received, or
            None when it received none (schema 2).
        prev_hash: :func:`line_hash` of the journal line before this one, or None for the first
            line of a journal (schema 2). Set by the journal writer, not by the machine.
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
    last_data: float | None = None
    prev_hash: str | None = None

    def to_json(self) -> str:
        """The record as one line of JSON (no newline), keys in field order.

        A schema 1 record is written with the schema 1 fields only, as it was read.
        """
        data = attrs.asdict(self)
        if self.schema == 1:
            for name in ("last_data", "prev_hash"):
                del data[name]
        return json.dumps(data, separators=(",", ":"))

    def link(self) -> str:
        """The ``prev_hash`` the record after this one carries: the hash of :meth:`to_json`."""
        return line_hash(self.to_json().encode("utf-8"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransitionRecord:
        """Rebuild a record from its JSON form (schema 1 or 2).

        Raises:
            TypeError: when a field is missing or unknown.
        """
        return cls(**data)


#: The fields of a schema 1 record, in order.
V1_FIELDS: Final[tuple[str, ...]] = tuple(
    field.name
    for field in attrs.fields(TransitionRecord)
    if field.name not in ("last_data", "prev_hash")
)
