"""The journal writer: a bounded ring of chained transition records, optionally in a file.

The controller keeps the latest ``journal_size`` records in a ring and, when
``StreamConfig.journal_path`` is set, appends each record to a JSON Lines file as one complete
line, written before the transition's effects run. Each record is chained to the line before it
(``prev_hash``); a writer appending to an existing file chains its first record to that file's
last line, so runs appended to one file form one chain. ``StreamConfig.journal_fsync`` says when
the file reaches the disk. The schema is versioned by ``JOURNAL_SCHEMA``; ``docs/audit.md``
documents it.
"""

from __future__ import annotations

import collections
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

import attrs

from streamfsm._core.records import TransitionRecord, line_hash
from streamfsm.config import JournalFsync

__all__ = ["Journal"]

#: Bytes read at a time when looking for the last line of an existing journal.
_TAIL_CHUNK: Final = 4096


class Journal:
    """A bounded ring of records, optionally mirrored to a JSON Lines file.

    Args:
        size: records kept in memory.
        path: the file to append to, or None for memory only.
        fsync: when the file is forced to disk: after every record, at most once per
            ``fsync_interval`` (on the record that crosses it, and on :meth:`close`), or never
            (flushed to the operating system only).
        fsync_interval: seconds between two forced writes under ``JournalFsync.INTERVAL``.
        clock: monotonic seconds, for the interval.

    ``append`` may be called from the controller's loop only; ``records`` from any thread.
    """

    def __init__(
        self,
        size: int,
        path: Path | None = None,
        *,
        fsync: JournalFsync = JournalFsync.NEVER,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ring: collections.deque[TransitionRecord] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._path = path
        self._file: IO[bytes] | None = None
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._synced_at: float | None = None
        self._unsynced = False
        self._syncable = False
        #: The ``prev_hash`` of the next record: the link to the last line written.
        self._link: str | None = None

    def append(self, record: TransitionRecord) -> TransitionRecord:
        """Chain ``record`` to the one before, keep it and, with a file, write it as one line.

        The file is opened for appending on first use (and again after :meth:`close`); the
        chain then continues from the file's last line.

        Returns:
            The record as kept and written, with its ``prev_hash`` set.

        Raises:
            OSError: when the journal file cannot be written; the record is kept in memory.
        """
        if self._path is not None and self._file is None:
            self._file, tail = _open_for_append(self._path)
            self._link = None if tail is None else line_hash(tail)
            # A pipe or a device (/dev/null) cannot be forced to disk: fsync would only fail.
            self._syncable = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        chained = attrs.evolve(record, prev_hash=self._link)
        line = chained.to_json().encode("utf-8")
        self._link = line_hash(line)
        with self._lock:
            self._ring.append(chained)
        if self._file is not None:
            self._file.write(line + b"\n")
            self._file.flush()
            self._sync_if_due()
        return chained

    @property
    def head(self) -> str | None:
        """The hash of the last record appended (the ``prev_hash`` the next one will carry).

        Logged with every transition, so the head of the file is also kept outside it: a removed
        or edited last line is caught by comparing the file's head with the logged one.
        """
        return self._link

    def records(self) -> tuple[TransitionRecord, ...]:
        """The retained records, oldest first."""
        with self._lock:
            return tuple(self._ring)

    def close(self) -> None:
        """Force what is unsynced to disk (unless the policy is ``never``) and close the file.

        Idempotent; a later append reopens the file.

        Raises:
            OSError: when the final forced write fails; the file is closed all the same.
        """
        file, self._file = self._file, None
        if file is None:
            return
        try:
            if self._unsynced and self._syncable and self._fsync is not JournalFsync.NEVER:
                os.fsync(file.fileno())
                self._unsynced = False
        finally:
            file.close()

    def _sync_if_due(self) -> None:
        assert self._file is not None
        if self._fsync is JournalFsync.NEVER or not self._syncable:
            return
        now = self._clock()
        due = (
            self._fsync is JournalFsync.ALWAYS
            or self._synced_at is None
            or now - self._synced_at >= self._fsync_interval
        )
        if due:
            os.fsync(self._file.fileno())
            self._synced_at = now
            self._unsynced = False
        else:
            self._unsynced = True


def _open_for_append(path: Path) -> tuple[IO[bytes], bytes | None]:
    """Open the journal for appending; end a line torn by an earlier crash first.

    Without the newline, the first record of this run would be glued to the torn line and lost
    with it; with it, the torn line stands alone and ``audit verify`` reports just that line.

    Returns:
        The open file and the bytes of its last line (torn or not), None for an empty file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tail = _last_line(path) if path.exists() else None
    file = path.open("ab")
    if tail is not None and not tail[1]:
        file.write(b"\n")
        file.flush()
    return file, None if tail is None else tail[0]


def _last_line(path: Path) -> tuple[bytes, bool] | None:
    """The last line of ``path`` without its newline, and whether it had one; None when empty."""
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return None
        file.seek(end - 1)
        complete = file.read(1) == b"\n"
        stop = end - 1 if complete else end
        position = stop
        chunks: list[bytes] = []
        while position > 0:
            start = max(0, position - _TAIL_CHUNK)
            file.seek(start)
            chunk = file.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                chunks.append(chunk[newline + 1 :])
                break
            chunks.append(chunk)
            position = start
        return b"".join(reversed(chunks)), complete
