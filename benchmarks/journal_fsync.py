"""What each ``journal_fsync`` policy costs per transition record.

    python -m benchmarks.journal_fsync [--records 2000] [--dir PATH]

Appends the same chained records through the real ``Journal`` writer under ``always``,
``interval`` (1 s) and ``never``, into a file in ``--dir`` (default: the system's temporary
directory; point it at the disk the journal will live on, since ``fsync`` costs what that device
costs), and prints the median and 99th percentile time per append, in microseconds. The time is
spent on the controller's loop, before the transition's effects run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from streamfsm._aio.journal import Journal
from streamfsm._core.records import TransitionRecord
from streamfsm.config import JournalFsync

__all__ = ["main", "measure"]

DEFAULT_RECORDS: Final = 2000
MICROSECONDS: Final = 1e6
PERCENTILE_99: Final = 98  # index into statistics.quantiles(n=100)
_RING: Final = 1000


def _record(seq: int) -> TransitionRecord:
    """A plausible record: a loss from subscribed into backoff with an error and a delay."""
    return TransitionRecord(
        seq=seq,
        wall_time="2025-03-04T14:30:10.004211+00:00",
        monotonic=float(seq),
        correlation_id="bench",
        connection_id=f"bench-{seq}",
        epoch=seq,
        trigger="connection_lost",
        src="subscribed",
        dst="backoff",
        reason="server_error",
        error="SlowClientError",
        code=407,
        attempt=seq,
        delay=0.83,
        last_data=float(seq) - 0.5,
    )


def measure(policy: JournalFsync, records: int, directory: Path) -> list[float]:
    """Seconds per append for ``records`` appends under ``policy``."""
    path = directory / f"journal-{policy.value}.jsonl"
    path.unlink(missing_ok=True)
    journal = Journal(_RING, path, fsync=policy, fsync_interval=1.0)
    times = []
    try:
        for seq in range(1, records + 1):
            record = _record(seq)
            started = time.perf_counter()
            journal.append(record)
            times.append(time.perf_counter() - started)
    finally:
        journal.close()
        path.unlink(missing_ok=True)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Print the cost per append of each policy."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal_fsync")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        sys.stdout.write(f"journal appends, {args.records} records each, in {directory}\n")
        sys.stdout.write(f"{'policy':<10} {'median µs':>10} {'p99 µs':>10} {'max µs':>10}\n")
        for policy in JournalFsync:
            times = measure(policy, args.records, Path(directory))
            p99 = statistics.quantiles(times, n=100)[PERCENTILE_99]
            sys.stdout.write(
                f"{policy.value:<10} {statistics.median(times) * MICROSECONDS:>10.1f} "
                f"{p99 * MICROSECONDS:>10.1f} {max(times) * MICROSECONDS:>10.1f}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
