"""The journal verifier and the timeline: faithful journals pass, damaged ones fail at the line."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest

from streamfsm._aio.journal import Journal
from streamfsm._core import machine
from streamfsm._core.machine import State
from streamfsm._core.records import JOURNAL_SCHEMA, TransitionRecord
from streamfsm.audit import verify as audit
from streamfsm.audit.timeline import OutageEnd, OutageStart, build_timelines, format_timelines
from streamfsm.audit.timeline_svg import render_svg
from streamfsm.audit.verify import (
    Violation,
    ViolationKind,
    read_records,
    verify_file,
    verify_records,
)

WALL_TIME = "2025-03-04T14:30:00.123456+00:00"
SVG_NS = "{http://www.w3.org/2000/svg}"


@attrs.frozen
class Step:
    """One transition of a hand-written journal."""

    trigger: str
    dst: str
    at: float
    reason: str = "test"
    error: str | None = None
    code: int | None = None
    last_data: float | None = None


def walk(
    *steps: Step, first_seq: int = 1, src: str = "idle", correlation_id: str = "run-a"
) -> list[TransitionRecord]:
    """Records for ``steps``, chained from ``src``, numbered from ``first_seq``, each linked."""
    records: list[TransitionRecord] = []
    for seq, step in enumerate(steps, start=first_seq):
        records.append(
            TransitionRecord(
                seq=seq,
                wall_time=WALL_TIME,
                monotonic=step.at,
                correlation_id=correlation_id,
                connection_id=None,
                epoch=0,
                trigger=step.trigger,
                src=src,
                dst=step.dst,
                reason=step.reason,
                error=step.error,
                code=step.code,
                attempt=0,
                last_data=step.last_data,
                prev_hash=records[-1].link() if records else None,
            )
        )
        src = step.dst
    return records


#: start -> subscribed -> dropped -> backoff -> subscribed again -> symbols changed -> stop.
SESSION = (
    Step("start", "connecting", 100.0, reason="user"),
    Step("ready", "subscribed", 100.5),
    Step(
        "connection_lost",
        "backoff",
        110.0,
        reason="server_error",
        error="SlowClientError",
        code=407,
    ),
    Step("backoff_elapsed", "connecting", 111.0),
    Step("ready", "subscribed", 111.25),
    Step("symbols_changed", "subscribed", 115.0, reason="user"),
    Step("stop", "stopped", 120.0, reason="user"),
)


def relinked(records: Sequence[TransitionRecord]) -> list[TransitionRecord]:
    """``records`` linked one to the next as the writer links the lines of one file."""
    linked: list[TransitionRecord] = []
    for record in records:
        linked.append(attrs.evolve(record, prev_hash=linked[-1].link() if linked else None))
    return linked


def write_lines(path: Path, lines: Sequence[str], *, final_newline: bool = True) -> Path:
    """Write ``lines`` as a JSON Lines file."""
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_bytes(text.encode("utf-8"))
    return path


def as_lines(records: Sequence[TransitionRecord]) -> list[str]:
    return [record.to_json() for record in records]


def kinds(violations: Sequence[Violation]) -> list[tuple[int, ViolationKind]]:
    return [(violation.line, violation.kind) for violation in violations]


def run_cli(*argv: str) -> int:
    """Run ``streamfsm audit ARGV`` through the module's own parser and runner."""
    parser = argparse.ArgumentParser(prog="streamfsm")
    subparsers = parser.add_subparsers(dest="command", required=True)
    audit.add_parser(subparsers)
    return audit.run(parser.parse_args(["audit", *argv]))


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    """A faithful journal of SESSION, written by the real Journal writer."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(size=16, path=path)
    for record in walk(*SESSION):
        journal.append(record)
    journal.close()
    return path


# ---------------------------------------------------------------- faithful journals


def test_a_faithful_journal_has_no_violations(session_file: Path) -> None:
    """A journal written by Journal for a walk along the table passes."""
    assert verify_file(session_file) == []
    assert verify_records(walk(*SESSION)) == []


def test_an_empty_journal_has_no_violations(tmp_path: Path) -> None:
    """A controller that never moved leaves an empty, faithful journal."""
    assert verify_file(write_lines(tmp_path / "j.jsonl", [], final_newline=False)) == []


def test_every_edge_of_the_table_is_accepted() -> None:
    """Each (row, source) of the table, journaled alone mid-run, is accepted."""
    for row in machine.TRANSITIONS:
        for source in row.sources:
            dst = source if row.dest is None else row.dest
            record = walk(Step(row.trigger, dst.value, 1.0), first_seq=5, src=source.value)
            assert verify_records(record, allow_partial=True) == [], (row, source)


def test_every_triple_outside_the_table_is_rejected() -> None:
    """Each (trigger, src, dst) that no row allows is reported as not_an_edge."""
    allowed = {
        (row.trigger, source, source if row.dest is None else row.dest)
        for row in machine.TRANSITIONS
        for source in row.sources
    }
    for trigger, src, dst in itertools.product(machine.TRIGGERS, State, State):
        if (trigger, src, dst) in allowed:
            continue
        record = walk(Step(trigger, dst.value, 1.0), first_seq=5, src=src.value)
        assert kinds(verify_records(record, allow_partial=True)) == [
            (1, ViolationKind.NOT_AN_EDGE)
        ], (trigger, src, dst)


def test_internal_and_reflexive_rows_allow_dst_equal_to_src() -> None:
    """dst == src passes for an internal or reflexive row, and fails for any other row."""
    internal = walk(Step("symbols_changed", "subscribed", 1.0), first_seq=3, src="subscribed")
    reflexive = walk(Step("restart", "connecting", 1.0), first_seq=3, src="connecting")
    neither = walk(Step("ready", "connecting", 1.0), first_seq=3, src="connecting")
    assert verify_records(internal, allow_partial=True) == []
    assert verify_records(reflexive, allow_partial=True) == []
    [violation] = verify_records(neither, allow_partial=True)
    assert violation.kind is ViolationKind.NOT_AN_EDGE
    assert "'ready' from 'connecting' leads to 'idle', 'subscribed', not 'connecting'" in str(
        violation
    )


def test_runs_appended_to_one_file_are_checked_separately(tmp_path: Path) -> None:
    """A second controller appending a run from seq 1 is faithful, whatever the first left."""
    first = walk(*SESSION[:3])
    second = walk(*SESSION, correlation_id="run-b")
    path = write_lines(tmp_path / "j.jsonl", as_lines(relinked([*first, *second])))
    assert verify_file(path) == []


# ---------------------------------------------------------------- damaged journals


def test_a_missing_record_breaks_sequence_and_chain(tmp_path: Path) -> None:
    """Deleting the backoff_elapsed record shows as a gap and a broken chain on the next line."""
    lines = as_lines(walk(*SESSION))
    del lines[3]
    violations = verify_file(write_lines(tmp_path / "j.jsonl", lines))
    assert kinds(violations) == [
        (4, ViolationKind.SEQUENCE_GAP),
        (4, ViolationKind.BROKEN_CHAIN),
        (4, ViolationKind.BROKEN_LINK),
    ]
    assert violations[0].message == "seq 5 where 4 was expected (after seq 3)"
    assert violations[1].message == "src 'connecting' is not the previous record's dst 'backoff'"


def test_an_impossible_edge_is_reported_and_the_chain_resyncs() -> None:
    """ready from idle is no edge; the check resyncs on its dst, so the next record is fine."""
    records = walk(
        Step("ready", "subscribed", 1.0),
        Step("connection_lost", "backoff", 2.0),
        Step("backoff_elapsed", "connecting", 3.0),
    )
    violations = verify_records(records)
    assert kinds(violations) == [(1, ViolationKind.NOT_AN_EDGE)]
    assert violations[0].message == "the table has no 'ready' row from 'idle'"


def test_an_unknown_trigger_is_not_an_edge() -> None:
    """A trigger the table does not have is reported by name."""
    [violation] = verify_records(walk(Step("teleport", "subscribed", 1.0)))
    assert violation.kind is ViolationKind.NOT_AN_EDGE
    assert violation.message == "'teleport' is not a trigger of the table"


def test_reordered_records_are_reported_at_each_line(tmp_path: Path) -> None:
    """Swapping two records breaks sequence, chain and clock from the first moved line on."""
    lines = as_lines(walk(*SESSION))
    lines[2], lines[3] = lines[3], lines[2]
    violations = verify_file(write_lines(tmp_path / "j.jsonl", lines))
    assert kinds(violations) == [
        (3, ViolationKind.SEQUENCE_GAP),
        (3, ViolationKind.BROKEN_CHAIN),
        (3, ViolationKind.BROKEN_LINK),
        (4, ViolationKind.SEQUENCE_GAP),
        (4, ViolationKind.BROKEN_CHAIN),
        (4, ViolationKind.CLOCK_REGRESSION),
        (4, ViolationKind.BROKEN_LINK),
        (5, ViolationKind.SEQUENCE_GAP),
        (5, ViolationKind.BROKEN_CHAIN),
        (5, ViolationKind.BROKEN_LINK),
    ]


def test_a_truncated_last_line_is_reported(tmp_path: Path) -> None:
    """A last line cut short (no newline) is reported as truncated, and nothing else."""
    lines = as_lines(walk(*SESSION))
    lines[-1] = lines[-1][:25]
    violations = verify_file(write_lines(tmp_path / "j.jsonl", lines, final_newline=False))
    assert kinds(violations) == [(7, ViolationKind.TRUNCATED_LINE)]


def test_a_complete_last_line_without_newline_is_still_truncated(tmp_path: Path) -> None:
    """The writer ends every record with a newline, so a missing one means a cut write."""
    path = write_lines(tmp_path / "j.jsonl", as_lines(walk(*SESSION)), final_newline=False)
    assert kinds(verify_file(path)) == [(7, ViolationKind.TRUNCATED_LINE)]


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        ("not json at all", "not JSON: Expecting value"),
        ("", "empty line"),
        ("[1, 2]", "a JSON list, not an object"),
    ],
)
def test_a_garbage_line_counts_as_one_missing_record(
    tmp_path: Path, garbage: str, message: str
) -> None:
    """A garbage line is reported once; the next record may follow it with seq + 2."""
    lines = as_lines(walk(*SESSION))
    lines[2] = garbage
    violations = verify_file(write_lines(tmp_path / "j.jsonl", lines))
    assert kinds(violations) == [(3, ViolationKind.MALFORMED_LINE), (4, ViolationKind.BROKEN_LINK)]
    assert violations[0].message == message


def test_a_line_that_is_not_utf8_is_malformed(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported, not raised."""
    path = tmp_path / "j.jsonl"
    path.write_bytes(walk(*SESSION)[0].to_json().encode() + b"\n\xff\xfe\n")
    assert kinds(verify_file(path)) == [(2, ViolationKind.MALFORMED_LINE)]


