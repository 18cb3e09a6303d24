"""Check a transition journal against the transition table, and summarise it.

The state diagram says what the controller does; the journal (``streamfsm._core.records``) says
what it did. :func:`verify_file` and :func:`verify_records` check one against the other, record
by record, and report every :class:`Violation` with its line number, so an auditor needs no code
to tell a faithful journal from a damaged or edited one. ``docs/audit.md`` documents the rules;
in short:

* every line is one JSON object with exactly the fields of its schema (1 or 2), read by
  :mod:`streamfsm.audit.schema`;
* every record is an edge of the table: a row with its trigger applies in ``src`` and leads to
  ``dst`` (``dst == src`` only for internal rows, ``dest=None``, and reflexive rows);
* records chain: each ``src`` is the ``dst`` before it;
* ``seq`` counts up by one. A record with ``seq`` 1 starts a run (a new controller appending to
  the same file), which must leave ``idle``; within a run ``correlation_id`` stays the same and
  ``monotonic`` never goes back;
* a file begins with ``seq`` 1 unless the caller allows a partial journal (an excerpt, or the
  in-memory ring, which keeps only the latest records);
* every schema 2 line links to the one before: ``prev_hash`` is the SHA-256 of its bytes;
* the last line ends with a newline: the writer flushes whole lines, so one without is truncated.

Checking goes on after a violation: the sequence and the chain resynchronise on the offending
record, and an unreadable line counts as one missing record.

``streamfsm audit verify FILE`` and ``streamfsm audit timeline FILE [--svg OUT]`` are the command
line; the timeline itself lives in :mod:`streamfsm.audit.timeline`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs

from streamfsm._core import machine
from streamfsm._core.machine import State
from streamfsm._core.records import JOURNAL_SCHEMA, V1_FIELDS, TransitionRecord
from streamfsm.audit.schema import (
    FIRST_SEQ,
    Violation,
    ViolationKind,
    checked,
    lines,
    read_records,
)

__all__ = [
    "Violation",
    "ViolationKind",
    "add_parser",
    "read_records",
    "run",
    "verify_file",
    "verify_records",
]

#: Exit status: the journal is faithful to the table (or the command succeeded).
_EXIT_OK: Final = 0
#: Exit status: at least one violation.
_EXIT_VIOLATIONS: Final = 1
#: Exit status: the file could not be read or written (argparse also uses 2 for bad usage).
_EXIT_IO_ERROR: Final = 2

#: The state every run starts in.
_INITIAL_STATE: Final = State.IDLE.value


# ---------------------------------------------------------------- the table


def _edge_problem(trigger: str, src: str, dst: str) -> str | None:
    """Why ``trigger`` from ``src`` to ``dst`` is not an edge of the table, or None if it is."""
    rows = machine.TRANSITIONS
    if all(row.trigger != trigger for row in rows):
        return f"{trigger!r} is not a trigger of the table"
    applicable = [
        row for row in rows if row.trigger == trigger and any(s.value == src for s in row.sources)
    ]
    if not applicable:
        return f"the table has no {trigger!r} row from {src!r}"
    outcomes = [src if row.dest is None else row.dest.value for row in applicable]
    if dst in outcomes:
        return None
    shown = ", ".join(repr(outcome) for outcome in dict.fromkeys(outcomes))
    return f"{trigger!r} from {src!r} leads to {shown}, not {dst!r}"


# ---------------------------------------------------------------- the sequential checks


@attrs.define
class _Checker:
    """Checks records in order; keeps going after a violation."""

    allow_partial: bool
    #: Whether the first record must carry no link (true of a file; the in-memory ring's first
    #: record links to a record it no longer holds).
    head_unlinked: bool = True
    violations: list[Violation] = attrs.field(factory=list)
    #: The last readable record of the current run, or None before the first one.
    previous: TransitionRecord | None = None
    #: Unreadable lines since ``previous`` (each counts as one missing record).
    skipped: int = 0
    #: Whether ``prev_hash`` is checked at all.
    check_links: bool = True
    #: The hash of the line (or record) before the one being checked; None before the first.
    link: str | None = None
    #: Lines (or records) checked so far, readable or not.
    seen: int = 0
    #: The line of the first broken link, for the summary.
    first_broken_link: int | None = None

    def advance(self, link: str) -> None:
        """The line just checked hashes to ``link``: the next record must carry it."""
        self.link = link
        self.seen += 1

    def report(self, line: int, kind: ViolationKind, message: str) -> None:
        self.violations.append(Violation(line, kind, message))

    def unreadable(self, violation: Violation) -> None:
        """A line that yields no record: report it, and count it as one record of the sequence."""
        self.violations.append(violation)
        self.skipped += 1

    def record(self, line: int, record: TransitionRecord) -> None:
        """Check ``record`` against the table and against the record before it."""
        previous = self.previous
        if record.seq == FIRST_SEQ:
            if record.src != _INITIAL_STATE:
                self.report(
                    line,
                    ViolationKind.BAD_START,
                    f"a run starts in {_INITIAL_STATE!r}, but seq 1 leaves {record.src!r}",
                )
        elif previous is None:
            begins_at = FIRST_SEQ + self.skipped
            if not self.allow_partial and record.seq != begins_at:
                self.report(
                    line,
                    ViolationKind.SEQUENCE_GAP,
                    f"the journal begins at seq {record.seq}, not {begins_at}: earlier records "
                    "are missing (allow a partial journal to check an excerpt)",
                )
        else:
            self._follows(line, previous, record)
        problem = _edge_problem(record.trigger, record.src, record.dst)
        if problem is not None:
            self.report(line, ViolationKind.NOT_AN_EDGE, problem)
        self._linked(line, record)
        self.previous = record
        self.skipped = 0

    def _linked(self, line: int, record: TransitionRecord) -> None:
        """Check ``prev_hash`` against the line before (schema 1 records carry no link)."""
        if record.schema < JOURNAL_SCHEMA or not self.check_links:
            return
        if self.seen == 0:
            if self.head_unlinked and not self.allow_partial and record.prev_hash is not None:
                self._broken_link(
                    line,
                    "the first record links to a line before it: the journal's head is missing "
                    "(allow a partial journal to check an excerpt)",
                )
            return
        if record.prev_hash != self.link:
            self._broken_link(
                line,
                f"prev_hash {_short(record.prev_hash)} is not the hash of the line before "
                f"({_short(self.link)}): a line before this one was removed, edited or inserted",
            )

    def _broken_link(self, line: int, message: str) -> None:
        if self.first_broken_link is None:
            self.first_broken_link = line
        self.report(line, ViolationKind.BROKEN_LINK, message)

    def _follows(self, line: int, previous: TransitionRecord, record: TransitionRecord) -> None:
        """The checks between two records of one run."""
        expected = previous.seq + 1 + self.skipped
        if record.seq != expected:
            self.report(
                line,
                ViolationKind.SEQUENCE_GAP,
                f"seq {record.seq} where {expected} was expected (after seq {previous.seq})",
            )
        if self.skipped == 0 and record.src != previous.dst:
            self.report(
                line,
                ViolationKind.BROKEN_CHAIN,
                f"src {record.src!r} is not the previous record's dst {previous.dst!r}",
            )
        if record.correlation_id != previous.correlation_id:
            self.report(
                line,
                ViolationKind.CORRELATION_CHANGED,
                f"correlation_id {record.correlation_id!r} within the run of "
                f"{previous.correlation_id!r} (a new run starts at seq 1)",
            )
        if record.monotonic < previous.monotonic:
            self.report(
                line,
                ViolationKind.CLOCK_REGRESSION,
                f"monotonic {record.monotonic!r} is before the previous record's "
                f"{previous.monotonic!r}",
            )


def _short(link: str | None) -> str:
    """A link shortened for messages (12 hex digits are plenty to tell two apart)."""
    return "null" if link is None else link[:12]


def verify_records(
    records: Iterable[TransitionRecord], *, allow_partial: bool = False, linked: bool = True
) -> list[Violation]:
    """Check in-memory records against the table and against each other.

    Args:
        records: records in journal order, for example ``controller.journal()``.
        allow_partial: accept a first record with any ``seq`` (the in-memory ring keeps only the
            latest records, so pass True for it); the chain is checked from there on. The first
            record's ``prev_hash`` is never checked: the record it links to is not among these.
        linked: check ``prev_hash``; pass False for records taken from the machine before the
            journal writer linked them (``ConnectionCore``'s ``on_record``).

    Returns:
        Every violation, in order; ``line`` is the record's index plus one. Empty when the
        records are faithful to the table.
    """
    checker = _Checker(allow_partial, head_unlinked=False, check_links=linked)
    for index, record in enumerate(records):
        line = index + 1
        data = attrs.asdict(record)
        if record.schema == 1:
            data = {name: data[name] for name in V1_FIELDS}
        outcome = checked(line, data)
        if isinstance(outcome, Violation):
            checker.unreadable(outcome)
        else:
            checker.record(line, outcome)
        checker.advance(record.link())
    return checker.violations


# ---------------------------------------------------------------- files


def verify_file(path: Path, *, allow_partial: bool = False) -> list[Violation]:
    """Check a JSON Lines journal file against the table, line by line.

    Args:
        path: the journal (``StreamConfig.journal_path``).
        allow_partial: accept a file whose first record has any ``seq`` (an excerpt).

    Returns:
        Every violation with its 1-based line number, in line order; empty when the file is
        faithful to the table. An empty file has no violations.

    Raises:
        OSError: when the file cannot be read.
    """
    return _check_file(path, allow_partial=allow_partial).violations


def _check_file(path: Path, *, allow_partial: bool) -> _Checker:
    """The checker after every line of ``path``: violations, first broken link, head link."""
    checker = _Checker(allow_partial)
    for line, outcome, link in lines(path):
        if isinstance(outcome, Violation):
            checker.unreadable(outcome)
        else:
            checker.record(line, outcome)
        checker.advance(link)
    return checker


# ---------------------------------------------------------------- command line


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamfsm audit verify`` and ``streamfsm audit timeline``."""
    parser = subparsers.add_parser(
        "audit",
        help="check a transition journal against the state table, or summarise it",
        description="Check a JSON Lines transition journal against the state table "
        "(verify), or show what it says happened (timeline). See docs/audit.md.",
    )
    actions = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="report every line that is not a faithful transition of the table",
        description="Check each FILE on its own. Exit 0 when in every file every record is an "
        "edge of the table, the records chain and seq counts up by one; else print each "
        "violation as FILE:LINE: kind: message and exit 1. Exit 2 when a file cannot be read "
        "(the other files are still checked).",
    )
    verify.add_argument(
        "journals", type=Path, nargs="+", metavar="FILE", help="JSON Lines journals"
    )
    verify.add_argument(
        "--allow-partial",
        action="store_true",
        help="accept a journal that does not begin at seq 1 (an excerpt)",
    )
    timeline = actions.add_parser(
        "timeline",
        help="time in each state, outages and their causes, attempts, fatal stops",
        description="Summarise each run of the journal from its monotonic times. Lines that "
        "cannot be read are skipped with a warning; run `verify` to check the journal.",
    )
    timeline.add_argument("journal", type=Path, metavar="FILE", help="the JSON Lines journal")
    timeline.add_argument(
        "--svg", type=Path, metavar="OUT", help="also draw the timeline as an SVG file"
    )


