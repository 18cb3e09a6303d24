"""The tamper-evident journal: every line links to the one before, fsync follows the policy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from streamfsm._aio import journal as journal_module
from streamfsm._aio.journal import Journal
from streamfsm._core.records import V1_FIELDS, TransitionRecord, line_hash
from streamfsm.audit.verify import ViolationKind, verify_file, verify_records
from streamfsm.config import JournalFsync, StreamConfig
from streamfsm.errors import ConfigurationError
from tests.test_audit import SESSION, Step, walk

#: Fields an editor could change, with a plausible new value for each.
EDITS: dict[str, object] = {
    "wall_time": "2025-03-04T14:31:00.000000+00:00",
    "monotonic": 99.5,
    "connection_id": "forged-1",
    "epoch": 7,
    "reason": "edited",
    "error": "AuthenticationError",
    "code": 402,
    "attempt": 9,
    "delay": 0.5,
    "last_data": 42.0,
}


def written(path: Path, records: list[TransitionRecord]) -> list[bytes]:
    """Write ``records`` through the real writer; the file's lines (without newlines)."""
    journal = Journal(size=64, path=path)
    for record in records:
        journal.append(record)
    journal.close()
    return path.read_bytes().split(b"\n")[:-1]


def rewrite(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_the_writer_links_every_line_to_the_one_before(tmp_path: Path) -> None:
    """Line n carries the SHA-256 of line n-1; the first carries null."""
    lines = written(tmp_path / "j.jsonl", walk(*SESSION))
    links = [json.loads(line)["prev_hash"] for line in lines]
    assert links[0] is None
    assert links[1:] == [line_hash(line) for line in lines[:-1]]
    assert verify_file(tmp_path / "j.jsonl") == []


def test_the_in_memory_ring_holds_the_linked_records(tmp_path: Path) -> None:
    """What journal() returns is what was written, links included, and it verifies."""
    journal = Journal(size=64, path=tmp_path / "j.jsonl")
    returned = [journal.append(record) for record in walk(*SESSION)]
    journal.close()
    assert list(journal.records()) == returned
    assert [r.to_json().encode() for r in returned] == (tmp_path / "j.jsonl").read_bytes().split(
        b"\n"
    )[:-1]
    assert verify_records(journal.records()) == []


@pytest.mark.parametrize("removed", range(len(SESSION) - 1))
def test_removing_any_record_but_the_last_breaks_a_link(tmp_path: Path, removed: int) -> None:
    """A removed record is reported as a broken link on the line that now follows its place."""
    lines = written(tmp_path / "j.jsonl", walk(*SESSION))
    del lines[removed]
    violations = verify_file(rewrite(tmp_path / "j.jsonl", lines))
    assert (removed + 1, ViolationKind.BROKEN_LINK) in [(v.line, v.kind) for v in violations]


@pytest.mark.parametrize("field", sorted(EDITS))
@pytest.mark.parametrize("edited", range(len(SESSION) - 1))
def test_editing_any_field_of_any_record_but_the_last_breaks_a_link(
    tmp_path: Path, field: str, edited: int
) -> None:
    """One field changed in one record is caught by the next record's link."""
    lines = written(tmp_path / "j.jsonl", walk(*SESSION))
    data = json.loads(lines[edited])
    data[field] = EDITS[field]
    lines[edited] = json.dumps(data, separators=(",", ":")).encode()
    violations = verify_file(rewrite(tmp_path / "j.jsonl", lines))
    assert (edited + 2, ViolationKind.BROKEN_LINK) in [(v.line, v.kind) for v in violations]


def test_the_last_record_is_anchored_by_the_head_link(tmp_path: Path) -> None:
    """Editing the last line leaves the links intact but changes the head an auditor keeps."""
    path = tmp_path / "j.jsonl"
    lines = written(path, walk(*SESSION))
    head = line_hash(lines[-1])
    data = json.loads(lines[-1])
    data["reason"] = "edited"
    lines[-1] = json.dumps(data, separators=(",", ":")).encode()
    rewrite(path, lines)
    assert verify_file(path) == []
    assert line_hash(path.read_bytes().split(b"\n")[-2]) != head


def test_a_removed_head_is_a_broken_link_unless_partial(tmp_path: Path) -> None:
    """Dropping the first line leaves a first record that links to nothing in the file."""
    lines = written(tmp_path / "j.jsonl", walk(*SESSION))
    path = rewrite(tmp_path / "j.jsonl", lines[1:])
    assert (1, ViolationKind.BROKEN_LINK) in [(v.line, v.kind) for v in verify_file(path)]
    assert verify_file(path, allow_partial=True) == []


def test_a_second_run_links_to_the_first_runs_last_line(tmp_path: Path) -> None:
    """A writer opening an existing file continues its chain, so a whole run cannot vanish."""
    path = tmp_path / "j.jsonl"
    first = written(path, walk(*SESSION[:3]))
    journal = Journal(size=8, path=path)
    second = [journal.append(r) for r in walk(*SESSION, correlation_id="run-b")]
    journal.close()
    assert second[0].prev_hash == line_hash(first[-1])
    assert verify_file(path) == []
    lines = path.read_bytes().split(b"\n")[:-1]
    rewrite(path, lines[3:])
    assert (1, ViolationKind.BROKEN_LINK) in [(v.line, v.kind) for v in verify_file(path)]


def test_a_torn_line_is_closed_and_linked_over(tmp_path: Path) -> None:
    """After a crash mid-write, the next run links to the torn bytes; only the torn line fails."""
    path = tmp_path / "j.jsonl"
    lines = written(path, walk(*SESSION[:3]))
    path.write_bytes(path.read_bytes() + lines[0][:20])
    journal = Journal(size=8, path=path)
    appended = journal.append(walk(*SESSION, correlation_id="run-b")[0])
    journal.close()
    assert appended.prev_hash == line_hash(lines[0][:20])
    kinds = [(v.line, v.kind) for v in verify_file(path)]
    assert kinds == [(4, ViolationKind.MALFORMED_LINE)]


def test_a_schema_1_journal_is_still_read(tmp_path: Path) -> None:
    """Records without last_data and prev_hash verify as schema 1, and a v2 run may follow."""
    v1 = [attrs.evolve(r, schema=1, prev_hash=None) for r in walk(*SESSION)]
    path = tmp_path / "j.jsonl"
    rewrite(path, [r.to_json().encode() for r in v1])
    assert list(json.loads(path.read_bytes().split(b"\n")[0])) == list(V1_FIELDS)
    assert verify_file(path) == []
    journal = Journal(size=8, path=path)
    journal.append(walk(*SESSION, correlation_id="run-b")[0])
    journal.close()
    assert verify_file(path) == []


def test_a_schema_1_record_with_schema_2_fields_is_bad_schema(tmp_path: Path) -> None:
    """A version 1 line must not carry the version 2 fields."""
    record = attrs.evolve(walk(*SESSION)[0], last_data=1.0)
    data = json.loads(record.to_json())
    data["schema"] = 1
    path = rewrite(tmp_path / "j.jsonl", [json.dumps(data).encode()])
    assert [v.kind for v in verify_file(path)] == [ViolationKind.BAD_SCHEMA]


def test_a_malformed_link_is_bad_schema(tmp_path: Path) -> None:
    """prev_hash must be 64 lowercase hex digits or null."""
    record = attrs.evolve(walk(Step("start", "connecting", 1.0))[0], prev_hash="XYZ")
    path = rewrite(tmp_path / "j.jsonl", [record.to_json().encode()])
    assert [v.kind for v in verify_file(path)] == [ViolationKind.BAD_SCHEMA]


class FsyncCounter:
    """Counts os.fsync calls made by the journal module."""

    def __init__(self) -> None:
        self.calls = 0
        self._fsync = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self._fsync(fd)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(JournalFsync.ALWAYS, 7), (JournalFsync.INTERVAL, 3), (JournalFsync.NEVER, 0)],
)
def test_fsync_follows_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: JournalFsync, expected: int
) -> None:
    """always: per record; interval: the first, each crossing of the interval, and close."""
    counter = FsyncCounter()
    monkeypatch.setattr(journal_module.os, "fsync", counter)
    now = [0.0]
    journal = Journal(
        size=8, path=tmp_path / "j.jsonl", fsync=policy, fsync_interval=1.0, clock=lambda: now[0]
    )
    for record, at in zip(walk(*SESSION), (0.0, 0.1, 0.2, 1.5, 1.6, 1.7, 1.8), strict=True):
        now[0] = at
        journal.append(record)
    journal.close()
    assert counter.calls == expected


