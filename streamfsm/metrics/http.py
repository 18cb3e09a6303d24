"""``/metrics``, ``/healthz`` and ``/readyz`` over HTTP, from a thread of their own.

:func:`serve` binds to loopback by default: metrics tell an attacker what a process trades, so
exposing them beyond the host is the operator's decision (``host="0.0.0.0"``), not a default.

* ``/metrics``: the :class:`~streamfsm.metrics.StreamCollector` families, Prometheus text format.
* ``/healthz``: 200 while every controller is alive (not ``stopped``), else 503. A liveness
  probe: restart the process when it fails.
* ``/readyz``: 200 while every controller is ``subscribed`` with the acknowledged set equal to
  the desired set, else 503. A readiness probe: send no traffic that needs fresh prices while it
  fails.

The server thread blocks in ``accept`` (no polling); :meth:`MetricsServer.close` wakes it with a
connection of its own and joins it.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from streamfsm.controller import Health, StreamController
from streamfsm.metrics.collector import StreamCollector, is_alive, is_ready

__all__ = ["DEFAULT_HOST", "MetricsServer", "serve"]

#: Loopback only unless the caller says otherwise.
DEFAULT_HOST: Final = "127.0.0.1"
#: Seconds ``close`` waits for the server thread (it is woken at once; this bounds a stuck one).
_JOIN_TIMEOUT: Final = 5.0
_OK: Final = 200
_UNAVAILABLE: Final = 503
_NOT_FOUND: Final = 404
_TEXT: Final = "text/plain; charset=utf-8"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes the three paths; everything else is 404."""

    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(_OK, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif path == "/healthz":
            self._probe(is_alive, "alive", "stopped")
        elif path == "/readyz":
            self._probe(is_ready, "ready", "not ready")
        else:
            self._send(_NOT_FOUND, _TEXT, b"not found: try /metrics, /healthz or /readyz\n")

    def _probe(self, check: Callable[[Health], bool], good: str, bad: str) -> None:
        healths = self.server.collector.healths()
        failing = [stream for stream, health in healths.items() if not check(health)]
        if failing:
            states = ", ".join(f"{stream}: {healths[stream].state.value}" for stream in failing)
            self._send(_UNAVAILABLE, _TEXT, f"{bad} ({states})\n".encode())
        else:
            self._send(_OK, _TEXT, f"{good}\n".encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not worth a line each on stderr."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, collector: StreamCollector
    ) -> None:
        self.registry = registry
        self.collector = collector
        super().__init__(address, _Handler)


class MetricsServer:
    """A running endpoint server; :meth:`close` (or ``with``) stops it."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"streamfsm-metrics-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        """The address bound."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port bound (the one chosen when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def registry(self) -> CollectorRegistry:
        """The registry served at ``/metrics`` (add your own collectors to it if you like)."""
        return self._server.registry

    def _serve(self) -> None:
        self._server.timeout = None
        while not self._closed.is_set():
            self._server.handle_request()

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            with socket.create_connection((self._wake_host(), self.port), timeout=_JOIN_TIMEOUT):
                pass
        except OSError:
            pass  # the thread is not in accept (already gone): nothing to wake
        self._thread.join(_JOIN_TIMEOUT)
        self._server.server_close()

    def _wake_host(self) -> str:
        host = self.host
        return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def serve(
    controllers: StreamController | Mapping[str, StreamController],
    *,
    port: int = 0,
    host: str = DEFAULT_HOST,
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` for ``controllers`` until ``close()``.

    Args:
        controllers: one controller, or stream label -> controller (see :class:`StreamCollector`).
        port: the TCP port; 0 picks a free one (read it from ``.port``).
        host: the address to bind, loopback by default.
        registry: a registry to serve (the collector is added to it); a new one by default,
            never the global one.

    Raises:
        OSError: when the address cannot be bound.
    """
    collector = StreamCollector(controllers)
    chosen = registry if registry is not None else CollectorRegistry()
    chosen.register(collector)
    try:
        server = _Server((host, port), chosen, collector)
    except OSError:
        chosen.unregister(collector)
        raise
    return MetricsServer(server)
