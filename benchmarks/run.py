"""``python -m benchmarks.run [--smoke] [--messages N] [--runs R]``: the whole benchmark.

1. Throughput: a replay simulator process serves N pre-encoded quotes per connection; every
   client runs in turn, rotated each round (A B C, B C A, ...), and the medians are reported.
2. Lifecycle: a random-walk simulator process; stop() latency and CPU in each state, and the
   time from a TCP reset to data again, for streamfsm and alpaca-py.
3. Per-message latency (simulator stamp to callback) at a fixed rate, p50/p99.
4. Writes ``benchmarks/results/latest.json`` and regenerates ``docs/benchmarks.md``. ``--smoke``
   writes ``benchmarks/results/smoke.json`` instead and leaves the docs alone.

Every child process is terminated in a ``finally``; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from benchmarks import latency, lifecycle, memory, report
from benchmarks.clients import CLIENTS, Sample, run_client
from benchmarks.profile import profile_fast, profile_reading
from benchmarks.server import QUOTES_PER_FRAME, SYMBOLS
from streamfsm.logs import configure_logging

__all__ = ["main"]

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "benchmarks" / "results" / "latest.json"
#: Smoke runs never overwrite the full run's figures or the docs generated from them.
SMOKE_RESULTS: Final = ROOT / "benchmarks" / "results" / "smoke.json"
DOCS: Final = ROOT / "docs" / "benchmarks.md"
#: The issue's default workload and the smoke one.
FULL_MESSAGES: Final = 500_000
SMOKE_MESSAGES: Final = 3_000
FULL_RUNS: Final = 3
#: Quotes in the profiled run (cProfile slows it about threefold).
PROFILE_MESSAGES: Final = 200_000
SMOKE_RUNS: Final = 1
#: stop() repeats per state, reconnects per library, and the CPU window per state.
FULL_STOP_REPEATS: Final = 3
SMOKE_STOP_REPEATS: Final = 1
FULL_RECONNECTS: Final = 5
SMOKE_RECONNECTS: Final = 1
FULL_CPU_WINDOW: Final = 2.0
SMOKE_CPU_WINDOW: Final = 0.2
#: Seconds of fixed-rate feed per client for the latency percentiles.
FULL_LATENCY_SECONDS: Final = 3.0
SMOKE_LATENCY_SECONDS: Final = 0.5
#: Quotes fed to the 10x slower consumer (the issue's 1M; the smoke run a second's worth).
FULL_MEMORY_MESSAGES: Final = 1_000_000
SMOKE_MEMORY_MESSAGES: Final = 20_000
#: Seconds to wait for a simulator process to print its URL, and to exit when asked.
SERVER_START_TIMEOUT: Final = 20.0
SERVER_EXIT_TIMEOUT: Final = 5.0
#: A client whose wall time per message exceeds its CPU time by this factor was waiting for
#: the server: its msgs/s is the server's pace, and CPU per message is the fairer comparison.
SERVER_BOUND_FACTOR: Final = 1.5


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    """Run ``python -m benchmarks.server ARGS`` in its own process; yield its URL; kill it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        started = time.monotonic()
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("ws://127.0.0.1:"):
            raise RuntimeError(f"simulator did not start (got {url!r})")
        if time.monotonic() - started > SERVER_START_TIMEOUT:
            raise RuntimeError("simulator took too long to start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(SERVER_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def throughput(messages: int, runs: int) -> dict[str, Any]:
    """Interleaved runs of every client against one replay simulator; medians per client."""
    names = list(CLIENTS)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    errors: dict[str, str] = {}
    with simulator("replay", "--messages", str(messages)) as url:
        for round_number in range(runs):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                try:
                    sample = run_client(name, url, messages)
                except Exception as exc:
                    errors[name] = repr(exc)
                    print(f"  round {round_number + 1} {name:22} FAILED {exc!r}", flush=True)
                    continue
                samples[name].append(sample)
                print(
                    f"  round {round_number + 1} {name:22} {sample.rate:12,.0f} msgs/s "
                    f"{sample.cpu_us_per_message:7.2f} µs/msg",
                    flush=True,
                )
    clients: dict[str, Any] = {}
    for name in names:
        if not samples[name]:
            clients[name] = {"ok": 0, "error": errors.get(name)}
            continue
        clients[name] = {
            "rate": statistics.median(s.rate for s in samples[name]),
            "cpu_us_per_message": statistics.median(s.cpu_us_per_message for s in samples[name]),
            "wall_us_per_message": statistics.median(s.wall / s.messages for s in samples[name])
            * 1e6,
            "rates": [s.rate for s in samples[name]],
            "cpu_runs": [s.cpu_us_per_message for s in samples[name]],
            "ok": len(samples[name]),
        }
    return {
        "messages": messages,
        "symbols": list(SYMBOLS),
        "quotes_per_frame": QUOTES_PER_FRAME,
        "compression": True,
        "runs": runs,
        "clients": clients,
    }


def profile(messages: int) -> dict[str, Any]:
    """streamfsm fast under cProfile against its own replay server."""
    print(f"profile: streamfsm fast under cProfile, {messages:,} quotes", flush=True)
    with simulator("replay", "--messages", str(messages)) as url:
        return profile_fast(url, messages)


def _cpu(clients: dict[str, Any], name: str) -> float | None:
    figure = clients.get(name, {}).get("cpu_us_per_message")
    return float(figure) if figure is not None else None


def budget_gaps(results: dict[str, Any]) -> str:
    """What stands between each missed throughput budget and its figure, from the figures."""
    clients = results["throughput"]["clients"]
    missed = {row["budget"].split(" (")[0] for row in results["budgets"] if row["met"] is False}
    fast, call, spec = (
        _cpu(clients, "streamfsm fast"),
        _cpu(clients, "websockets + msgspec + callback"),
        _cpu(clients, "websockets + msgspec"),
    )
    notes: list[str] = []
    for mode, what in (
        (
            "raw",
            "building the wire dict of each message (`models.to_raw`, one Python function "
            "and one dict per message)",
        ),
        (
            "alpaca",
            "building alpaca-py's pydantic model of each message without validation "
            "(`msgspec.structs.asdict`, `object.__new__` and four attribute sets per message)",
        ),
    ):
        mine = _cpu(clients, f"streamfsm {mode}")
        if fast is not None and mine is not None and any(mode in budget for budget in missed):
            notes.append(
                f"streamfsm {mode} spends {mine - fast:.3f} µs per message more than fast: "
                f"{what}. That conversion, not the stream, is what stands between {mode} and "
                "its budget; the dispatcher calls it in a loop of its own per frame type."
            )
    picows, bare = _cpu(clients, "streamfsm fast picows"), _cpu(clients, "picows + zlib + msgspec")
    if (
        picows is not None
        and bare is not None
        and call is not None
        and spec is not None
        and any("picows" in budget for budget in missed)
    ):
        notes.append(
            f"streamfsm fast on picows spends {picows - bare:.3f} µs per message above the bare "
            f"picows loop that inflates and decodes in picows' frame callback. About "
            f"{call - spec:.3f} µs of it is the one Python call per message that every callback "
            "API pays and the bare loop (counting per frame) does not; the rest is per frame: "
            "the transport's frame callback and queue, the session's receive loop and protocol "
            "step, the tracker's type scan and the dispatcher's slice, about 20 µs a frame of "
            "100 quotes."
        )
    return " ".join(notes)


def reading(results: dict[str, Any]) -> str:
    """A short reading of the figures, generated from them so that it cannot go stale."""
    parts: list[str] = []
    clients = results["throughput"]["clients"]
    bound = [
        name
        for name, fig in clients.items()
        if "rate" in fig
        and fig["wall_us_per_message"] > SERVER_BOUND_FACTOR * fig["cpu_us_per_message"]
    ]
    if bound:
        parts.append(
            "Waiting more than computing: " + ", ".join(bound) + " used less than "
            f"1/{SERVER_BOUND_FACTOR:g} of their wall time on CPU. The replay server prepared "
            "every byte before the run, so they waited for a CPU the machine's other load held; "
            "their msgs/s is not their own limit, their CPU µs per message is."
        )
    fast, spec, call, pack = (
        clients.get("streamfsm fast", {}),
        clients.get("websockets + msgspec", {}),
        clients.get("websockets + msgspec + callback", {}),
        clients.get("websockets + msgpack", {}),
    )
    if all("cpu_us_per_message" in fig for fig in (fast, spec, call, pack)):
        floor, with_call = spec["cpu_us_per_message"], call["cpu_us_per_message"]
        mine = fast["cpu_us_per_message"]
        parts.append(
            f"The bare typed-union loop's {floor:.3f} µs of client CPU per message is the floor "
            "every websockets client shares (framing, inflate, one msgspec decode per frame); "
            f"one Python call per message raises it to {with_call:.3f} µs, the floor of any "
            f"callback API. streamfsm fast spends {mine:.3f} µs: {mine - with_call:+.3f} µs "
            "above that floor for everything a bare loop does not do (the state it keeps for "
            "the watchdog and gap reports, the dispatcher, the session's receive loop). "
            f"msgpack.unpackb alone costs {pack['cpu_us_per_message']:.3f} µs."
        )
    profile = results.get("profile")
    if profile:
        parts.append(profile_reading(profile))
    gaps = budget_gaps(results)
    if gaps:
        parts.append(gaps)
    met = [row for row in results["budgets"] if row["met"] is True]
    missed = [row for row in results["budgets"] if row["met"] is False]
    parts.append(
        f"{len(met)} budgets met, {len(missed)} missed"
        + (": " + "; ".join(row["budget"] for row in missed) if missed else "")
        + "."
    )
    load = results["machine"].get("load_average_at_start")
    if load and load[0] > (results["machine"].get("cpu_count") or 1) / 2:
        parts.append(
            f"The machine was shared (1-minute load {load[0]:.1f} at start on "
            f"{results['machine']['cpu_count']} CPUs): msgs/s varies from run to run with the "
            "other load (see `rates` in the JSON); CPU per message is steadier."
        )
    stop = results.get("stop", {}).get("alpaca-py", {})
    slow = [
        f"{state} ({fig['stop_ms']:.0f} ms)"
        for state, fig in stop.items()
        if fig["stop_ms"] > report.STOP_BUDGET_MS
    ]
    if slow:
        parts.append(
            "alpaca-py's stop() is slow where its loop is blocked in a receive: "
            + ", ".join(slow)
            + ". Quiet streams wait out its 5 s receive timeout; connecting waits for the "
            "(delayed) auth reply."
        )
    busy = stop.get("idle (before first subscription)")
    if busy:
        parts.append(
            f"Before its first subscription alpaca-py spins on `asyncio.sleep(0)`: "
            f"{busy['cpu_share']:.0%} of a core here."
        )
    mem = results.get("memory")
    if mem:
        parts.append(
            f"With a consumer {mem['slowdown']}x slower than the feed, {mem['received']:,} quotes "
            f"arrived, {mem['delivered']:,} were delivered and {mem['dropped']:,} dropped by the "
            f"conflating queue (peak {mem['queue_peak']:,} of {mem['queue_bound']:,}); resident "
            f"memory grew {mem['rss_growth_mb']:.1f} MB. alpaca-py has no such bound: its reader "
            "simply falls behind and leaves the server to buffer, then disconnect, a slow client."
        )
    parts.append(
        "Latency is from the simulator's stamp, taken before it encodes and deflates the frame, "
        "so it includes the server's send path."
    )
    return "\n\n".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few thousand messages, quick")
    parser.add_argument("--messages", type=int, default=None, help="quotes per throughput run")
    parser.add_argument("--runs", type=int, default=None, help="rounds of throughput runs")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON path (default latest.json; smoke.json)"
    )
    parser.add_argument(
        "--from-json", type=Path, default=None, help="only regenerate budgets and docs from a JSON"
    )
    return parser


