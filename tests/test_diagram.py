"""The state diagram export: faithful to the table, byte-stable, and guarded against drift."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamfsm import errors
from streamfsm._core import machine
from streamfsm._core.machine import Row, State
from streamfsm.audit import diagram
from streamfsm.audit.diagram import (
    DOCUMENT_PATH,
    INVARIANTS,
    DiagramFormat,
    check_file,
    render,
    render_document,
    render_dot,
    render_json,
    render_mermaid,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / DOCUMENT_PATH

#: A row the committed document does not know about.
EXTRA_ROW = Row("panic", (State.SUBSCRIBED,), State.STOPPED, effects="drop everything")


def run_cli(*argv: str) -> int:
    """Run ``streamfsm diagram ARGV`` through the module's own parser and runner."""
    parser = argparse.ArgumentParser(prog="streamfsm")
    subparsers = parser.add_subparsers(dest="command", required=True)
    diagram.add_parser(subparsers)
    return diagram.run(parser.parse_args(["diagram", *argv]))


@pytest.fixture
def extra_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table with one more row than the committed document shows."""
    monkeypatch.setattr(machine, "TRANSITIONS", (*machine.TRANSITIONS, EXTRA_ROW))


@pytest.mark.parametrize("fmt", list(DiagramFormat))
def test_render_is_byte_stable_within_a_process(fmt: DiagramFormat) -> None:
    """Rendering twice gives the same bytes."""
    assert render(fmt) == render(fmt)


@pytest.mark.parametrize("fmt", list(DiagramFormat))
def test_render_is_clean_text(fmt: DiagramFormat) -> None:
    """Every export uses LF line endings, has no trailing spaces and ends in one newline."""
    text = render(fmt)
    assert "\r" not in text
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    assert all(line == line.rstrip() for line in text.splitlines())


def test_render_is_independent_of_the_hash_seed() -> None:
    """A process with another PYTHONHASHSEED renders the very same bytes in every format."""
    script = (
        "import sys\n"
        "from streamfsm.audit.diagram import DiagramFormat, render\n"
        "sys.stdout.buffer.write('\\x00'.join(render(f) for f in DiagramFormat).encode())\n"
    )
    expected = "\x00".join(render(fmt) for fmt in DiagramFormat).encode()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, env=env, check=True, cwd=REPO
        )
        assert result.stdout == expected


def test_mermaid_is_a_state_diagram_from_idle() -> None:
    """The Mermaid text is a stateDiagram-v2 with a title, every state, and idle as the start."""
    text = render_mermaid()
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:4] == ["---", "title: streamfsm connection lifecycle", "---", "stateDiagram-v2"]
    for state in State:
        assert f'state "{state.value}" as {state.value}' in lines
    assert lines[-1] == "[*] --> idle"


def test_mermaid_shows_no_current_state() -> None:
    """The diagram is a map, not a snapshot: no state carries the 'active' highlight."""
    assert "s_active" not in {line.split()[-1] for line in render_mermaid().splitlines() if line}


def test_mermaid_names_every_trigger() -> None:
    """Every trigger of the table labels at least one edge."""
    edges = [line for line in render_mermaid().splitlines() if "-->" in line and ":" in line]
    labels = " | ".join(line.split(":", 1)[1] for line in edges)
    for trigger in machine.TRIGGERS:
        assert f" {trigger}" in f" {labels}", trigger


def test_mermaid_shows_every_guard() -> None:
    """Each guarded row labels the edge from each of its sources as 'trigger [cond & !unless]'."""
    text = render_mermaid()
    assert "attempt_failed [is_fatal]" in text
    assert "[!has_symbols]" in text
    for row in machine.TRANSITIONS:
        guards = [*row.conditions, *(f"!{name}" for name in row.unless)]
        if not guards:
            continue
        label = f"{row.trigger} [{' & '.join(guards)}]"
        for source in row.sources:
            dest = source if row.dest is None else row.dest
            edge = next(
                line
                for line in text.splitlines()
                if line.strip().startswith(f"{source.value} --> {dest.value}:")
            )
            assert label in edge


def test_mermaid_marks_internal_rows() -> None:
    """An internal row is a self-loop labelled '[internal]'; a reflexive row is not."""
    text = render_mermaid()
    assert "circuit_open --> circuit_open: symbols_changed [internal] | restart [internal]" in text
    assert "connecting --> connecting: symbols_changed [internal] | restart [has_symbols]" in text


def test_dot_has_one_edge_per_row_and_source() -> None:
    """The DOT digraph holds every state and one edge per (row, source), plus the start arrow."""
    text = render_dot()
    assert text.startswith("digraph streamfsm {\n")
    assert text.endswith("}\n")
    assert text.count("{") == text.count("}")
    edges = [line for line in text.splitlines() if " -> " in line]
    assert len(edges) == 1 + sum(len(row.sources) for row in machine.TRANSITIONS)
    for state in State:
        assert f'  "{state.value}";' in text.splitlines()


def test_json_round_trips_and_matches_the_tables() -> None:
    """The JSON export parses, re-serialises to the same bytes, and mirrors table and errors."""
    text = render_json()
    data = json.loads(text)
    assert json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text
    assert data["states"] == [state.value for state in State]
    assert data["triggers"] == list(machine.TRIGGERS)
    assert len(data["transitions"]) == len(machine.TRANSITIONS)
    first = data["transitions"][0]
    assert first == {
        "trigger": "start",
        "sources": ["idle", "stopped"],
        "dest": "connecting",
        "internal": False,
        "conditions": ["has_symbols"],
        "unless": [],
        "guard": "has_symbols",
        "before": ["mark_started"],
        "effects": "open a session for the desired symbols",
    }
    assert [entry["code"] for entry in data["server_errors"]] == sorted(errors.SERVER_ERRORS)
    auth = next(entry for entry in data["server_errors"] if entry["code"] == 402)
    assert auth == {
        "code": 402,
        "message": "auth failed",
        "class": "AuthenticationError",
        "fatal": True,
        "rejects_change": False,
    }
    assert [entry["number"] for entry in data["invariants"]] == list(range(1, 11))


def test_invariants_are_numbered_one_to_ten_with_tests() -> None:
    """The invariant list has the ten invariants of the design, each checked by a test."""
    assert [invariant.number for invariant in INVARIANTS] == list(range(1, 11))
    assert all(invariant.tests for invariant in INVARIANTS)


def test_document_has_every_part() -> None:
    """The document carries the notice, the Mermaid fence, the tables and every invariant."""
    text = render_document()
    assert text.startswith("# ")
    assert (
        "Generated from `streamfsm._core.machine.TRANSITIONS` by "
        "`streamfsm diagram --write docs/state-diagram.md`; do not edit by hand." in text
    )
    assert "```mermaid\n---\ntitle:" in text
    assert "| 5 | `symbols_changed` | `subscribed` | (stays) | otherwise |" in text
    assert "| 402 | auth failed | `AuthenticationError` | fatal |" in text
    assert "default 90 s" in text
    for invariant in INVARIANTS:
        assert invariant.text in text
        for test in invariant.tests:
            assert f"`{test}`" in text
    assert text.rstrip().endswith("fails while this file is stale.")


def test_committed_document_is_up_to_date() -> None:
    """docs/state-diagram.md is exactly what the table renders to (run --write after a change)."""
    assert check_file(COMMITTED) == ""
    assert run_cli("--check", str(COMMITTED)) == 0


@pytest.mark.usefixtures("extra_row")
def test_drift_is_reported_when_a_row_is_added(capsys: pytest.CaptureFixture[str]) -> None:
    """A row added to the table without regenerating the document fails the check with a diff."""
    diff = check_file(COMMITTED)
    assert "+  subscribed --> stopped: connection_lost [is_fatal] | stop | panic" in diff
    assert "+| 25 | `panic` |" in diff
    assert run_cli("--check", str(COMMITTED)) == 1
    err = capsys.readouterr().err
    assert "is stale" in err
    assert "panic" in err


def test_write_then_check_round_trips(tmp_path: Path) -> None:
    """--write regenerates a file that --check then accepts, in any format."""
    for fmt in DiagramFormat:
        target = tmp_path / f"diagram.{fmt.value}"
        assert run_cli("--format", fmt.value, "--write", str(target)) == 0
        assert target.read_bytes() == render(fmt).encode()
        assert run_cli("--format", fmt.value, "--check", str(target)) == 0


def test_check_of_a_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check on a file that does not exist exits 1 and says why."""
    assert run_cli("--check", str(tmp_path / "absent.md")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_check_reports_line_ending_drift(tmp_path: Path) -> None:
    """A document saved with CRLF line endings is drift too."""
    target = tmp_path / "state-diagram.md"
    target.write_bytes(render_document().replace("\n", "\r\n").encode())
    assert check_file(target) != ""


def test_default_output_is_mermaid_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """With no option the command prints the Mermaid diagram."""
    assert run_cli() == 0
    assert capsys.readouterr().out == render_mermaid()


def test_output_writes_the_chosen_format(tmp_path: Path) -> None:
    """--output FILE with --format json writes the JSON export there."""
    target = tmp_path / "out" / "streamfsm.json"
    assert run_cli("--format", "json", "--output", str(target)) == 0
    assert target.read_text(encoding="utf-8") == render_json()


def test_every_invariant_names_tests_that_exist() -> None:
    """Each test the state diagram cites for an invariant is really in the suite."""
    from pathlib import Path

    from streamfsm.audit.diagram import INVARIANTS

    root = Path(__file__).resolve().parent.parent
    for invariant in INVARIANTS:
        assert invariant.tests, invariant.number
        for reference in invariant.tests:
            path, _, name = reference.partition("::")
            source = (root / path).read_text(encoding="utf-8")
            for part in filter(None, name.split(".")):
                assert f"def {part}(" in source or f"class {part}(" in source, reference
