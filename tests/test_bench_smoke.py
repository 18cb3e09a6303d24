"""The benchmark's smoke mode runs end to end: it asserts the script works, never a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
#: Far above the ~20 s the smoke run takes, so a slow CI machine does not fail it.
SMOKE_TIMEOUT: Final = 180

TOP_LEVEL_KEYS: Final = {
    "mode",
    "machine",
    "throughput",
    "stop",
    "reconnect",
    "latency",
    "memory",
    "idle_cpu",
    "budgets",
    "reading",
    "profile",
}
CLIENTS: Final = {
    "streamfsm fast",
    "streamfsm raw",
    "streamfsm alpaca",
    "alpaca-py raw_data",
    "alpaca-py typed",
    "websockets + msgpack",
    "websockets + msgspec",
    "websockets + msgspec + callback",
    "picows + msgspec",
    "picows + zlib + msgspec",
    "streamfsm fast picows",
    "streamfsm fast picows uvloop",
    "picows + zlib + msgspec uvloop",
}


def test_bench_smoke_writes_every_section(tmp_path: Path) -> None:
    """`benchmarks.run --smoke` exits 0 and writes every section of the results."""
    output = tmp_path / "smoke.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--no-docs", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results.keys() >= TOP_LEVEL_KEYS
    assert results["mode"] == "smoke"
    assert {"cpu_count", "python", "versions"} <= results["machine"].keys()
    clients = results["throughput"]["clients"]
    assert set(clients) == CLIENTS
    for name, figures in clients.items():
        assert {"rate", "cpu_us_per_message"} <= figures.keys(), name
    assert {"streamfsm", "alpaca-py"} <= results["stop"].keys()
    assert {"idle", "connecting", "backoff", "circuit_open"} <= results["stop"]["streamfsm"].keys()
    assert {"median_ms", "max_ms"} <= results["reconnect"]["streamfsm"].keys()
    assert all("met" in row and "measured" in row for row in results["budgets"])
    memory = results["memory"]
    assert memory["delivered"] + memory["dropped"] + memory["unaccounted"] == memory["received"]
