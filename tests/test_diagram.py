"""The state diagrams: readable, faithful to the tables, byte-stable, and guarded against drift."""

from __future__ import annotations

import argparse
import enum
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
    DiagramFormat,
    MachineSpec,
    connection_machine,
    edge_groups,
    machines,
    render,
    render_dot,
    render_json,
    render_mermaid,
)
from streamfsm.cluster.lease_table import LEASE_TRANSITIONS, LeaseState
from tools import statedoc
from tools.invariants import INVARIANTS

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / statedoc.DOCUMENT_PATH

#: A row the committed document does not know about.
EXTRA_ROW = Row("panic", (State.SUBSCRIBED,), State.STOPPED, effects="drop everything")


class Lamp(enum.Enum):
    """A second, toy machine: the generator draws any list of machines."""

    OFF = "off"
    ON = "on"


LAMP = MachineSpec(
    name="lamp",
    title="Lamp",
    states=(Lamp.OFF, Lamp.ON),
    initial=Lamp.OFF,
    rows=(
        Row("press", (Lamp.OFF,), Lamp.ON, effects="light"),  # type: ignore[arg-type]
        Row("press", (Lamp.ON,), Lamp.OFF, effects="dark"),  # type: ignore[arg-type]
    ),
)


def run_cli(*argv: str) -> int:
    """Run ``streamfsm diagram ARGV`` through the module's own parser and runner."""
    parser = argparse.ArgumentParser(prog="streamfsm")
    subparsers = parser.add_subparsers(dest="command", required=True)
    diagram.add_parser(subparsers)
    return diagram.run(parser.parse_args(["diagram", *argv]))


def mermaid_edges(text: str) -> dict[tuple[str, str], list[str]]:
    """(source, destination) -> labels of every arrow in a Mermaid text, [*] excluded."""
    edges: dict[tuple[str, str], list[str]] = {}
    for line in text.splitlines():
        head, sep, label = line.strip().partition(": ")
        if " --> " in head and sep and not head.startswith("[*]"):
            source, dest = head.split(" --> ")
            edges[(source, dest)] = label.split("<br>")
    return edges


@pytest.fixture
def extra_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table with one more row than the committed document shows."""
    monkeypatch.setattr(machine, "TRANSITIONS", (*machine.TRANSITIONS, EXTRA_ROW))


@pytest.mark.parametrize("fmt", list(DiagramFormat))
def test_render_is_clean_and_stable(fmt: DiagramFormat) -> None:
    """Every export renders twice to the same bytes, LF endings, no trailing spaces."""
    text = render(fmt)
    assert text == render(fmt)
    assert "\r" not in text
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    assert all(line == line.rstrip() for line in text.splitlines())


def test_render_is_independent_of_the_hash_seed() -> None:
    """A process with another PYTHONHASHSEED renders the very same bytes, document included."""
    script = (
        "import sys\n"
        "from streamfsm.audit.diagram import DiagramFormat, render\n"
        "from tools.statedoc import render_document\n"
        "texts = [render(f) for f in DiagramFormat] + [render_document()]\n"
        "sys.stdout.buffer.write('\\x00'.join(texts).encode())\n"
    )
    texts = [render(fmt) for fmt in DiagramFormat] + [statedoc.render_document()]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, env=env, check=True, cwd=REPO
        )
        assert result.stdout == "\x00".join(texts).encode()


def test_mermaid_lays_the_lifecycle_out_left_to_right() -> None:
    """A stateDiagram-v2, direction LR, states declared in lifecycle order, idle first."""
    lines = [line.strip() for line in render_mermaid([connection_machine()]).splitlines()]
    assert lines[:5] == [
        "---",
        "title: streamfsm connection lifecycle",
        "---",
        "stateDiagram-v2",
        "direction LR",
    ]
    declared = [line.removeprefix("state ") for line in lines if line.startswith("state ")]
    assert declared == [
        "idle",
        "connecting",
        "subscribed",
        "backoff",
        "circuit_open",
        "stopped",
    ]
    assert "[*] --> idle" in lines


def test_stop_is_one_note_not_an_edge_per_state() -> None:
    """No arrow carries stop; one note says any state goes to stopped on stop."""
    text = render_mermaid([connection_machine()])
    assert all(
        "stop" not in label.split(" [")[0]
        for labels in mermaid_edges(text).values()
        for label in labels
    )
    assert text.count("any state -> stopped: stop") == 1


def test_no_loops_and_no_internal_rows_are_drawn() -> None:
    """Rows that do not leave their state are in the table only: no arrow to itself."""
    edges = mermaid_edges(render_mermaid())
    assert all(source != dest for source, dest in edges)
    assert ("circuit_open", "circuit_open") not in edges


def test_each_pair_of_states_has_one_arrow_with_every_row_on_it() -> None:
    """Every row that leaves its state appears, with its guard in words, on its pair's arrow."""
    edges = mermaid_edges(render_mermaid())
    assert len(edges) == len(set(edges))
    assert edges[("connecting", "stopped")] == ["attempt_failed [is fatal]"]
    assert edges[("subscribed", "backoff")] == [
        "connection_lost [predecessor connected]",
        "connection_lost [else]",
        "data_stale [else]",
    ]
    assert edges[("circuit_open", "connecting")] == [
        "cooldown_elapsed",
        "restart [forced and has symbols]",
    ]
    for row in machine.TRANSITIONS:
        if row.trigger == "stop" or row.dest is None:
            continue
        for source in row.sources:
            if source is not row.dest:
                labels = edges[(source.value, row.dest.value)]
                assert any(label.split(" [")[0] == row.trigger for label in labels), row


