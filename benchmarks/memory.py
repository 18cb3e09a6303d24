"""Memory with a consumer ten times slower than the feed.

The random-walk simulator pushes quotes at a fixed rate from its own process; streamfsm's callback
busy-works ten times longer per quote than the feed allows. The controller's dispatch queue is
bounded, so the overflow policy (``conflate``: superseded quotes first, then the oldest) must
drop, and count, what the consumer cannot take, while the process's memory stays flat. The run
records resident memory over time, the queue's high-water mark, and checks the accounting:
every received quote is delivered, dropped, or still queued.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

from benchmarks.clients import credentials
from benchmarks.server import SYMBOLS
from streamfsm._core.machine import State
from streamfsm.config import StalePolicy, StreamConfig
from streamfsm.controller import StreamController

__all__ = ["MEMORY_BATCH", "MEMORY_RATE", "measure_memory"]

#: The feed's pace, messages per second, and quotes per frame.
MEMORY_RATE: Final = 20_000.0
MEMORY_BATCH: Final = 100
#: The consumer handles a tenth of the feed.
SLOWDOWN: Final = 10
#: The dispatch queue bound under test (the default is 100 000).
QUEUE_BOUND: Final = 10_000
#: How often resident memory and the queue are sampled, seconds.
SAMPLE_EVERY: Final = 0.25
#: Seconds to reach subscribed.
CONNECT_TIMEOUT: Final = 10.0
#: Memory growth that still counts as flat: interpreter caches and allocator slack.
FLAT_GROWTH_MB: Final = 25.0
#: Ages of the first 1/WARMUP_SHARE of the quotes are not judged (the connection warming up).
WARMUP_SHARE: Final = 10
P99: Final = 0.99
#: A quote is aged at most one slice of callbacks (1 ms) and one slow callback past the bound.
SLICE_SLACK_MS: Final = 5.0
_PAGE_BYTES: Final = 4096
_MB: Final = 1024 * 1024


def _rss_mb() -> float:
    """This process's resident memory, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    return pages * _PAGE_BYTES / _MB


class _SlowConsumer:
    """A callback that works ``SLOWDOWN`` times longer per quote than the feed leaves it.

    It records each quote's age on arrival: now minus the simulator's stamp, taken just before
    the frame was encoded (both processes read the same wall clock).
    """

    def __init__(self) -> None:
        self.delivered = 0
        self.seconds = SLOWDOWN / MEMORY_RATE
        self.ages: list[float] = []

    def __call__(self, quote: Any) -> None:
        self.ages.append(time.time() - quote.timestamp.timestamp())
        self.delivered += 1
        busy_until = time.perf_counter() + self.seconds
        while time.perf_counter() < busy_until:
            continue  # stands for a pricing model's work


def measure_memory(url: str, messages: int) -> dict[str, Any]:
    """Feed about ``messages`` quotes to a slow consumer; memory, drops and the queue's peak."""
    consumer = _SlowConsumer()
    config = StreamConfig(url=url, dispatch_queue_size=QUEUE_BOUND, stale=StalePolicy(quotes=None))
    controller = StreamController(
        credentials(), config, on_quote=consumer, models="fast", symbols=SYMBOLS
    )
    controller.start()
    try:
        if not controller.wait_for(State.SUBSCRIBED, CONNECT_TIMEOUT):
            raise RuntimeError("the controller did not subscribe")
        rss_start = _rss_mb()
        rss_peak = rss_start
        queue_peak = 0
        deadline = time.monotonic() + 2 * messages / MEMORY_RATE
        health = controller.health()
        while health.messages["quotes"] < messages and time.monotonic() < deadline:
            controller.wait_for(State.STOPPED, SAMPLE_EVERY)
            health = controller.health()
            rss_peak = max(rss_peak, _rss_mb())
            queue_peak = max(queue_peak, health.queued_messages)
    finally:
        controller.close()
    final = controller.health()
    received = final.messages["quotes"]
    growth = rss_peak - rss_start
    ages = sorted(consumer.ages[len(consumer.ages) // WARMUP_SHARE :])
    return {
        "age_max_ms": ages[-1] * 1e3 if ages else float("nan"),
        "age_p99_ms": ages[int(len(ages) * P99)] * 1e3 if ages else float("nan"),
        "age_median_ms": ages[len(ages) // 2] * 1e3 if ages else float("nan"),
        "max_age_ms": config.dispatch_max_age * 1e3 if config.dispatch_max_age else float("inf"),
        "slice_ms": SLICE_SLACK_MS,
        "received": received,
        "delivered": consumer.delivered,
        "dropped": final.dropped_messages,
        "unaccounted": received - consumer.delivered - final.dropped_messages,
        "queue_bound": QUEUE_BOUND,
        "queue_peak": queue_peak,
        "rss_start_mb": rss_start,
        "rss_peak_mb": rss_peak,
        "rss_growth_mb": growth,
        "feed_rate": MEMORY_RATE,
        "slowdown": SLOWDOWN,
        "flat": growth <= FLAT_GROWTH_MB and queue_peak <= QUEUE_BOUND,
        "flat_growth_mb": FLAT_GROWTH_MB,
    }
