"""``streamfsm demo --metrics-port``: the endpoints during the run, and the last scrape kept.

The scrape is taken over HTTP, as Prometheus would, after the fault script and before the stop,
so the file in the output directory shows every fault in the counters.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Final

from streamfsm.pricing import PricingService

if TYPE_CHECKING:
    from streamfsm.metrics import MetricsServer

__all__ = ["METRICS_NAME", "keep_last_scrape", "serve_endpoints"]

#: The last /metrics scrape of a run with --metrics-port, in the output directory.
METRICS_NAME: Final = "metrics.txt"
#: Seconds the scrape may take on loopback.
_SCRAPE_TIMEOUT: Final = 5.0


def serve_endpoints(service: PricingService, port: int) -> MetricsServer:
    """/metrics, /healthz and /readyz for the demo's controller on 127.0.0.1:``port``.

    Raises:
        ImportError: without the metrics extra.
        OSError: when the port cannot be bound.
    """
    from streamfsm.metrics import serve

    return serve(service.controller, port=port)


def keep_last_scrape(endpoints: MetricsServer, output: Path) -> None:
    """Scrape /metrics once into ``output/metrics.txt``, then close the server.

    Raises:
        OSError: when the scrape or the write fails (the server is closed all the same).
    """
    try:
        with urllib.request.urlopen(f"{endpoints.url}/metrics", timeout=_SCRAPE_TIMEOUT) as page:
            (output / METRICS_NAME).write_bytes(page.read())
    finally:
        endpoints.close()