def test_every_trigger_is_drawn_or_noted() -> None:
    """Each trigger of the table labels an arrow or the note."""
    text = render_mermaid()
    for trigger in machine.TRIGGERS:
        assert f" {trigger}" in text or f">{trigger}" in text, trigger


def test_dot_draws_the_same_arrows() -> None:
    """The DOT digraph has the Mermaid arrows, the start arrow and a dotted note."""
    text = render_dot([connection_machine()])
    assert text.startswith('digraph "streamfsm_connection" {\n')
    assert text.count("{") == text.count("}")
    arrows = [line for line in text.splitlines() if " -> " in line and "shape=note" not in line]
    groups = edge_groups(connection_machine())
    assert len(arrows) == 1 + len(groups) + 1
    assert 'shape=note, label="any state -> stopped: stop"' in text


def test_json_round_trips_and_matches_the_tables() -> None:
    """The JSON export parses, re-serialises to the same bytes, and mirrors table and errors."""
    text = render_json()
    data = json.loads(text)
    assert json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text
    connection, lease = data["machines"]
    assert lease["states"] == [state.value for state in LeaseState]
    assert len(lease["transitions"]) == len(LEASE_TRANSITIONS)
    assert connection["states"] == [state.value for state in State]
    assert connection["triggers"] == list(machine.TRIGGERS)
    assert connection["anywhere"] == ["stop"]
    assert len(connection["transitions"]) == len(machine.TRANSITIONS)
    assert connection["transitions"][1]["guard"] == "else"
    assert [entry["code"] for entry in data["server_errors"]] == sorted(errors.SERVER_ERRORS)


def test_the_document_draws_the_lease_machine_too() -> None:
    """The cluster lease machine has its own diagram and table, so the drift check covers it."""
    assert [spec.name for spec in machines()] == ["connection", "lease"]
    mermaid = render_mermaid()
    assert "candidate --> holder: acquired [lease fresh]" in mermaid
    assert "resigning --> stopped: session_closed [leaving]" in mermaid


def test_the_generator_takes_a_list_of_machines() -> None:
    """A second machine gets its own diagram and its own table in the document."""
    specs = (connection_machine(), LAMP)
    mermaid = render_mermaid(specs)
    assert mermaid.count("stateDiagram-v2") == 2
    assert "off --> on: press" in mermaid
    assert [m["name"] for m in json.loads(render_json(specs))["machines"]] == [
        "connection",
        "lamp",
    ]
    document = statedoc.render_document(specs)
    assert "## Lamp" in document
    assert "### Lamp: transitions" in document


