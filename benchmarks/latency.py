"""Per-message latency at a fixed rate: the simulator's stamp to the user callback, p50/p99.

The random-walk simulator stamps each frame's quotes with ``time.time_ns()`` just before it
encodes, deflates and sends the frame; the callback takes ``time.time()`` on entry. Both processes
read the same clock, so the difference is server send + loopback + client receive, inflate,
decode and dispatch. It is an upper bound on "frame received to callback entered", which would
need a hook inside each client's transport.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Final

from benchmarks.clients import AlpacaRunner, alpaca_stream, credentials
from benchmarks.server import SYMBOLS
from streamfsm.config import StreamConfig
from streamfsm.controller import StreamController

__all__ = ["LATENCY_BATCH", "LATENCY_RATE", "measure_latency"]

#: The issue's fixed rate, messages per second, and the quotes per frame at that rate.
LATENCY_RATE: Final = 20_000.0
LATENCY_BATCH: Final = 20
#: Quotes before this many seconds are not recorded (connection warm-up).
WARMUP: Final = 0.5
PERCENTILES: Final = 100
P50: Final = 49
P99: Final = 98


class _Recorder:
    """Records stamp-to-callback latencies in seconds, after the warm-up."""

    def __init__(self) -> None:
        self.start = time.time() + WARMUP
        self.values: list[float] = []

    def __call__(self, quote: Any) -> None:
        now = time.time()
        if now >= self.start:
            self.values.append(now - quote.timestamp.timestamp())

    def summary(self) -> dict[str, float]:
        if len(self.values) < PERCENTILES:
            raise RuntimeError(f"only {len(self.values)} latency samples")
        cuts = statistics.quantiles(self.values, n=PERCENTILES)
        return {"p50_us": cuts[P50] * 1e6, "p99_us": cuts[P99] * 1e6, "samples": len(self.values)}


def _streamfsm(url: str, mode: str, seconds: float) -> dict[str, float]:
    recorder = _Recorder()
    controller = StreamController(
        credentials(), StreamConfig(url=url), on_quote=recorder, models=mode, symbols=SYMBOLS
    )
    controller.start()
    try:
        time.sleep(WARMUP + seconds)
    finally:
        controller.close()
    return recorder.summary()


def _alpaca(url: str, seconds: float) -> dict[str, float]:
    recorder = _Recorder()

    async def on_quote(quote: Any) -> None:
        recorder(quote)

    stream = alpaca_stream(url, raw=False)
    stream.subscribe_quotes(on_quote, *SYMBOLS)
    runner = AlpacaRunner(stream)
    runner.start()
    try:
        time.sleep(WARMUP + seconds)
    finally:
        runner.stop()
    return recorder.summary()


def measure_latency(url: str, seconds: float) -> dict[str, dict[str, float]]:
    """p50/p99 latency per client over ``seconds`` of a fixed-rate feed."""
    results: dict[str, dict[str, float]] = {}
    for name, run in (
        ("streamfsm fast", lambda: _streamfsm(url, "fast", seconds)),
        ("streamfsm alpaca", lambda: _streamfsm(url, "alpaca", seconds)),
        ("alpaca-py typed", lambda: _alpaca(url, seconds)),
    ):
        try:
            results[name] = run()
        except Exception as exc:
            results[name] = {"error": repr(exc)}  # type: ignore[dict-item]
            print(f"  {name:18} latency FAILED {exc!r}", flush=True)
            continue
        fig = results[name]
        print(
            f"  {name:18} p50 {fig['p50_us']:9.0f} µs  p99 {fig['p99_us']:9.0f} µs "
            f"({fig['samples']:.0f} quotes)",
            flush=True,
        )
    return results
