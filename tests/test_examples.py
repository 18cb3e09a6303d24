"""Every example in examples/ runs against the simulator and shows data arriving."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

EXAMPLES = Path(__file__).parent.parent / "examples"
#: Seconds each example streams; the process gets far longer to start, run and exit.
RUN_SECONDS = "2"
PROCESS_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """A simulator with the demo key, streaming quotes and trades."""
    with SimulatorThread(SimConfig(rate=200, seed=8, connection_limit=3)) as simulator:
        yield simulator


def run_example(name: str, sim: SimulatorThread) -> str:
    """Run ``examples/<name>`` with the demo key against ``sim``; its stdout, asserted exit 0."""
    env = dict(os.environ, APCA_API_KEY_ID=DEMO_KEY_ID, APCA_API_SECRET_KEY=DEMO_SECRET)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--url", sim.url("iex"), "--seconds", RUN_SECONDS],
        capture_output=True,
        text=True,
        env=env,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_every_example_has_a_test() -> None:
    """A new example without a test here fails this test."""
    tested = {"alpaca_port.py", "pricing_service.py", "async_use.py"}
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_alpaca_port_receives_alpaca_models(sim: SimulatorThread) -> None:
    """The alpaca-py port's unchanged async handlers print quotes and trades."""
    out = run_example("alpaca_port.py", sim)
    assert "quote AAPL" in out
    assert "quote MSFT" in out
    assert "trade AAPL" in out


def test_pricing_service_example_prints_fresh_mids(sim: SimulatorThread) -> None:
    """The pricing example reads snapshots from its own thread and finds fresh prices."""
    out = run_example("pricing_service.py", sim)
    assert "AAPL: mid " in out
    assert "state at exit: stopped" in out


def test_async_example_sees_transitions_and_quotes(sim: SimulatorThread) -> None:
    """The asyncio example's watcher sees the connection come up and quotes arrive."""
    out = run_example("async_use.py", sim)
    assert "-> subscribed" in out
    assert "quote " in out
