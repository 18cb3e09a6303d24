"""Metrics and endpoints: streamfsm_* families on the caller's registry, probes on real sockets."""

from __future__ import annotations

import io
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs
import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamfsm import StreamController
from streamfsm.cli.demo.endpoints import METRICS_NAME
from streamfsm.cli.demo.play import DemoOptions, run_demo
from streamfsm.config import BackoffPolicy, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.metrics import StreamCollector, serve
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 10.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
CONFIG = StreamConfig(backoff=BackoffPolicy(initial=0.05, maximum=0.2), healthy_after=0.3)
#: Every label a streamfsm metric may carry: all bounded (no symbol).
BOUNDED_LABELS = {"stream", "state", "trigger", "src", "dst", "channel", "set", "error", "le"}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes."""
    with SimulatorThread(SimConfig(rate=400, batch=4, seed=3)) as simulator:
        yield simulator


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The one sample ``name`` with exactly ``labels`` plus stream="default"."""
    key = (name, tuple(sorted({"stream": "default", **labels}.items())))
    return samples(text)[key]


def get(url: str) -> tuple[int, str]:
    """GET ``url``: status and body, 4xx and 5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_nothing_is_registered_globally_and_every_name_is_streamfsm() -> None:
    """A collector on the caller's registry leaves the global one alone; names are streamfsm_*."""
    before = set(prometheus_client.REGISTRY._names_to_collectors)
    ctl = StreamController(CREDENTIALS, CONFIG, on_quote=print, symbols=["AAPL"])
    registry = CollectorRegistry()
    registry.register(StreamCollector(ctl))
    text = generate_latest(registry).decode()
    assert set(prometheus_client.REGISTRY._names_to_collectors) == before
    families = list(text_string_to_metric_families(text))
    assert families
    assert all(family.name.startswith("streamfsm_") for family in families)
    assert value(text, "streamfsm_state", state="idle") == 1.0
    assert value(text, "streamfsm_up") == 1.0
    assert value(text, "streamfsm_ready") == 0.0
    for family in families:
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, sample


def test_endpoints_over_a_real_socket(sim: SimulatorThread) -> None:
    """/healthz and /readyz follow the controller; /metrics counts a dropped connection."""
    config = attrs.evolve(CONFIG, url=sim.url("iex"))
    ctl = StreamController(CREDENTIALS, config, on_quote=lambda _q: None, symbols=["AAPL"])
    lost = threading.Event()
    ctl.add_listener(lambda record: lost.set() if record.trigger == "connection_lost" else None)
    with serve(ctl, port=0) as server:
        assert server.host == "127.0.0.1"
        assert get(f"{server.url}/healthz") == (200, "alive\n")
        assert get(f"{server.url}/readyz") == (503, "not ready (default: idle)\n")
        ctl.start()
        assert ctl.wait_synced(WAIT)
        assert get(f"{server.url}/readyz") == (200, "ready\n")
        sim.drop()
        # The backoff lasts 50 ms: wait for the loss itself, not for a state it passes through.
        assert lost.wait(WAIT)
        assert ctl.wait_synced(WAIT)
        status, text = get(f"{server.url}/metrics")
        assert status == 200
        assert value(text, "streamfsm_state", state="subscribed") == 1.0
        assert value(text, "streamfsm_reconnects_total") == 1.0
        assert value(text, "streamfsm_connection_attempts_total") == 2.0
        assert (
            value(
                text,
                "streamfsm_transitions_total",
                trigger="connection_lost",
                src="subscribed",
                dst="backoff",
            )
            == 1.0
        )
        assert value(text, "streamfsm_transition_errors_total", error="ConnectionClosedError") == 1
        assert value(text, "streamfsm_symbols", set="confirmed", channel="quotes") == 1.0
        assert value(text, "streamfsm_messages_total", channel="quotes") > 0
        assert value(text, "streamfsm_delivery_lag_seconds_count") > 0
        ctl.stop()
        assert get(f"{server.url}/healthz") == (503, "stopped (default: stopped)\n")
        assert get(f"{server.url}/readyz")[0] == 503
        assert get(f"{server.url}/nowhere")[0] == 404
        port = server.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    assert not [t for t in threading.enumerate() if t.name.startswith("streamfsm-metrics")]


