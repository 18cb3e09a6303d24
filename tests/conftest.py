"""Shared test settings: Hypothesis profiles and leak checks."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from streamfsm.cluster.natsd import LocalNatsServer

# "ci" is what `make test` runs: derandomized, a fixed budget, fast. "dev" digs deeper by hand:
#   HYPOTHESIS_PROFILE=dev .venv/bin/python -m pytest tests/test_stateful.py
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=2000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests press Ctrl-C on child processes (``streamfsm run``) with SIGINT. A shell without job
# control starts a background command with SIGINT ignored, and a child inherits an ignored signal,
# so Python never installs its KeyboardInterrupt handler there and the child runs on. The suite
# gives its children the disposition a terminal gives them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread it started running (a controller's loop, a simulator)."""
    before = set(threading.enumerate())
    yield
    leaked = [thread.name for thread in threading.enumerate() if thread not in before]
    assert leaked == [], f"threads left running: {leaked}"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[LocalNatsServer]:
    """A real nats-server with JetStream on a free 127.0.0.1 port and a temporary store."""
    server = LocalNatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()