def _run_verify(journal: Path, *, allow_partial: bool) -> int:
    try:
        checker = _check_file(journal, allow_partial=allow_partial)
    except OSError as error:
        sys.stderr.write(f"streamfsm audit: cannot read {journal}: {error}\n")
        return _EXIT_IO_ERROR
    violations = checker.violations
    for violation in violations:
        sys.stdout.write(
            f"{journal}:{violation.line}: {violation.kind.value}: {violation.message}\n"
        )
    if checker.first_broken_link is not None:
        sys.stdout.write(
            f"{journal}:{checker.first_broken_link}: first broken link: the journal is intact "
            f"only up to line {checker.first_broken_link - 1}\n"
        )
    if checker.link is not None:
        sys.stdout.write(f"{journal}: head {checker.link} (line {checker.seen})\n")
    if violations:
        sys.stdout.write(f"{journal}: {len(violations)} violation(s)\n")
        return _EXIT_VIOLATIONS
    sys.stdout.write(
        f"{journal}: ok, every record is a transition of the table, every link holds\n"
    )
    return _EXIT_OK


def _run_timeline(journal: Path, svg: Path | None) -> int:
    from streamfsm.audit.timeline import build_timelines, format_timelines
    from streamfsm.audit.timeline_svg import render_svg

    try:
        records, _ = read_records(journal)
        violations = verify_file(journal)
    except OSError as error:
        sys.stderr.write(f"streamfsm audit: cannot read {journal}: {error}\n")
        return _EXIT_IO_ERROR
    if violations:
        sys.stderr.write(
            f"warning: {journal} has {len(violations)} violation(s); the timeline follows the "
            f"readable records as written (run `streamfsm audit verify {journal}`)\n"
        )
    timelines = build_timelines(records)
    sys.stdout.write(format_timelines(timelines))
    if svg is not None:
        try:
            svg.parent.mkdir(parents=True, exist_ok=True)
            svg.write_bytes(render_svg(timelines).encode("utf-8"))
        except OSError as error:
            sys.stderr.write(f"streamfsm audit: cannot write {svg}: {error}\n")
            return _EXIT_IO_ERROR
    return _EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run ``streamfsm audit``; returns 0 (faithful), 1 (violations) or 2 (unreadable file).

    With several journals each is verified on its own; the status is the worst of theirs.
    """
    if args.audit_command == "verify":
        statuses = [
            _run_verify(journal, allow_partial=args.allow_partial) for journal in args.journals
        ]
        return max(statuses)
    return _run_timeline(args.journal, args.svg)
