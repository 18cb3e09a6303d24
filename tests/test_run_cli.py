"""``streamfsm run``: credentials from the environment, fatal errors in one line, Ctrl-C.

Nothing here reaches the internet: without credentials the command stops before any socket, and
every other test points the hidden ``--url`` at the simulator on loopback.
"""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfsm import Credentials, cli
from streamfsm.cli import live as run_command
from streamfsm.cli._terminal import RICH_HINT
from streamfsm.errors import StreamError
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 10.0
VARIABLES = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator with the demo key, entitled to IEX but not SIP."""
    with SimulatorThread(SimConfig(rate=200, seed=5)) as simulator:
        yield simulator


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither Alpaca variable is set."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_missing_credentials_name_both_variables(
    no_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without credentials, run exits 2 with one line naming both variables."""
    status = cli.main(["run", "--symbols", "AAPL,MSFT"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "APCA_API_KEY_ID" in captured.err
    assert "APCA_API_SECRET_KEY" in captured.err


def test_missing_credentials_print_no_traceback(no_credentials: None) -> None:
    """As a process, the missing-credentials exit shows no traceback."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["APCA_API_KEY_ID"] = DEMO_KEY_ID  # one of the two set: the other is named
    done = subprocess.run(
        [sys.executable, "-m", "streamfsm", "run", "--symbols", "AAPL"],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "APCA_API_SECRET_KEY is missing" in done.stderr
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY" in done.stderr


FATAL_CASES = {
    "402": ("not-the-secret", "iex", "AuthenticationError: alpaca error 402: auth failed"),
    "409": (
        DEMO_SECRET,
        "sip",
        "InsufficientSubscriptionError: alpaca error 409: insufficient subscription",
    ),
}


@pytest.mark.parametrize("case", FATAL_CASES.values(), ids=FATAL_CASES.keys())
def test_fatal_errors_print_one_line_and_exit_1(
    sim: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    """A 402 or 409 ends the run at once with the typed error on one stderr line."""
    secret, feed, error = case
    monkeypatch.setenv("APCA_API_KEY_ID", DEMO_KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
    args = cli.build_parser().parse_args(
        ["run", "--symbols", "AAPL", "--feed", feed, "--url", sim.url(feed)]
    )
    out = io.StringIO()
    status = run_command.run(args, stdout=out)
    captured = capsys.readouterr()
    assert status == 1
    assert [line for line in captured.err.splitlines() if line.startswith("streamfsm run:")] == [
        f"streamfsm run: {error}"
    ]
    assert secret not in captured.err + out.getvalue()
    assert "state stopped" in out.getvalue()
    assert "summary:" in out.getvalue()


class Terminal(io.StringIO):
    """A text stream that says it is an interactive terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("rich_installed", [True, False], ids=["rich", "no-rich"])
def test_on_a_terminal_the_view_is_live_only_with_rich(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch, rich_installed: bool
) -> None:
    """On a terminal: rich's live view when rich is there, else plain lines and one hint."""
    if not rich_installed:
        monkeypatch.setitem(sys.modules, "rich.live", None)  # as if the extra were missing
    monkeypatch.setenv("APCA_API_KEY_ID", DEMO_KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", DEMO_SECRET)
    args = cli.build_parser().parse_args(
        ["run", "--symbols", "AAPL", "--feed", "sip", "--url", sim.url("sip")]
    )
    out = Terminal()
    assert run_command.run(args, stdout=out) == 1  # 409: the demo key has no SIP
    text = out.getvalue()
    assert ("\x1b[" in text) is rich_installed
    assert (RICH_HINT in text) is not rich_installed
    assert "summary:" in text


def pump(stream: IO[str], lines: queue.SimpleQueue[str]) -> None:
    """Copy a child's output into a queue, line by line, until it closes."""
    for line in stream:
        lines.put(line)


def test_streams_until_ctrl_c_then_stops_gracefully(sim: SimulatorThread) -> None:
    """Against the simulator, quotes flow until SIGINT; then a graceful stop and a summary."""
    env = dict(os.environ, APCA_API_KEY_ID=DEMO_KEY_ID, APCA_API_SECRET_KEY=DEMO_SECRET)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamfsm",
            "run",
            "--symbols",
            "AAPL,msft",
            "--url",
            sim.url("iex"),
            "--journal",
            os.devnull,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert process.stdout is not None
    reader = threading.Thread(target=pump, args=(process.stdout, lines))
    reader.start()
    try:
        seen = []
        while not any("state subscribed" in line for line in seen):
            seen.append(lines.get(timeout=WAIT))
        sim.wait_for(lambda stats: sum(stats.messages_sent.values()) > 20, WAIT)
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
        reader.join(WAIT)
        assert process.stderr is not None
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    output = "".join(seen)
    while not lines.empty():
        output += lines.get()
    assert "Traceback" not in stderr
    assert "stopping (Ctrl-C again to force)" in output
    assert "state stopped" in output
    summary = output[output.index("summary:") :]
    assert "connection attempts 1" in summary
    assert "AAPL" in summary
    assert "MSFT" in summary
    sim.wait_for(lambda stats: not stats.open_connections, WAIT)


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`streamfsm --version` prints the version pyproject.toml and streamfsm.__version__ share."""
    from importlib.metadata import version

    import streamfsm

    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"streamfsm {streamfsm.__version__}\n"
    assert version("streamfsm") == streamfsm.__version__


def test_log_level_debug_shows_the_cause_of_each_attempt(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--log-level debug shows per-attempt detail (the failed session's cause) on stderr."""
    monkeypatch.setenv("APCA_API_KEY_ID", DEMO_KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "not-the-secret")
    args = cli.build_parser().parse_args(
        ["run", "--symbols", "AAPL", "--url", sim.url("iex"), "--log-level", "debug", "--plain"]
    )
    assert run_command.run(args, stdout=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "session_ended" in err
    assert "auth failed" in err
    assert "not-the-secret" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://127.0.0.1:1/v2/iex"],
        ["--url", "ws://example.com/v2/iex"],
        ["--max-age", "nan"],
        ["--max-age", "-1"],
        ["--log-level", "loud"],
    ],
)
def test_invalid_flags_exit_2_with_one_line(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad --url, --max-age or --log-level is a usage error naming the flag, not a crash."""
    monkeypatch.setenv("APCA_API_KEY_ID", DEMO_KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", DEMO_SECRET)
    try:
        status = cli.main(["run", "--symbols", "AAPL", *argv])
    except SystemExit as exited:  # argparse's own usage errors
        status = int(exited.code or 0)
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert any(word in err for word in ("url", "max-age", "log-level"))


def test_sim_credentials_flag_sets_the_accepted_key(capsys: pytest.CaptureFixture[str]) -> None:
    """`sim --credentials KEY:SECRET` parses at the first colon; a malformed pair is refused."""
    parser = cli.build_parser()
    args = parser.parse_args(["sim", "--credentials", "PKMINE0001:my-secret:with-colon"])
    assert args.credentials == [("PKMINE0001", "my-secret:with-colon")]
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "--credentials", "only-a-secret-typed-here"])
    err = capsys.readouterr().err
    assert "only-a-secret-typed-here" not in err
    assert "KEY_ID:SECRET" in err


def test_sim_serves_the_key_given_on_the_command_line() -> None:
    """A simulator started with --credentials accepts that key and prints its key id."""
    env = dict(os.environ)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamfsm", "sim", "--credentials", "PKMINE0001:my-secret"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        lines = [process.stdout.readline() for _ in range(5)]
        assert any("key id: PKMINE0001" in line for line in lines)
        from streamfsm import Credentials, StalePolicy, StreamConfig, StreamController

        got = threading.Event()
        ctl = StreamController(
            Credentials("PKMINE0001", "my-secret"),
            StreamConfig(url=url, stale=StalePolicy(quotes=None)),
            on_quote=lambda _q: got.set(),
            symbols=["AAPL"],
        )
        ctl.start()
        try:
            assert got.wait(WAIT)
        finally:
            ctl.stop()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(WAIT)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


@settings(max_examples=200)
@given(
    flag=st.sampled_from(["--symbols", "--feed", "--url", "--max-age", "--log-level", "--journal"]),
    value=st.one_of(
        st.text(max_size=12),
        st.sampled_from(["nan", "inf", "-1", "1e400", "0", "AAPL,,MSFT", "ws://127.0.0.1:0/v2"]),
    ),
)
def test_any_flag_value_is_a_usage_error_or_a_valid_service(flag: str, value: str) -> None:
    """Arbitrary flag text: argparse's exit 2, a typed error (exit 2 in run), or a built service."""
    argv = ["run", "--symbols", "AAPL", "--url", "ws://127.0.0.1:9/v2/iex", flag, value]
    if flag == "--journal":
        argv[-1] = str(Path(tempfile.gettempdir()) / "streamfsm-cli-fuzz" / value)
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as exited:
        status = exited.code
    else:
        status = None
    if status is not None:
        assert status == 2
        return
    try:
        service = run_command.build_service(args, Credentials(DEMO_KEY_ID, DEMO_SECRET))
    except StreamError:
        return
    assert service.tracked()


def test_a_malformed_secret_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A secret that could never authenticate exits 2 with one line that does not echo it."""
    monkeypatch.setenv("APCA_API_KEY_ID", DEMO_KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "two words")
    assert cli.main(["run", "--symbols", "AAPL"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamfsm run: secret: expected")
    assert "two words" not in err