def test_error_consequences_are_read_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing the fatal rows of the table changes what the document says an error does."""
    document = statedoc.render_document()
    assert (
        "| 402 | auth failed | `AuthenticationError` | fatal | in `connecting`: `stopped` via "
        "`attempt_failed`" in document
    )
    assert "| `StaleConnectionError` | `TransportError` | transient | in `subscribed`: " in document
    moved = tuple(
        Row(row.trigger, row.sources, State.IDLE, row.conditions, row.unless, row.before)
        if row.trigger == "attempt_failed" and "is_fatal" in row.conditions
        else row
        for row in machine.TRANSITIONS
    )
    monkeypatch.setattr(machine, "TRANSITIONS", moved)
    assert "in `connecting`: `idle` via `attempt_failed`" in statedoc.render_document()


def test_document_has_every_part() -> None:
    """The document carries the notice, the reading guide, the tables and every invariant."""
    text = statedoc.render_document()
    assert "`python -m tools.statedoc --write docs/state-diagram.md`" in text
    assert "```mermaid\n---\ntitle:" in text
    assert "| 5 | `symbols_changed` | `subscribed` | (stays) | *else* |" in text
    assert "table only |" in text
    assert "default 90 s" in text
    for invariant in INVARIANTS:
        assert invariant.text in text
        for test in invariant.tests:
            assert f"`{test}`" in text


def test_committed_document_is_up_to_date() -> None:
    """docs/state-diagram.md is exactly what the tables render to (make diagram after a change)."""
    assert statedoc.check_file(COMMITTED) == ""
    assert statedoc.main(["--check", str(COMMITTED)]) == 0


@pytest.mark.usefixtures("extra_row")
def test_drift_is_reported_when_a_row_is_added(capsys: pytest.CaptureFixture[str]) -> None:
    """A row added to the table without regenerating the document fails the check with a diff."""
    diff = statedoc.check_file(COMMITTED)
    assert "+  subscribed --> stopped: connection_lost [is fatal]<br>panic" in diff
    assert f"+| {len(machine.TRANSITIONS)} | `panic` |" in diff  # the extra row is the last
    assert statedoc.main(["--check", str(COMMITTED)]) == 1
    err = capsys.readouterr().err
    assert "is stale" in err


def test_check_reports_line_ending_drift_and_missing_files(tmp_path: Path) -> None:
    """CRLF line endings are drift; a missing file fails the check."""
    target = tmp_path / "state-diagram.md"
    target.write_bytes(statedoc.render_document().replace("\n", "\r\n").encode())
    assert statedoc.check_file(target) != ""
    assert statedoc.main(["--check", str(tmp_path / "absent.md")]) == 1


def test_write_then_check_round_trips(tmp_path: Path) -> None:
    """--write regenerates a file that --check then accepts."""
    target = tmp_path / "state-diagram.md"
    assert statedoc.main(["--write", str(target)]) == 0
    assert statedoc.main(["--check", str(target)]) == 0


def test_default_output_is_mermaid_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """With no option the command prints the Mermaid diagram."""
    assert run_cli() == 0
    assert capsys.readouterr().out == render_mermaid()


def test_output_writes_the_chosen_format(tmp_path: Path) -> None:
    """--output FILE with --format json writes the JSON export there."""
    target = tmp_path / "out" / "streamfsm.json"
    assert run_cli("--format", "json", "--output", str(target)) == 0
    assert target.read_text(encoding="utf-8") == render_json()


def test_invariants_are_numbered_in_order_with_tests_that_exist() -> None:
    """The ten invariants of the design and the cluster's, each citing tests in the suite."""
    assert [invariant.number for invariant in INVARIANTS] == list(range(1, len(INVARIANTS) + 1))
    assert len(INVARIANTS) >= 10
    for invariant in INVARIANTS:
        assert invariant.tests, invariant.number
        for reference in invariant.tests:
            path, _, name = reference.partition("::")
            source = (REPO / path).read_text(encoding="utf-8")
            for part in filter(None, name.split(".")):
                assert f"def {part}(" in source or f"class {part}(" in source, reference


def test_the_wheel_carries_no_test_ids_or_error_prose() -> None:
    """The invariants' test ids and the error table's prose live in tools/, not in the package."""
    package = REPO / "streamfsm"
    text = "\n".join(p.read_text(encoding="utf-8") for p in package.rglob("*.py"))
    assert "tests/test_stateful.py" not in text
    assert "_OTHER_ERRORS" not in text
