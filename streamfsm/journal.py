"""The transition journal: one frozen record per transition, in memory and optionally on disk.

Every transition the machine executes (internal ones included) becomes a
:class:`TransitionRecord`. The controller keeps the latest ``journal_size`` records in a ring and,
when ``StreamConfig.journal_path`` is set, appends each record to a JSON Lines file as one complete
line, flushed before the transition's effects run, so a crash loses at most the transition in
progress. The schema is versioned by ``JOURNAL_SCHEMA``; ``docs/audit.md`` documents it.
"""

from __future__ import annotations

import collections
import json
import os
import threading
from pathlib import Path
from typing import IO, Any, Final

import attrs

__all__ = ["JOURNAL_SCHEMA", "Journal", "TransitionRecord"]

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


class Journal:
    """A bounded ring of records, optionally mirrored to a JSON Lines file.

    ``append`` may be called from the controller's loop only; ``records`` from any thread.
    """

    def __init__(self, size: int, path: Path | None = None) -> None:
        self._ring: collections.deque[TransitionRecord] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._path = path
        self._file: IO[str] | None = None

    def append(self, record: TransitionRecord) -> None:
        """Keep ``record`` and, with a file, write and flush it as one line.

        The file is opened for appending on first use (and again after :meth:`close`).

        Raises:
            OSError: when the journal file cannot be written; the record is kept in memory.
        """
        with self._lock:
            self._ring.append(record)
        if self._path is None:
            return
        if self._file is None:
            self._file = _open_for_append(self._path)
        self._file.write(record.to_json() + "\n")
        self._file.flush()

    def records(self) -> tuple[TransitionRecord, ...]:
        """The retained records, oldest first."""
        with self._lock:
            return tuple(self._ring)

    def close(self) -> None:
        """Close the file, if open; idempotent. A later append reopens it."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _open_for_append(path: Path) -> IO[str]:
    """Open the journal for appending; end a line torn by an earlier crash first.

    Without the newline, the first record of this run would be glued to the torn line and lost
    with it; with it, the torn line stands alone and ``audit verify`` reports just that line.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            torn = existing.read(1) != b"\n"
    file = path.open("a", encoding="utf-8")
    if torn:
        file.write("\n")
    return file
