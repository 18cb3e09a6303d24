"""``streamfsm demo`` (the showcase): the fault script recovers, the files are written.

The full fault script runs once, as a child process with its output piped (so not a terminal)
and ``--duration`` compressed to the shortest recommended value; shorter runs cover the calm
mode, the failure path, the live view on a terminal and the plain fallback without ``rich``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamfsm.cli._terminal import RICH_HINT
from streamfsm.cli.demo import app as showcase
from streamfsm.cli.demo.app import FAULTS, DemoOptions, run_demo
from streamfsm.cli.demo.settings import RECOMMENDED_DURATION, SYMBOLS

#: The child's own --duration plus its start-up (imports, simulator) and shutdown.
CHILD_TIMEOUT = RECOMMENDED_DURATION + 20.0
#: A calm run long enough for one periodic status line.
CALM_SECONDS = 2.0

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


class Terminal(io.StringIO):
    """A text stream that says it is an interactive terminal."""

    def isatty(self) -> bool:
        return True


def test_every_fault_is_recovered_from(tmp_path: Path) -> None:
    """The scripted faults all recover within a compressed run; exit 0 and a full summary."""
    output = tmp_path / "demo"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamfsm.cli.demo.app",
            "--duration",
            f"{RECOMMENDED_DURATION:g}",
            "--seed",
            "3",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert "\x1b[" not in out  # plain lines: the output is a pipe, not a terminal
    assert "result: all 6 faults recovered" in out
    for spec in FAULTS:
        assert f"fault: {spec.title}" in out
        assert f"recovered from {spec.title} in" in out
    assert "max_symbols=8: SPY, QQQ refused" in out
    assert "3 x 406 connection limit" in out
    assert "data_stale (stale)" in out

    summary = json.loads((output / "summary.json").read_text())
    assert summary["ok"] is True
    assert [fault["fault"] for fault in summary["faults"]] == [s.kind.value for s in FAULTS]
    for fault in summary["faults"]:
        assert fault["recovered"] is True
        assert 0 < fault["recovered_after"] < 5
    assert set(summary["gaps"]) == {symbol for symbol, _priority in SYMBOLS}
    assert all(count >= 4 for count in summary["gaps"].values())  # one per broken connection
    assert summary["malformed_frames"] == 1
    assert summary["callback_errors"] == 1
    assert summary["messages"]["quotes"] > 0

    journal = [json.loads(line) for line in (output / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == summary["transitions"]
    assert [r["code"] for r in journal if r["code"] is not None] == [406, 406, 406]
    assert journal[-1]["dst"] == "stopped"
    diagram = (output / "state-diagram.mmd").read_text()
    assert "stateDiagram-v2" in diagram
    assert "circuit_open" in diagram
    assert (output / "streamfsm.log").stat().st_size > 0


def test_calm_run_without_faults(tmp_path: Path) -> None:
    """--no-faults streams calmly, reports success and writes its files."""
    out = io.StringIO()
    report = run_demo(DemoOptions(duration=CALM_SECONDS, faults=False, output=tmp_path), out)
    assert report.ok, report.summary
    assert report.faults == ()
    assert "result: calm run, the stream stayed up" in out.getvalue()
    assert "no faults" in out.getvalue()
    assert "[subscribed" in out.getvalue()  # a periodic status line
    assert (tmp_path / "journal.jsonl").exists()
    assert (tmp_path / "state-diagram.mmd").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] is True


def test_a_terminal_gets_the_live_view(tmp_path: Path) -> None:
    """On a terminal with rich installed the view is live (rich's escape codes), then a summary."""
    out = Terminal()
    report = run_demo(DemoOptions(duration=CALM_SECONDS, faults=False, output=tmp_path), out)
    assert report.ok, report.summary
    text = out.getvalue()
    assert "\x1b[" in text
    assert "recent events" in text
    assert "result: calm run, the stream stayed up" in text
    assert RICH_HINT not in text


#: Runs the calm demo in a fresh interpreter in which ``import rich`` fails, on a "terminal".
WITHOUT_RICH = textwrap.dedent(
    """
    import io, sys
    sys.modules["rich"] = None  # as if the demo extra were not installed

    class Terminal(io.TextIOWrapper):
        def isatty(self):
            return True

    sys.stdout = Terminal(sys.stdout.buffer, encoding="utf-8", line_buffering=True)
    from streamfsm.cli import main

    status = main(["demo", "--no-faults", "--duration", sys.argv[1], "--output", sys.argv[2]])
    loaded = sorted(
        name for name, module in sys.modules.items()
        if name.partition(".")[0] == "rich" and module is not None
    )
    print("rich modules loaded:", loaded)
    sys.exit(status)
    """
)


def test_without_rich_the_demo_prints_plain_lines_and_exits_0(tmp_path: Path) -> None:
    """Without rich, even on a terminal, the whole CLI loads and the demo prints plain lines."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_RICH, f"{CALM_SECONDS:g}", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert RICH_HINT in out
    assert "[subscribed" in out  # a periodic plain status line
    assert "result: calm run, the stream stayed up" in out
    assert "\x1b[" not in out
    assert "rich modules loaded: []" in out


def test_faults_that_do_not_fit_make_the_run_fail(tmp_path: Path) -> None:
    """A run too short for its faults exits non-zero and says which faults did not run."""
    out = io.StringIO()
    args = showcase_args("--duration", "2.5", "--output", str(tmp_path))
    assert showcase.run(args, stdout=out) == 1
    text = out.getvalue()
    assert "note: with --duration under" in text
    assert "result: FAILED" in text
    assert "callback raises once: not played within the duration" in text


def test_an_output_directory_is_never_reused(tmp_path: Path) -> None:
    """A directory that already holds a journal is refused with exit status 2."""
    (tmp_path / "journal.jsonl").write_text("")
    args = showcase_args("--output", str(tmp_path), "--no-faults")
    assert showcase.run(args, stdout=io.StringIO()) == 2


def test_invalid_duration_is_a_usage_error() -> None:
    """A non-positive duration is rejected by the argument parser."""
    with pytest.raises(SystemExit) as exit_info:
        showcase_args("--duration", "0")
    assert exit_info.value.code == 2


def showcase_args(*argv: str) -> object:
    import argparse

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    showcase.add_parser(subparsers)
    return parser.parse_args(["demo", *argv])