@pytest.mark.parametrize("field", [field.name for field in attrs.fields(TransitionRecord)])
def test_a_missing_field_is_bad_schema(tmp_path: Path, field: str) -> None:
    """Every field of schema 1 is required."""
    data = json.loads(walk(*SESSION)[0].to_json())
    del data[field]
    [violation] = verify_file(write_lines(tmp_path / "j.jsonl", [json.dumps(data)]))
    assert violation.kind is ViolationKind.BAD_SCHEMA
    assert violation.message == f"missing {field}"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seq", 0, "seq must be an integer >= 1, got 0"),
        ("seq", True, "seq must be an integer >= 1, got True"),
        ("monotonic", "soon", "monotonic must be a finite number, got 'soon'"),
        ("wall_time", "2025-03-04T14:30:00", "wall_time must be an ISO 8601 timestamp in UTC"),
        ("wall_time", "yesterday", "wall_time must be an ISO 8601 timestamp in UTC"),
        ("connection_id", "", "connection_id must be a non-empty string or null, got ''"),
        ("code", "402", "code must be an integer or null, got '402'"),
        ("delay", -1.0, "delay must be a finite number >= 0 or null, got -1.0"),
        ("attempt", 1.5, "attempt must be an integer >= 0, got 1.5"),
    ],
)
def test_a_wrongly_typed_field_is_bad_schema(
    tmp_path: Path, field: str, value: object, expected: str
) -> None:
    """Each field is checked for its type and range."""
    data = json.loads(walk(*SESSION)[0].to_json())
    data[field] = value
    [violation] = verify_file(write_lines(tmp_path / "j.jsonl", [json.dumps(data)]))
    assert violation.kind is ViolationKind.BAD_SCHEMA
    assert violation.message.startswith(expected)