def test_the_fsync_policy_is_validated() -> None:
    """journal_fsync takes the three policy names; anything else names the field."""
    assert StreamConfig(journal_fsync="interval").journal_fsync is JournalFsync.INTERVAL
    assert StreamConfig().journal_fsync is JournalFsync.ALWAYS
    with pytest.raises(ConfigurationError, match="journal_fsync"):
        StreamConfig(journal_fsync="sometimes")


def test_a_journal_that_is_not_a_regular_file_is_never_synced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/dev/null (or a pipe) takes records under fsync="always" without an fsync error."""
    counter = FsyncCounter()
    monkeypatch.setattr(journal_module.os, "fsync", counter)
    journal = Journal(size=8, path=Path(os.devnull), fsync=JournalFsync.ALWAYS)
    for record in walk(*SESSION):
        journal.append(record)
    journal.close()
    assert counter.calls == 0


def test_every_transition_logs_the_journal_head(tmp_path: Path) -> None:
    """The state_changed event carries the hash of the line just written: an anchor outside."""
    from streamfsm._aio.feed import TransitionFeed
    from streamfsm.logs import StreamLogger, capture_events

    path = tmp_path / "j.jsonl"
    feed = TransitionFeed(StreamConfig(journal_path=path), StreamLogger(), clock=lambda: 0.0)
    with capture_events() as events:
        for record in walk(*SESSION):
            feed.publish(record)
    feed.journal.close()
    lines = path.read_bytes().split(b"\n")[:-1]
    heads = [e["journal_head"] for e in events if e["event"] == "state_changed"]
    assert heads == [line_hash(line) for line in lines]
