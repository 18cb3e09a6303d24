"""ctl.run(): a blocking program that starts, streams and stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

#: Start-up of the child (imports, connect) and its clean stop, with room for a loaded machine.
CHILD_TIMEOUT = 30.0

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes."""
    with SimulatorThread(SimConfig(rate=200, seed=6)) as simulator:
        yield simulator


def program(url: str) -> str:
    """A user's program: print once the first quote arrives, block in run(), say goodbye."""
    return textwrap.dedent(
        f"""
        import sys
        from streamfsm import Credentials, StreamConfig, StreamController

        first = []

        def on_quote(quote):
            if not first:
                first.append(quote)
                print("streaming", flush=True)

        ctl = StreamController(
            Credentials({DEMO_KEY_ID!r}, {DEMO_SECRET!r}),
            StreamConfig(url={url!r}),
            on_quote=on_quote,
            symbols=["AAPL"],
        )
        ctl.run()
        print("stopped", ctl.state.value, flush=True)
        """
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_blocks_and_stops_cleanly_on_a_signal(
    sim: SimulatorThread, signum: signal.Signals
) -> None:
    """run() streams until the signal, then stops and closes: exit 0, no traceback, code 1000."""
    child = subprocess.Popen(
        [sys.executable, "-c", program(sim.url("iex"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "streaming"
        child.send_signal(signum)
        out, err = child.communicate(timeout=CHILD_TIMEOUT)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert out.strip() == "stopped stopped"
    (connection,) = sim.wait_for(lambda stats: not stats.open_connections).connections
    assert connection.close_code == 1000
