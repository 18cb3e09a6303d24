"""The journal writer: a bounded ring of transition records, optionally mirrored to a file.

The controller keeps the latest ``journal_size`` records in a ring and, when
``StreamConfig.journal_path`` is set, appends each record to a JSON Lines file as one complete
line, flushed before the transition's effects run, so a crash loses at most the transition in
progress. The schema is versioned by ``JOURNAL_SCHEMA``; ``docs/audit.md`` documents it.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import IO

from streamfsm._core.records import TransitionRecord

__all__ = ["Journal"]


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
