"""The simulator's control socket, its thread and CLI, and its configuration checks."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
from simclient import (
    TIMEOUT,
    client,
    closed_code,
    run,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.logs import capture_events
from streamfsm.sim import (
    DEMO_KEY_ID,
    DEMO_SECRET,
    ControlError,
    SimConfig,
    Simulator,
    SimulatorThread,
    query_stats,
    send_fault,
)
from streamfsm.sim import command as sim_command

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


# ---------------------------------------------------------------- control, CLI, configuration


def test_control_endpoint_applies_faults_and_answers_queries() -> None:
    """The /control socket takes JSON faults and queries and answers ok or an error."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url()) as session:
            async with connect(sim.control_url) as control:

                async def ask(message: dict[str, Any]) -> Any:
                    await control.send(json.dumps(message))
                    return json.loads(await asyncio.wait_for(control.recv(), TIMEOUT))

                assert (await ask({"query": "stats"}))["result"]["auth_successes"] == 1
                assert (await ask({"fault": "explode"}))["ok"] is False
                assert (await ask({"fault": "mute", "connection_id": 9}))["ok"] is False
                reply = await ask({"fault": "close", "code": 1011, "reason": "maintenance"})
                assert reply == {"ok": True, "result": [1]}
            assert await closed_code(session) == 1011
            assert sim.stats().connection_attempts == 1  # control sockets are not counted

    run(main)


def test_send_fault_controls_a_simulator_in_another_thread() -> None:
    """``send_fault`` and ``query_stats`` work from sync code against a SimulatorThread."""
    with SimulatorThread(SimConfig()) as sim, sync_connect(sim.url(), ping_interval=None) as ws:
        assert json.loads(ws.recv(TIMEOUT)) == [{"T": "success", "msg": "connected"}]
        ws.send(json.dumps({"action": "auth", "key": DEMO_KEY_ID, "secret": DEMO_SECRET}))
        ws.recv(TIMEOUT)
        assert query_stats(sim.url())["auth_successes"] == 1
        with pytest.raises(ControlError, match="fault"):
            send_fault(sim.base_url, "explode")
        assert send_fault(sim.url(), "drop") == [1]
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
        sim.wait_for(lambda stats: not stats.open_connections)


def sim_parser() -> argparse.ArgumentParser:
    """The ``streamfsm`` parser with only the ``sim`` command registered."""
    parser = argparse.ArgumentParser(prog="streamfsm")
    sim_command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_simulator_thread_closes_every_connection_and_joins_on_stop() -> None:
    """Stopping a SimulatorThread closes connections with 1001 and keeps the final stats."""
    sim = SimulatorThread(SimConfig(), name="sim-under-test").start()
    with sync_connect(sim.url(), ping_interval=None) as ws:
        ws.recv(TIMEOUT)
        sim.stop()
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert "sim-under-test" not in {thread.name for thread in threading.enumerate()}
    (info,) = sim.stats().connections
    assert (info.open, info.close_code) == (False, 1001)
    with pytest.raises(LocalProtocolError):
        sim.drop()


def test_cli_fault_action_reaches_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    """``streamfsm sim fault --url URL rate rate=0`` applies the fault and prints the result."""
    with capture_events(), SimulatorThread(SimConfig()) as sim:
        args = sim_parser().parse_args(["sim", "fault", "--url", sim.base_url, "rate", "rate=0"])
        assert sim_command.run(args) == 0
        assert sim.stats().rate == 0
        args = sim_parser().parse_args(["sim", "fault", "--url", sim.base_url, "mute", "x=1"])
        assert sim_command.run(args) == 1
        args = sim_parser().parse_args(["sim", "stats", "--url", sim.url()])
        assert sim_command.run(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.split("\n", 1)[1])["rate"] == 0
    assert "params" in err


def test_cli_serves_until_sigint_and_prints_the_url_first() -> None:
    """``streamfsm sim`` prints its URL first and exits 0 on SIGINT."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    entry = (
        "import argparse, sys\n"
        "from streamfsm.sim import command\n"
        "parser = argparse.ArgumentParser()\n"
        "command.add_parser(parser.add_subparsers(dest='command'))\n"
        "sys.exit(command.run(parser.parse_args(sys.argv[1:])))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", entry, "sim", "--port", "0", "--rate", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")
        assert url.endswith("/v2/iex")
        assert query_stats(url)["connection_attempts"] == 0
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def test_only_loopback_hosts_are_served_or_controlled() -> None:
    """A non-loopback host is refused with a ConfigurationError (a ValueError) naming host."""
    for host in ("0.0.0.0", "192.168.1.10", "example.com", "localhost"):
        with pytest.raises(ConfigurationError, match="host") as raised:
            SimConfig(host=host)
        assert isinstance(raised.value, ValueError)
    with pytest.raises(ConfigurationError, match="url"):
        send_fault("ws://10.0.0.1:8765", "drop")

    async def main() -> None:
        async with Simulator(SimConfig(host="::1")) as sim:
            assert sim.url("test").startswith("ws://[::1]:")
            async with client(sim.url("test")):
                pass

    run(main)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", -1),
        ("port", 70_000),
        ("batch", 0),
        ("rate", -5),
        ("symbol_limit", 0),
        ("auth_timeout", 0),
        ("reap_delay", -1),
        ("universe", ()),
        ("universe", ("aapl",)),
        ("entitled_feeds", ["crypto"]),
        ("compression", "yes"),
    ],
)
def test_invalid_configuration_names_the_field(field: str, value: object) -> None:
    """Every invalid configuration value raises a ConfigurationError naming its field."""
    with pytest.raises(ConfigurationError) as raised:
        SimConfig(**{field: value})  # type: ignore[arg-type]
    assert raised.value.field == field


def test_secrets_appear_in_no_repr_snapshot_or_log() -> None:
    """The configuration, snapshots and logs show fingerprints, never a secret."""
    secret = "s3cr3t-value-under-test"
    config = SimConfig(credentials={"PKTESTKEY0001": secret})
    assert secret not in repr(config)
    assert "PKTESTKEY0001" not in repr(config)

    async def main() -> str:
        async with Simulator(config) as sim:
            async with client(sim.url(), auth=False) as session:
                assert await session.auth("PKTESTKEY0001", secret) == {
                    "T": "success",
                    "msg": "authenticated",
                }
            async with client(sim.url(), auth=False) as session:
                await session.auth("PKTESTKEY0001", secret + "-wrong")
                await closed_code(session)
            return repr(sim.stats()) + json.dumps(sim.stats().to_json())

    with capture_events() as logs:
        shown = run(main)
    assert secret not in shown
    assert "...0001" in shown
    assert logs, "the simulator logs its events"
    assert secret not in repr(logs)
