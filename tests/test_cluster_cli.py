"""``streamfsm node`` and ``streamfsm demo-cluster`` as a user runs them: real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamfsm import StreamController
from streamfsm.cli import main
from streamfsm.cli.cluster_demo.nodes import NodeGroup
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.credentials import KEY_ID_VARIABLE, SECRET_VARIABLE, Credentials
from streamfsm.metrics import StreamCollector
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

PATIENCE = 45.0
#: The demo starts a nats-server, a simulator and three Python processes, and waits out one
#: lease TTL: on a loaded machine that is far from instant.
DEMO_TIMEOUT = 150.0
ENV = {**os.environ, KEY_ID_VARIABLE: DEMO_KEY_ID, SECRET_VARIABLE: DEMO_SECRET}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes."""
    with SimulatorThread(SimConfig(rate=200, batch=4, seed=3)) as simulator:
        yield simulator


def _samples(text: str) -> dict[str, float]:
    """Sample name -> value, for the samples labelled only by stream."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if set(sample.labels) == {"stream"}
    }


@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT + 30)
def test_make_demo_cluster_kills_the_holder_and_every_survivor_recovers() -> None:
    """`streamfsm demo-cluster` exits 0, with the kill, the takeover and the figures printed."""
    result = subprocess.run(
        [sys.executable, "-m", "streamfsm", "demo-cluster", "--settle", "0.5", "--after", "0.5"],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "(the holder)" in out
    assert "handover timeline" in out
    assert "failover: " in out
    assert "data again (handover gap closed on" in out
    assert "lease candidate -> holder (created" in out
    assert "0 refusals (406)" in out
    assert out.count("(exit 0): delivered ") == 2
    assert "(killed; its last figures): delivered " in out
    assert out.rstrip().endswith("every surviving node recovered")


@pytest.mark.slow
@pytest.mark.timeout(PATIENCE * 3)
def test_node_serves_cluster_metrics_and_releases_the_lease_on_sigint(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path
) -> None:
    """A lone node holds (epoch in its role line and in /metrics), is ready, and on Ctrl-C closes
    Alpaca, releases the lease and exits 0 with a stopped line."""
    with NodeGroup(nats_server.url, "one", sim.url(), ENV, log_dir=tmp_path) as group:
        node = group.start("solo", ("AAPL",), "--metrics-port", "0", "--summary-every", "0.2")
        role = group.wait(lambda: node.last("role"), PATIENCE, "a role line")
        assert role.fields["role"] == "holder"
        group.wait(lambda: node.last("data"), PATIENCE, "a quote")
        group.wait(
            lambda: any(line.fields["state"] == "subscribed" for line in node.lines("figures")),
            PATIENCE,
            "a figures line while subscribed",
        )
        metrics = node.last("metrics")
        assert metrics is not None
        base = metrics.fields["url"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=PATIENCE) as response:
            values = _samples(response.read().decode())
        assert values["streamfsm_cluster_holder"] == 1.0
        assert values["streamfsm_cluster_lease_epoch"] == float(role.fields["epoch"])
        assert values["streamfsm_cluster_bus_frames_published_total"] > 0
        assert values["streamfsm_cluster_bus_frames_received_total"] > 0
        with urllib.request.urlopen(f"{base}/readyz", timeout=PATIENCE) as response:
            assert response.status == 200
        node.signal(signal.SIGINT)
        assert node.wait_exit(PATIENCE) == 0
        moves = [(line.fields["from"], line.fields["to"]) for line in node.lines("lease")]
        assert moves[-2:] == [("holder", "resigning"), ("resigning", "stopped")]
        stopped = node.last("stopped")
        assert stopped is not None
        assert int(stopped.fields["delivered"]) > 0


def test_node_without_credentials_or_nats_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing credentials exit 2 naming the variable; a missing --nats is argparse's exit 2."""
    monkeypatch.delenv(KEY_ID_VARIABLE, raising=False)
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    arguments = ["node", "--nats", "nats://127.0.0.1:1", "--name", "x", "--symbols", "AAPL"]
    assert main(arguments) == 2
    assert KEY_ID_VARIABLE in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["node", "--name", "x", "--symbols", "AAPL"])
    assert exited.value.code == 2


def test_node_refuses_a_cluster_name_nats_would_not_take(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cluster name with a dot (a NATS subject separator) is refused before anything starts."""
    monkeypatch.setenv(KEY_ID_VARIABLE, DEMO_KEY_ID)
    monkeypatch.setenv(SECRET_VARIABLE, DEMO_SECRET)
    arguments = ["node", "--nats", "nats://127.0.0.1:1", "--name", "a.b", "--symbols", "AAPL"]
    assert main(arguments) == 2
    assert "name" in capsys.readouterr().err


def test_cluster_families_have_no_samples_for_a_controller_without_cluster() -> None:
    """A single-process controller exports the cluster families empty: no role, no epoch."""
    ctl = StreamController(Credentials(DEMO_KEY_ID, DEMO_SECRET), symbols=["AAPL"], on_quote=print)
    registry = CollectorRegistry()
    registry.register(StreamCollector(ctl))
    text = generate_latest(registry).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "streamfsm_cluster_holder" in names
    assert not [name for name in _samples(text) if name.startswith("streamfsm_cluster_")]


@pytest.mark.slow
@pytest.mark.timeout(PATIENCE * 3)
def test_node_exits_1_when_the_shared_connection_stops_on_a_fatal_error(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path
) -> None:
    """A secret Alpaca refuses (402) stops every member with the same error: exit status 1."""
    env = {**ENV, SECRET_VARIABLE: "not-the-secret"}
    with NodeGroup(nats_server.url, "refused", sim.url(), env, log_dir=tmp_path) as group:
        node = group.start("solo", ("AAPL",))
        assert node.wait_exit(PATIENCE) == 1
        stopped = node.last("stopped")
        assert stopped is not None
        assert stopped.fields["state"] == "stopped"
        assert "streamfsm node: AuthenticationError" in (tmp_path / "solo.log").read_text()


@pytest.mark.slow
@pytest.mark.timeout(PATIENCE * 3)
def test_node_applies_stdin_commands_and_names_the_refused_ones(
    nats_server: LocalNatsServer, sim: SimulatorThread, tmp_path: Path
) -> None:
    """`subscribe MSFT` on standard input brings MSFT quotes; a bad symbol or verb is refused
    with an error field and changes nothing."""
    with NodeGroup(nats_server.url, "cmd", sim.url(), ENV, log_dir=tmp_path) as group:
        node = group.start("solo", ("AAPL",), commands=True)
        group.wait(lambda: node.last("data"), PATIENCE, "a quote")
        node.command("subscribe MSFT")
        node.command("subscribe NOT A SYMBOL!")
        node.command("resubscribe AAPL")
        commands = group.wait(
            lambda: node.lines("command") if len(node.lines("command")) == 3 else None,
            PATIENCE,
            "three command lines",
        )
        assert [line.fields.get("error") for line in commands] == [
            None,
            "InvalidSymbolError",
            "unknown",
        ]
        group.wait(
            lambda: any(line.fields["symbol"] == "MSFT" for line in node.lines("data")),
            PATIENCE,
            "MSFT quotes",
        )
        node.signal(signal.SIGTERM)
        assert node.wait_exit(PATIENCE) == 0