def regenerate(path: Path) -> int:
    """Recompute budgets and the reading of a finished run's JSON; rewrite it and the docs."""
    results = json.loads(path.read_text())
    results["budgets"] = report.budgets(results, results["reconnect_backoff_ms"])
    results["reading"] = reading(results)
    report.write_json(results, path)
    if results["mode"] == "full":
        report.write_markdown(results, results["reading"], DOCS)
    print(f"regenerated {path}" + (f" and {DOCS}" if results["mode"] == "full" else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.from_json is not None:
        return regenerate(args.from_json)
    configure_logging(logging.WARNING)
    logging.getLogger("alpaca").setLevel(logging.CRITICAL)
    smoke = args.smoke
    messages = args.messages or (SMOKE_MESSAGES if smoke else FULL_MESSAGES)
    runs = args.runs or (SMOKE_RUNS if smoke else FULL_RUNS)
    stop_repeats = SMOKE_STOP_REPEATS if smoke else FULL_STOP_REPEATS
    cpu_window = SMOKE_CPU_WINDOW if smoke else FULL_CPU_WINDOW
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": "smoke" if smoke else "full",
        "machine": report.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"throughput: {messages:,} quotes x {runs} rounds x {len(CLIENTS)} clients", flush=True)
    results["throughput"] = throughput(messages, runs)
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    results["profile"] = profile(SMOKE_MESSAGES if smoke else PROFILE_MESSAGES)
    print("lifecycle: stop() latency and CPU by state, reconnect after a reset", flush=True)
    with simulator("walk", "--rate", str(lifecycle.STREAM_RATE)) as url:
        results["stop"] = lifecycle.measure_stop(url, stop_repeats, cpu_window, skip_slow=smoke)
        results["stop_repeats"] = stop_repeats
        results["cpu_window_s"] = cpu_window
        results["reconnect"] = lifecycle.measure_reconnect(
            url, SMOKE_RECONNECTS if smoke else FULL_RECONNECTS
        )
        results["reconnect_backoff_ms"] = lifecycle.RECONNECT_BACKOFF * 1e3
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    print(f"latency: stamp to callback at {latency.LATENCY_RATE:,.0f} msgs/s", flush=True)
    with simulator(
        "walk", "--rate", str(latency.LATENCY_RATE), "--batch", str(latency.LATENCY_BATCH)
    ) as url:
        results["latency"] = latency.measure_latency(
            url, SMOKE_LATENCY_SECONDS if smoke else FULL_LATENCY_SECONDS
        )
    results["latency_rate"] = latency.LATENCY_RATE
    results["latency_batch"] = latency.LATENCY_BATCH
    print(f"memory: a consumer {memory.SLOWDOWN}x slower than the feed", flush=True)
    with simulator(
        "walk", "--rate", str(memory.MEMORY_RATE), "--batch", str(memory.MEMORY_BATCH)
    ) as url:
        results["memory"] = memory.measure_memory(
            url, SMOKE_MEMORY_MESSAGES if smoke else FULL_MEMORY_MESSAGES
        )
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    results["idle_cpu"] = lifecycle.measure_idle_cpu(results["stop"])
    results["budgets"] = report.budgets(results, results["reconnect_backoff_ms"])
    results["load_average_at_end"] = list(os.getloadavg())
    results["elapsed_s"] = time.perf_counter() - started
    text = reading(results)
    results["reading"] = text
    output = args.output or (SMOKE_RESULTS if smoke else RESULTS)
    write_docs = not (args.no_docs or smoke)
    report.write_json(results, output)
    if write_docs:
        report.write_markdown(results, text, DOCS)
    print("\nbudgets:")
    for row in results["budgets"]:
        print(f"  [{report._verdict(row['met']):10}] {row['budget']}: {row['measured']}")
    print(f"\nwrote {output}" + (f" and {DOCS}" if write_docs else ""))
    print(f"elapsed {results['elapsed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