def test_an_unknown_field_is_bad_schema(tmp_path: Path) -> None:
    """A field schema 1 does not define is reported by name."""
    data = json.loads(walk(*SESSION)[0].to_json())
    data["approved_by"] = "mallory"
    [violation] = verify_file(write_lines(tmp_path / "j.jsonl", [json.dumps(data)]))
    assert (violation.kind, violation.message) == (
        ViolationKind.BAD_SCHEMA,
        "unknown approved_by",
    )


def test_a_duplicated_field_is_bad_schema(tmp_path: Path) -> None:
    """A key given twice (the second could silently win) is reported."""
    line = walk(*SESSION)[0].to_json()
    tampered = line[:-1] + ',"dst":"subscribed"}'
    [violation] = verify_file(write_lines(tmp_path / "j.jsonl", [tampered]))
    assert (violation.kind, violation.message) == (
        ViolationKind.BAD_SCHEMA,
        "field 'dst' appears twice",
    )


def test_an_unknown_schema_version_is_reported(tmp_path: Path) -> None:
    """A record of another schema version is not interpreted."""
    data = json.loads(walk(*SESSION)[0].to_json())
    data["schema"] = JOURNAL_SCHEMA + 1
    [violation] = verify_file(write_lines(tmp_path / "j.jsonl", [json.dumps(data)]))
    assert violation.kind is ViolationKind.UNKNOWN_SCHEMA_VERSION


