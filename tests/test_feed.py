"""The transition feed: journal, listeners and waiters after each transition."""

from __future__ import annotations

import threading
from pathlib import Path

import attrs

from streamfsm._aio.feed import TransitionFeed
from streamfsm._core.records import TransitionRecord
from streamfsm.config import StreamConfig
from streamfsm.logs import StreamLogger

WAIT = 5.0
#: Far longer than WAIT: a waiter still blocked after WAIT was never woken.
NEVER = 60.0
LOG = StreamLogger(correlation_id="feed-test")


def record(seq: int, src: str, dst: str) -> TransitionRecord:
    return TransitionRecord(
        seq=seq,
        wall_time="2026-01-02T00:00:00.000000+00:00",
        monotonic=float(seq),
        correlation_id="feed-test",
        connection_id=None,
        epoch=0,
        trigger="start",
        src=src,
        dst=dst,
        reason="user",
        error=None,
        code=None,
        attempt=0,
        delay=None,
    )


def feed_with_file(path: Path) -> TransitionFeed:
    return TransitionFeed(attrs.evolve(StreamConfig(), journal_path=path), LOG, lambda: 0.0)


def test_the_journal_file_is_closed_whenever_the_machine_comes_to_rest(tmp_path: Path) -> None:
    """Open while running; closed after a record ending in idle or stopped; all lines kept."""
    path = tmp_path / "journal.jsonl"
    feed = feed_with_file(path)
    feed.publish(record(1, "idle", "connecting"))
    assert feed.journal._file is not None
    feed.publish(record(2, "connecting", "stopped"))
    assert feed.journal._file is None
    feed.publish(record(3, "stopped", "stopped"))
    assert feed.journal._file is None
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    assert [r.seq for r in feed.journal.records()] == [1, 2, 3]


def test_a_listener_that_raises_does_not_stop_the_others() -> None:
    """Every listener gets every record; one that raises is logged and skipped."""
    feed = TransitionFeed(StreamConfig(), LOG, lambda: 0.0)
    seen: list[int] = []

    def broken(_record: TransitionRecord) -> None:
        raise RuntimeError("listener defect")

    feed.add_listener(broken)
    feed.add_listener(lambda r: seen.append(r.seq))
    feed.publish(record(1, "idle", "connecting"))
    feed.publish(record(2, "connecting", "subscribed"))
    assert seen == [1, 2]


def test_a_waiting_thread_wakes_on_a_change() -> None:
    """wait() returns True once its predicate holds after changed(); False on timeout."""
    feed = TransitionFeed(StreamConfig(), LOG, lambda: 0.0)
    flag = threading.Event()
    assert feed.wait(flag.is_set, 0.01) is False
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(feed.wait(flag.is_set, NEVER)))
    waiter.start()
    flag.set()
    feed.changed()
    waiter.join(WAIT)
    assert result == [True]
