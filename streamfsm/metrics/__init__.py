"""Operations: Prometheus metrics and the /metrics, /healthz and /readyz endpoints.

Needs the ``metrics`` extra (``pip install 'streamfsm[metrics]'``, which brings
``prometheus_client``). Nothing is registered on ``prometheus_client``'s global registry: either
register a :class:`StreamCollector` on a registry of your own, or call :func:`serve`, which
builds one and serves it over HTTP on loopback::

    from prometheus_client import CollectorRegistry
    from streamfsm.metrics import StreamCollector, serve

    registry = CollectorRegistry()
    registry.register(StreamCollector(controller))      # scrape it with your own exporter
    # or
    server = serve(controller, port=9464)                # /metrics, /healthz, /readyz
    ...
    server.close()
"""

from __future__ import annotations

from streamfsm.metrics.collector import StreamCollector, is_alive, is_ready
from streamfsm.metrics.http import MetricsServer, serve

__all__ = ["MetricsServer", "StreamCollector", "is_alive", "is_ready", "serve"]