def test_a_file_must_begin_at_seq_one_unless_partial(tmp_path: Path) -> None:
    """An excerpt is a sequence gap at line 1, and accepted with allow_partial."""
    path = write_lines(tmp_path / "j.jsonl", as_lines(walk(*SESSION)[2:]))
    assert kinds(verify_file(path)) == [
        (1, ViolationKind.SEQUENCE_GAP),
        (1, ViolationKind.BROKEN_LINK),
    ]
    assert verify_file(path, allow_partial=True) == []


def test_a_run_must_start_in_idle() -> None:
    """seq 1 that leaves another state than idle is a bad start."""
    records = walk(Step("ready", "subscribed", 1.0), src="connecting")
    assert kinds(verify_records(records)) == [(1, ViolationKind.BAD_START)]


def test_the_correlation_id_stays_within_a_run() -> None:
    """A record with another controller's id in the middle of a run is reported."""
    records = walk(*SESSION)
    records[4] = attrs.evolve(records[4], correlation_id="intruder")
    assert kinds(verify_records(records)) == [
        (5, ViolationKind.CORRELATION_CHANGED),
        (6, ViolationKind.CORRELATION_CHANGED),
        (6, ViolationKind.BROKEN_LINK),
    ]


def test_in_memory_records_report_their_index_plus_one() -> None:
    """verify_records numbers records from 1 and accepts a ring excerpt with allow_partial."""
    records = walk(*SESSION)
    assert verify_records(records[3:], allow_partial=True) == []
    assert kinds(verify_records(records[3:])) == [(1, ViolationKind.SEQUENCE_GAP)]
    broken = [*records[:2], attrs.evolve(records[2], trigger="ready")]
    assert kinds(verify_records(broken)) == [(3, ViolationKind.NOT_AN_EDGE)]


def test_read_records_skips_unreadable_lines(tmp_path: Path) -> None:
    """read_records returns the readable records and the line-level problems apart."""
    lines = as_lines(walk(*SESSION))
    lines[1] = "{"
    records, problems = read_records(write_lines(tmp_path / "j.jsonl", lines))
    assert [record.seq for record in records] == [1, 3, 4, 5, 6, 7]
    assert kinds(problems) == [(2, ViolationKind.MALFORMED_LINE)]


# ---------------------------------------------------------------- timeline


def test_time_in_states_adds_up_to_the_span() -> None:
    """Each state's seconds match the records, and together they cover first to last record."""
    [timeline] = build_timelines(walk(*SESSION))
    assert timeline.span == pytest.approx(20.0)
    assert timeline.time_in_state() == pytest.approx(
        {
            "idle": 0.0,
            "connecting": 0.75,
            "subscribed": 18.25,
            "backoff": 1.0,
            "circuit_open": 0.0,
            "stopped": 0.0,
        }
    )
    assert sum(timeline.time_in_state().values()) == pytest.approx(timeline.span)
    assert timeline.final_state == "stopped"
    assert timeline.intervals[-1].duration == 0.0


def test_outages_have_causes_and_durations() -> None:
    """The drop is an outage of 1.25 s caused by connection_lost; the user's final stop is not."""
    [timeline] = build_timelines(walk(*SESSION))
    [drop] = timeline.outages
    assert (drop.start, drop.duration, drop.recovered, drop.seq) == (10.0, 1.25, True, 3)
    assert drop.cause == "connection_lost (server_error, SlowClientError, code 407)"
    assert drop.start_basis is OutageStart.DETECTED
    assert drop.ending is OutageEnd.RECOVERED