def test_transitions_before_the_collector_are_counted_once(sim: SimulatorThread) -> None:
    """A collector made after the start counts the journal's records once, then new ones."""
    config = attrs.evolve(CONFIG, url=sim.url("iex"))
    ctl = StreamController(CREDENTIALS, config, on_quote=lambda _q: None, symbols=["AAPL"])
    ctl.start()
    try:
        assert ctl.wait_synced(WAIT)
        registry = CollectorRegistry()
        registry.register(StreamCollector({"stocks": ctl}))
        text = generate_latest(registry).decode()
        ready = ("stream", "stocks"), ("trigger", "ready"), ("src", "connecting")
        key = ("streamfsm_transitions_total", tuple(sorted([*ready, ("dst", "subscribed")])))
        assert samples(text)[key] == 1.0
    finally:
        ctl.stop()
    text = generate_latest(registry).decode()
    stop = ("stream", "stocks"), ("trigger", "stop"), ("src", "subscribed"), ("dst", "stopped")
    assert samples(text)[("streamfsm_transitions_total", tuple(sorted(stop)))] == 1.0
    assert samples(text)[key] == 1.0


def test_a_scrape_during_the_fault_demo_shows_every_fault(tmp_path: Path) -> None:
    """The demo's last scrape, over HTTP before the stop, counts each scripted fault."""
    options = DemoOptions(duration=20.0, output=tmp_path, plain=True, metrics_port=0)
    report = run_demo(options, stdout=io.StringIO())
    assert report.ok, report.failures
    text = (tmp_path / METRICS_NAME).read_text(encoding="utf-8")
    errors = "streamfsm_transition_errors_total"
    assert value(text, errors, error="ConnectionClosedError") >= 1  # dropped connection
    assert value(text, errors, error="StaleConnectionError") >= 1  # mute socket
    assert value(text, errors, error="ConnectionLimitError") >= 3  # three 406s
    assert value(text, errors, error="ConnectTimeoutError") >= 1  # slow auth
    assert value(text, "streamfsm_malformed_frames_total") >= 1  # malformed frame
    assert value(text, "streamfsm_callback_errors_total") >= 1  # callback raises once
    assert value(text, "streamfsm_reconnects_total") >= 4
    assert value(text, "streamfsm_gaps_total") >= 1
    assert value(text, "streamfsm_state", state="subscribed") == 1.0


def pump(stream: IO[str], lines: queue.SimpleQueue[str]) -> None:
    """Copy a child's output into a queue, line by line, until it closes."""
    for line in stream:
        lines.put(line)


def test_run_serves_the_endpoints_with_metrics_port(sim: SimulatorThread) -> None:
    """`streamfsm run --metrics-port 0` prints its URL and answers /readyz once subscribed."""
    env = dict(os.environ, APCA_API_KEY_ID=DEMO_KEY_ID, APCA_API_SECRET_KEY=DEMO_SECRET)
    command = [sys.executable, "-m", "streamfsm", "run", "--symbols", "AAPL", "--plain"]
    process = subprocess.Popen(
        [*command, "--url", sim.url("iex"), "--metrics-port", "0"],
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
        seen = [lines.get(timeout=WAIT)]
        while not any("state subscribed" in line for line in seen):
            seen.append(lines.get(timeout=WAIT))
        [url] = [line.split()[1] for line in seen if line.startswith("metrics: ")]
        base = url.removesuffix("/metrics,")
        assert base.startswith("http://127.0.0.1:")
        assert get(f"{base}/healthz") == (200, "alive\n")
        status, text = get(f"{base}/metrics")
        assert status == 200
        assert value(text, "streamfsm_state", state="subscribed") == 1.0
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
        reader.join(WAIT)
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()
