"""Lifecycle figures against a random-walk server: stop() latency, idle CPU, reconnect time.

Faults go to the simulator process through its control socket (``streamfsm.sim.send_fault``);
they are server-wide, so every measurement undoes its fault before the next one starts.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from benchmarks.clients import AlpacaRunner, alpaca_stream, credentials
from benchmarks.server import SYMBOLS
from streamfsm._core.machine import State
from streamfsm.config import BackoffPolicy, BreakerPolicy, StreamConfig
from streamfsm.controller import StreamController
from streamfsm.sim import send_fault

__all__ = ["measure_idle_cpu", "measure_reconnect", "measure_stop"]

#: Data rate of the lifecycle server while "streaming" (messages per second).
STREAM_RATE: Final = 2_000.0
#: How long a state must be reached within.
STATE_TIMEOUT: Final = 10.0
#: Auth replies held back this long keep a client in "connecting" (alpaca-py cannot leave it).
AUTH_DELAY: Final = 3.0
#: A first backoff far longer than the measurement, so the controller sits in backoff.
LONG_BACKOFF: Final = 60.0
#: A first backoff short enough to reach the breaker quickly.
SHORT_BACKOFF: Final = 0.05
#: The breaker trips on the first failure and stays open for the whole measurement.
BREAKER_COOLDOWN: Final = 600.0
#: First backoff used for the reconnect measurement (the budget is this plus 50 ms).
RECONNECT_BACKOFF: Final = 0.5
#: Settling time after a state is reached, before measuring in it.
SETTLE: Final = 0.2
#: How long to wait for alpaca-py to connect (it has no state to wait on).
ALPACA_CONNECT_WAIT: Final = 0.5
#: alpaca-py states whose stop() waits out a server timer (seconds each); smoke mode skips them.
SLOW_ALPACA_STATES: Final = frozenset({"connecting", "subscribed (quiet)"})
#: Polling period of waits without an event.
POLL: Final = 0.001


def _cpu_share(window: float) -> float:
    """Share of one core this process used over ``window`` seconds (1.0 = a full core)."""
    wall, cpu = time.perf_counter(), time.process_time()
    time.sleep(window)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


@contextmanager
def _fault(url: str, fault: str, undo: str, **params: Any) -> Iterator[None]:
    send_fault(url, fault, **params)
    try:
        yield
    finally:
        undo_params = {"seconds": 0} if undo == "delay_auth" else {}
        if undo == "rate":
            undo_params = {"rate": STREAM_RATE}
        send_fault(url, undo, **undo_params)


def _streamfsm_states(url: str) -> dict[str, Callable[[], tuple[Any, Any]]]:
    """For each state: a function that builds a controller, brings it there, returns it."""

    def controller(config: StreamConfig) -> StreamController:
        return StreamController(
            credentials(), config, on_quote=lambda _q: None, models="fast", symbols=SYMBOLS
        )

    def idle() -> tuple[Any, Any]:
        return controller(StreamConfig(url=url)), None

    def connecting() -> tuple[Any, Any]:
        fault = _fault(url, "delay_auth", "delay_auth", seconds=AUTH_DELAY)
        fault.__enter__()
        ctl = controller(StreamConfig(url=url))
        ctl.start()
        ctl.wait_for(State.CONNECTING, STATE_TIMEOUT)
        return ctl, fault

    def subscribed(quiet: bool) -> Callable[[], tuple[Any, Any]]:
        def reach() -> tuple[Any, Any]:
            fault = _fault(url, "rate", "rate", rate=0.0) if quiet else None
            if fault is not None:
                fault.__enter__()
            ctl = controller(StreamConfig(url=url))
            ctl.start()
            ctl.wait_for(State.SUBSCRIBED, STATE_TIMEOUT)
            return ctl, fault

        return reach

    def refused(config: StreamConfig, state: State) -> Callable[[], tuple[Any, Any]]:
        def reach() -> tuple[Any, Any]:
            fault = _fault(url, "refuse", "accept", seconds=BREAKER_COOLDOWN, mode="reset")
            fault.__enter__()
            ctl = controller(config)
            ctl.start()
            if not ctl.wait_for(state, STATE_TIMEOUT):
                raise TimeoutError(f"never reached {state}")
            return ctl, fault

        return reach

    return {
        "idle": idle,
        "connecting": connecting,
        "subscribed (quiet)": subscribed(quiet=True),
        "subscribed (streaming)": subscribed(quiet=False),
        "backoff": refused(
            StreamConfig(
                url=url, backoff=BackoffPolicy(initial=LONG_BACKOFF, maximum=LONG_BACKOFF)
            ),
            State.BACKOFF,
        ),
        "circuit_open": refused(
            StreamConfig(
                url=url,
                backoff=BackoffPolicy(initial=SHORT_BACKOFF),
                breaker=BreakerPolicy(
                    failure_threshold=1, cooldown=BREAKER_COOLDOWN, max_cooldown=BREAKER_COOLDOWN
                ),
            ),
            State.CIRCUIT_OPEN,
        ),
    }


def _alpaca_states(url: str) -> dict[str, Callable[[], tuple[Any, Any]]]:
    """alpaca-py has no states to wait on: bring it there by construction and a short wait."""

    def runner(subscribe: bool) -> AlpacaRunner:
        async def on_quote(_quote: object) -> None:
            return None

        stream = alpaca_stream(url, raw=False)
        if subscribe:
            stream.subscribe_quotes(on_quote, *SYMBOLS)
        run = AlpacaRunner(stream)
        run.start()
        return run

    def before_subscription() -> tuple[Any, Any]:
        return runner(subscribe=False), None

    def with_fault(fault_args: tuple[str, str, dict[str, Any]] | None) -> Callable[[], Any]:
        def reach() -> tuple[Any, Any]:
            fault = None
            if fault_args is not None:
                name, undo, params = fault_args
                fault = _fault(url, name, undo, **params)
                fault.__enter__()
            run = runner(subscribe=True)
            time.sleep(ALPACA_CONNECT_WAIT)
            return run, fault

        return reach

    return {
        "idle (before first subscription)": before_subscription,
        "connecting": with_fault(("delay_auth", "delay_auth", {"seconds": AUTH_DELAY})),
        "subscribed (quiet)": with_fault(("rate", "rate", {"rate": 0.0})),
        "subscribed (streaming)": with_fault(None),
        "backoff": with_fault(("refuse", "accept", {"seconds": BREAKER_COOLDOWN, "mode": "reset"})),
    }


def _stop(client: Any) -> float:
    started = time.perf_counter()
    client.stop()
    elapsed = time.perf_counter() - started
    if isinstance(client, StreamController):
        client.close()  # its loop thread outlives stop() until close(); not part of the figure
    return elapsed


def measure_stop(
    url: str, repeats: int, cpu_window: float, *, skip_slow: bool = False
) -> dict[str, dict[str, dict[str, float]]]:
    """Median stop() latency (ms) and idle CPU (share of a core) from each reachable state.

    With ``skip_slow``, alpaca-py's :data:`SLOW_ALPACA_STATES` are left out (smoke mode).
    For alpaca-py, "stop" is its ``stop()`` plus the join of the thread running its loop:
    ``stop()`` only posts a request and returns before the stream has closed.
    """
    results: dict[str, dict[str, dict[str, float]]] = {}
    for library, states in (
        ("streamfsm", _streamfsm_states(url)),
        ("alpaca-py", _alpaca_states(url)),
    ):
        results[library] = {}
        for state, reach in states.items():
            if skip_slow and library == "alpaca-py" and state in SLOW_ALPACA_STATES:
                continue
            latencies: list[float] = []
            cpu = float("nan")
            for attempt in range(repeats):
                client, fault = reach()
                try:
                    time.sleep(SETTLE)
                    if attempt == 0:
                        cpu = _cpu_share(cpu_window)
                    latencies.append(_stop(client))
                finally:
                    if fault is not None:
                        fault.__exit__(None, None, None)
            results[library][state] = {
                "stop_ms": statistics.median(latencies) * 1e3,
                "stop_ms_max": max(latencies) * 1e3,
                "cpu_share": cpu,
            }
            print(
                f"  {library:10} {state:34} stop {results[library][state]['stop_ms']:8.2f} ms"
                f"  cpu {cpu * 100:6.2f}%",
                flush=True,
            )
    return results


def measure_idle_cpu(stop_results: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """The idle-like states' CPU shares, picked out of :func:`measure_stop`'s results."""
    idle_like = ("idle", "backoff", "circuit_open", "subscribed (quiet)")
    picked: dict[str, float] = {}
    for library, states in stop_results.items():
        for state, figures in states.items():
            if state.startswith(idle_like) or state == "connecting":
                picked[f"{library} {state}"] = figures["cpu_share"]
    return picked


class _Arrivals:
    """Stamps the first quote of each connection generation."""

    def __init__(self) -> None:
        self.generation = 0
        self.first: dict[int, float] = {}
        self.flowing = threading.Event()

    def quote(self, generation: int) -> None:
        if generation not in self.first:
            self.first[generation] = time.perf_counter()
            self.flowing.set()


def _reconnect_streamfsm(url: str) -> float:
    arrivals = _Arrivals()
    ctl = StreamController(
        credentials(),
        StreamConfig(url=url, backoff=BackoffPolicy(initial=RECONNECT_BACKOFF)),
        on_quote=lambda _q: arrivals.quote(arrivals.generation),
        models="fast",
        symbols=SYMBOLS,
    )

    def listener(record: Any) -> None:
        if record.dst == State.SUBSCRIBED.value and record.src != record.dst:
            arrivals.generation += 1

    ctl.add_listener(listener)
    ctl.start()
    try:
        if not arrivals.flowing.wait(STATE_TIMEOUT):
            raise TimeoutError("no data before the drop")
        target = arrivals.generation + 1
        dropped = time.perf_counter()
        send_fault(url, "drop")
        deadline = dropped + STATE_TIMEOUT
        while target not in arrivals.first:
            if time.perf_counter() > deadline:
                raise TimeoutError("no data after the drop")
            time.sleep(POLL)
        return arrivals.first[target] - dropped
    finally:
        ctl.close()


def _reconnect_alpaca(url: str) -> float:
    arrivals = _Arrivals()
    holder: dict[str, Any] = {}

    async def on_quote(_quote: object) -> None:
        arrivals.quote(id(holder["stream"]._ws))

    stream = alpaca_stream(url, raw=True)
    holder["stream"] = stream
    stream.subscribe_quotes(on_quote, *SYMBOLS)
    run = AlpacaRunner(stream)
    run.start()
    try:
        if not arrivals.flowing.wait(STATE_TIMEOUT):
            raise TimeoutError("no data before the drop")
        before = set(arrivals.first)
        dropped = time.perf_counter()
        send_fault(url, "drop")
        deadline = dropped + STATE_TIMEOUT
        while not set(arrivals.first) - before:
            if time.perf_counter() > deadline:
                raise TimeoutError("no data after the drop")
            time.sleep(POLL)
        (new,) = set(arrivals.first) - before
        return arrivals.first[new] - dropped
    finally:
        run.stop()


def measure_reconnect(url: str, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds from a TCP reset (``drop``) to the first quote on the new connection."""
    results: dict[str, dict[str, float]] = {}
    for library, measure in (("streamfsm", _reconnect_streamfsm), ("alpaca-py", _reconnect_alpaca)):
        times = [measure(url) for _ in range(repeats)]
        results[library] = {
            "median_ms": statistics.median(times) * 1e3,
            "max_ms": max(times) * 1e3,
            "runs": len(times),
        }
        print(
            f"  {library:10} reconnect median {results[library]['median_ms']:8.1f} ms "
            f"max {results[library]['max_ms']:8.1f} ms",
            flush=True,
        )
    return results