def test_a_stop_during_an_outage_ends_it() -> None:
    """An outage the user ends with stop lasts until the stop, marked as stopped by the user."""
    records = walk(
        Step("start", "connecting", 0.0),
        Step("ready", "subscribed", 1.0),
        Step("connection_lost", "backoff", 5.0, reason="socket_closed"),
        Step("stop", "stopped", 6.5, reason="user"),
    )
    [outage] = build_timelines(records)[0].outages
    assert (outage.start, outage.end, outage.recovered) == (5.0, 6.5, False)
    assert outage.ending is OutageEnd.STOPPED


def test_a_mute_socket_outage_starts_when_data_stopped() -> None:
    """With last_data, the outage starts at the last data, and the detection time is kept too."""
    records = walk(
        Step("start", "connecting", 0.0),
        Step("ready", "subscribed", 1.0),
        Step("data_stale", "backoff", 71.0, reason="stale", last_data=10.0),
        Step("backoff_elapsed", "connecting", 72.0),
        Step("ready", "subscribed", 72.5),
    )
    [outage] = build_timelines(records)[0].outages
    assert (outage.start, outage.detected, outage.end) == (10.0, 71.0, 72.5)
    assert outage.start_basis is OutageStart.LAST_DATA
    text = format_timelines(build_timelines(records))
    assert "at 10.000 s (last data; detected at 71.000 s) for 62.500 s, recovered" in text
    svg = render_svg(build_timelines(records))
    assert "data stopped (last data), not yet detected" in svg


def test_last_data_from_before_the_session_is_ignored() -> None:
    """A last_data older than the session's entry into subscribed cannot date its outage."""
    records = walk(
        Step("start", "connecting", 0.0),
        Step("ready", "subscribed", 1.0),
        Step("connection_lost", "backoff", 5.0, last_data=0.5),
    )
    [outage] = build_timelines(records)[0].outages
    assert (outage.start, outage.start_basis) == (5.0, OutageStart.DETECTED)


def test_attempts_count_entries_into_connecting() -> None:
    """A reflexive restart is an attempt; an internal symbols change in connecting is not."""
    records = walk(
        Step("start", "connecting", 0.0),
        Step("symbols_changed", "connecting", 0.1),
        Step("restart", "connecting", 0.2),
        Step("attempt_failed", "backoff", 0.3),
        Step("backoff_elapsed", "connecting", 1.3),
    )
    assert verify_records(records) == []
    [timeline] = build_timelines(records)
    assert timeline.attempts == 3
    assert timeline.outages == ()


def test_a_fatal_error_is_a_fatal_stop() -> None:
    """attempt_failed into stopped counts as a fatal stop; a user stop does not."""
    fatal = walk(
        Step("start", "connecting", 0.0),
        Step("attempt_failed", "stopped", 0.2, error="AuthenticationError", code=402),
    )
    user = walk(Step("start", "connecting", 0.0), Step("stop", "stopped", 0.2))
    assert build_timelines(fatal)[0].fatal_stops == 1
    assert build_timelines(user)[0].fatal_stops == 0


def test_each_run_gets_its_own_timeline() -> None:
    """Two runs in one journal are measured apart, each from its own first record."""
    records = [*walk(*SESSION), *walk(*SESSION[:2], correlation_id="run-b")]
    first, second = build_timelines(records)
    assert (first.correlation_id, second.correlation_id) == ("run-a", "run-b")
    assert second.span == pytest.approx(0.5)
    assert second.intervals[0].start == 0.0


def test_the_text_report_names_the_numbers() -> None:
    """The report shows time per state, the outages with causes, attempts and fatal stops."""
    text = format_timelines(build_timelines(walk(*SESSION)))
    assert "run 1 of 1: correlation_id run-a, seq 1..7 (7 records)" in text
    assert re.search(r"^  subscribed +18\.250 s +91\.2 %$", text, re.MULTILINE)
    assert "outages after first reaching subscribed (a user's stop is not one): 1, 1.250 s" in text
    assert "cause: connection_lost (server_error, SlowClientError, code 407) (seq 3)" in text
    assert "connection attempts (records entering connecting): 2" in text
    assert "fatal stops: 0" in text
    assert format_timelines([]) == "the journal has no records\n"


