"""What the pricing tests share: a simulator, a watcher of hooks, a REST fake, small builders.

Every wait is a bounded wait on a condition that the service's hooks or transition listener
signal; the REST fake is a stdlib ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from streamfsm import BackoffPolicy, BreakerPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.records import TransitionRecord
from streamfsm.models import Quote
from streamfsm.pricing import PricingService, Source
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 5.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
FAST = StreamConfig(
    backoff=BackoffPolicy(initial=0.05, maximum=0.2),
    breaker=BreakerPolicy(failure_threshold=50, cooldown=0.5),
    stale=StalePolicy(quotes=None),
    healthy_after=0.3,
    connection_limit_cooldown=0.1,
)
SYMBOLS = ("AAPL", "MSFT", "TSLA", "NVDA", "AMD", "AMZN", "GOOG", "META")
CENT = Decimal("0.01")
NOW = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)
#: How often the REST fake checks for shutdown.
POLL_INTERVAL = 0.05


def simulator() -> SimulatorThread:
    """A simulator streaming quotes and trades quickly (enter it with ``with``)."""
    return SimulatorThread(SimConfig(rate=400, batch=4, seed=11))


class Watch:
    """Signals a condition on every quote and transition, so tests can wait on predicates."""

    def __init__(self) -> None:
        self.quotes = 0
        self.records: list[TransitionRecord] = []
        self.hook: Callable[[Quote], None] | None = None
        self._condition = threading.Condition()

    def on_quote(self, quote: Quote) -> None:
        if self.hook is not None:
            self.hook(quote)
        with self._condition:
            self.quotes += 1
            self._condition.notify_all()

    def on_transition(self, record: TransitionRecord) -> None:
        with self._condition:
            self.records.append(record)
            self._condition.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)

    def losses(self) -> int:
        return sum(1 for r in self.records if r.src == "subscribed" and r.dst != "subscribed")


def make(
    sim: SimulatorThread, watch: Watch, *, url_feed: str = "iex", **kwargs: Any
) -> PricingService:
    """A service on ``sim``'s ``url_feed`` stream (``config`` defaults to FAST), watched."""
    config = kwargs.pop("config", FAST)
    service = PricingService(
        CREDENTIALS, attrs.evolve(config, url=sim.url(url_feed)), on_quote=watch.on_quote, **kwargs
    )
    service.controller.add_listener(watch.on_transition)
    return service


def fresh(service: PricingService, symbols: tuple[str, ...]) -> Callable[[], bool]:
    def check() -> bool:
        snapshots = [service.quote(symbol) for symbol in symbols]
        return all(s is not None and not s.stale for s in snapshots)

    return check


def quote(bid: float, ask: float, **fields: Any) -> Quote:
    """An AAPL quote at NOW with sizes 3 and 5; ``fields`` override any attribute."""
    values: dict[str, Any] = {"symbol": "AAPL", "timestamp": NOW, "bid_size": 3.0, "ask_size": 5.0}
    return Quote(**{**values, "bid_price": bid, "ask_price": ask, **fields})


def server_has(sim: SimulatorThread, quotes: set[str]) -> None:
    """Wait until the simulator's one connection is subscribed to exactly ``quotes``."""
    sim.wait_for(
        lambda stats: [set(c.subscriptions.quotes) for c in stats.open_connections] == [quotes],
        WAIT,
    )


class FakeMonotonic:
    """time.monotonic plus an offset that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class RestFake:
    """Alpaca's latest-quotes endpoint on 127.0.0.1, answering from a dict of prices."""

    def __init__(self) -> None:
        self.prices: dict[str, tuple[float, float]] = {"AAPL": (123.45, 123.47)}
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                fake.requests.append((url.path, query, self.headers.get("APCA-API-KEY-ID")))
                stamp = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
                quotes = {
                    symbol: {"t": stamp, "bp": bid, "bs": 2, "ap": ask, "as": 4, "bx": "V"}
                    for symbol in query.get("symbols", [""])[0].split(",")
                    if (prices := fake.prices.get(symbol)) is not None
                    for bid, ask in [prices]
                }
                body = json.dumps({"quotes": quotes}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name="rest-fake"
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disable proxies so that HTTP requests stay on loopback."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def source_of(service: PricingService, symbol: str) -> Source | None:
    snapshot = service.quote(symbol)
    return None if snapshot is None else snapshot.source