def test_the_svg_is_well_formed_and_deterministic() -> None:
    """The SVG parses as XML, draws a rectangle per interval and outage, and is byte-stable."""
    timelines = build_timelines([*walk(*SESSION), *walk(*SESSION[:2], correlation_id="<b&>")])
    svg = render_svg(timelines)
    assert svg == render_svg(
        build_timelines([*walk(*SESSION), *walk(*SESSION[:2], correlation_id="<b&>")])
    )
    root = ET.fromstring(svg.encode())
    assert root.tag == f"{SVG_NS}svg"
    runs = root.findall(f"{SVG_NS}g")
    assert len(runs) == 2
    drawn = [
        rect for rect in runs[0].iter(f"{SVG_NS}rect") if rect.find(f"{SVG_NS}title") is not None
    ]
    assert len(drawn) == len(timelines[0].intervals) + len(timelines[0].outages)
    labels = {text.text for text in runs[0].iter(f"{SVG_NS}text")}
    assert {state.value for state in State} <= labels
    assert "seconds since the run's first record (monotonic clock)" in labels
    assert ET.fromstring(render_svg([]).encode()).tag == f"{SVG_NS}svg"


# ---------------------------------------------------------------- command line


def test_verify_command_exits_zero_on_a_faithful_journal(
    session_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`streamfsm audit verify` says ok and exits 0."""
    assert run_cli("verify", str(session_file)) == 0
    out = capsys.readouterr().out
    assert out.endswith("ok, every record is a transition of the table, every link holds\n")


def test_verify_command_lists_violations_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each violation is printed as FILE:LINE: kind: message, and the exit status is 1."""
    lines = as_lines(walk(*SESSION))
    del lines[3]
    path = write_lines(tmp_path / "j.jsonl", lines)
    assert run_cli("verify", str(path)) == 1
    out = capsys.readouterr().out.splitlines()
    head = hashlib.sha256(lines[-1].encode()).hexdigest()
    assert out[:2] == [
        f"{path}:4: sequence_gap: seq 5 where 4 was expected (after seq 3)",
        f"{path}:4: broken_chain: src 'connecting' is not the previous record's dst 'backoff'",
    ]
    assert out[2].startswith(f"{path}:4: broken_link: prev_hash ")
    assert out[3:] == [
        f"{path}:4: first broken link: the journal is intact only up to line 3",
        f"{path}: head {head} (line 6)",
        f"{path}: 3 violation(s)",
    ]


def test_verify_command_allows_a_partial_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--allow-partial accepts an excerpt that does not begin at seq 1."""
    path = write_lines(tmp_path / "j.jsonl", as_lines(walk(*SESSION)[3:]))
    assert run_cli("verify", str(path)) == 1
    assert run_cli("verify", "--allow-partial", str(path)) == 0
    capsys.readouterr()


def test_verify_command_exits_two_on_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal that cannot be read is an error of its own, not a violation."""
    assert run_cli("verify", str(tmp_path / "absent.jsonl")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_timeline_command_prints_and_draws(
    session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`streamfsm audit timeline --svg` prints the report and writes the SVG."""
    svg = tmp_path / "out" / "timeline.svg"
    assert run_cli("timeline", str(session_file), "--svg", str(svg)) == 0
    captured = capsys.readouterr()
    assert captured.out == format_timelines(build_timelines(walk(*SESSION)))
    assert captured.err == ""
    assert svg.read_text(encoding="utf-8") == render_svg(build_timelines(walk(*SESSION)))


def test_timeline_command_warns_about_a_damaged_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The timeline of a journal with violations is still printed, with a warning."""
    lines = as_lines(walk(*SESSION))
    lines[2] = "garbage"
    path = write_lines(tmp_path / "j.jsonl", lines)
    assert run_cli("timeline", str(path)) == 0
    captured = capsys.readouterr()
    assert "has 2 violation(s)" in captured.err
    assert "run 1 of 1" in captured.out


def test_verify_command_checks_several_files_each_on_its_own(
    session_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several journals (as a shell glob gives them) are verified one by one; the worst wins."""
    second = write_lines(tmp_path / "second.jsonl", as_lines(walk(*SESSION)))
    assert run_cli("verify", str(session_file), str(second)) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in out if ": ok" in line] == [
        str(session_file),
        str(second),
    ]
    broken = as_lines(walk(*SESSION))
    del broken[3]
    third = write_lines(tmp_path / "third.jsonl", broken)
    assert run_cli("verify", str(session_file), str(third)) == 1
    assert run_cli("verify", str(third), str(tmp_path / "absent.jsonl"), str(second)) == 2
    out = capsys.readouterr().out
    assert f"{second}: ok" in out
