"""The simulator: a real ``websockets`` server on loopback that speaks Alpaca's stream protocol.

Paths:

* every market's data path, as on Alpaca: ``/v2/{feed}`` (stocks: ``iex``, ``sip``,
  ``delayed_sip``, ``test``), ``/v1beta1/boats`` and ``/v1beta1/overnight`` (stocks),
  ``/v1beta3/crypto/{us,us-1,eu-1}``, ``/v1beta1/{indicative,opra}`` (options) and
  ``/v1beta1/news`` (see :mod:`streamfsm.sim.session` for the protocol and its assumptions);
* ``/control``: a JSON command socket for other processes. Send ``{"fault": NAME, ...params}``
  or ``{"query": "stats"}``; every message gets one reply, ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error": "..."}``. Control connections are never refused, faulted or counted.

Any other path is answered 404 without upgrading.
"""

from __future__ import annotations

import asyncio
import enum
import http
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from streamfsm.config import Feed
from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.logs import StreamLogger
from streamfsm.markets import MARKETS, market_of_feed
from streamfsm.sim.config import SimConfig
from streamfsm.sim.faults import (
    CONNECTION_LIMIT_CODE,
    NORMAL_CLOSURE,
    RefuseMode,
    UnknownConnectionError,
    reset,
)
from streamfsm.sim.hub import Hub, Predicate
from streamfsm.sim.injection import FaultInjection
from streamfsm.sim.session import Session
from streamfsm.sim.stats import ConnectionInfo, SimStats

if TYPE_CHECKING:
    from websockets.http11 import Request, Response

__all__ = ["CONNECTION_LIMIT_CODE", "CONTROL_PATH", "DEFAULT_WAIT", "NORMAL_CLOSURE", "Simulator"]

#: The path of the JSON control socket.
CONTROL_PATH: Final = "/control"
#: Every market's data path (``/v2/iex``, ``/v1beta3/crypto/us``, ``/v1beta1/opra``...) -> feed.
FEED_PATHS: Final = {spec.path(feed): feed for spec in MARKETS.values() for feed in spec.feeds}
#: Waits in tests should fail fast on loopback; five seconds is generous there.
DEFAULT_WAIT: Final = 5.0
#: Keepalive as the websockets default: catches a client whose TCP peer vanished.
PING_INTERVAL: Final = 20.0
PING_TIMEOUT: Final = 20.0
#: Largest client message: alpaca-py fragments subscribe messages into 32 KiB frames; 1 MiB
#: holds tens of thousands of symbols.
MAX_CLIENT_MESSAGE: Final = 1 << 20
#: Shutdown waits the close timeout plus this for clients to finish their close handshakes, then
#: resets the stragglers (a client that stopped reading never sees our close frame).
SHUTDOWN_MARGIN: Final = 0.5

#: websockets logs every frame at DEBUG, clients' auth frames included; this logger is kept
#: above DEBUG so a test run with DEBUG logging shows no secret from the simulator either.
FRAME_LOGGER: Final = logging.getLogger("streamfsm.sim.websockets")
_log = StreamLogger("streamfsm.sim", component="sim")
_E = TypeVar("_E", bound=enum.Enum)
_json_encoder: Final = msgspec.json.Encoder()


def _feed_of(path: str) -> Feed | None:
    return FEED_PATHS.get(path)


class Simulator(FaultInjection):
    """An Alpaca-protocol market-data server on loopback, with fault injection.

    Use it as ``async with Simulator(SimConfig(...)) as sim:``; every method runs on the event
    loop that started it (use :class:`~streamfsm.sim.SimulatorThread` from other threads).
    Fault methods return the ids of the connections they acted on. Faults, waits and rate
    changes raise :class:`~streamfsm.errors.LocalProtocolError` before :meth:`start` and after
    :meth:`aclose`; :meth:`stats` keeps working after :meth:`aclose`.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self._config = config if config is not None else SimConfig()
        self._hub: Hub | None = None
        self._server: Server | None = None
        self._port: int | None = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    @property
    def config(self) -> SimConfig:
        """The configuration the simulator was built with."""
        return self._config

    async def start(self) -> None:
        """Bind and start serving.

        Raises:
            LocalProtocolError: when already started or closed.
            OSError: when the port cannot be bound.
        """
        if self._server is not None or self._closed:
            raise LocalProtocolError("a Simulator can be started once")
        config = self._config
        self._hub = Hub(config)
        FRAME_LOGGER.setLevel(logging.INFO)
        self._server = await serve(
            self._handle,
            config.host,
            config.port,
            process_request=self._process_request,
            compression="deflate" if config.compression else None,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=config.close_timeout,
            max_size=MAX_CLIENT_MESSAGE,
            logger=FRAME_LOGGER,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        _log.info("sim_started", url=self.url(Feed.IEX))

    async def aclose(self) -> None:
        """Stop serving: close every connection (1001 going away) and wait for their handlers.

        Idempotent. Takes at most the close timeout plus half a second: connections whose
        client does not finish the close handshake by then are reset.
        """
        if self._closed:
            return
        self._closed = True
        if self._hub is not None:
            self._hub.shutdown()
        server = self._server
        if server is None:
            return
        server.close()
        try:
            async with asyncio.timeout(self._config.close_timeout + SHUTDOWN_MARGIN):
                await server.wait_closed()
        except TimeoutError:
            stragglers = list(server.all_connections)
            _log.warning("sim_close_timed_out", reset_connections=len(stragglers))
            for connection in stragglers:
                reset(connection.transport)
            await server.wait_closed()
        _log.info("sim_stopped")

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _require(self) -> Hub:
        if self._hub is None or self._closed:
            raise LocalProtocolError("the simulator is not running")
        return self._hub

    @property
    def host(self) -> str:
        """The loopback address served."""
        return self._config.host

    @property
    def port(self) -> int:
        """The TCP port served (the one picked when the configuration said 0).

        Raises:
            LocalProtocolError: before :meth:`start`.
        """
        if self._port is None:
            raise LocalProtocolError("the simulator has not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``ws://HOST:PORT`` without a path."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def url(self, feed: Feed | str = Feed.IEX) -> str:
        """The URL of ``feed``'s stream, at the path Alpaca serves it under.

        For example ``ws://127.0.0.1:PORT/v2/iex``, ``.../v1beta3/crypto/us``,
        ``.../v1beta1/indicative`` or ``.../v1beta1/news``.

        Raises:
            ValueError: for a name that is no feed of any market.
        """
        chosen = Feed(feed)
        return self.base_url + MARKETS[market_of_feed(chosen)].path(chosen)

    @property
    def control_url(self) -> str:
        """The URL of the JSON control socket."""
        return f"{self.base_url}{CONTROL_PATH}"

    # ------------------------------------------------------------ observation

    def stats(self) -> SimStats:
        """A snapshot of counters and connections; still available after :meth:`aclose`.

        Raises:
            LocalProtocolError: before :meth:`start`.
        """
        if self._hub is None:
            raise LocalProtocolError("the simulator has not started")
        return self._hub.stats()

    def connections(self) -> tuple[ConnectionInfo, ...]:
        """Snapshots of the remembered data connections, in id order."""
        return self.stats().connections

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float = DEFAULT_WAIT,  # noqa: ASYNC109 - a bounded wait is the contract
    ) -> SimStats:
        """Wait, without polling, until ``predicate(stats())`` holds; return that snapshot.

        Raises:
            TimeoutError: when it does not hold within ``timeout`` seconds.
        """
        return await self._require().wait_for(predicate, timeout)

    async def wait_for_connections(
        self,
        count: int,
        timeout: float = DEFAULT_WAIT,  # noqa: ASYNC109 - a bounded wait is the contract
        *,
        authenticated: bool = False,
        subscribed: bool = False,
    ) -> tuple[ConnectionInfo, ...]:
        """Wait until ``count`` data connections (open or closed) reached a stage.

        Args:
            count: how many connections must have been accepted.
            timeout: seconds to wait.
            authenticated: count only connections that authenticated.
            subscribed: count only connections that received a subscription ack.

        Returns:
            The matching connections, in id order.

        Raises:
            TimeoutError: when fewer than ``count`` match within ``timeout`` seconds.
        """

        def matching(stats: SimStats) -> tuple[ConnectionInfo, ...]:
            return tuple(
                info
                for info in stats.connections
                if (info.authenticated or not authenticated) and (info.subscribed or not subscribed)
            )

        stats = await self.wait_for(lambda stats: len(matching(stats)) >= count, timeout)
        return matching(stats)

    # ------------------------------------------------------------ serving

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path == CONTROL_PATH:
            return None
        if _feed_of(path) is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "no such stream\n")
        hub = self._require()
        refusal = hub.refusal()
        hub.attempted(refused=refusal is not None)
        if refusal is None:
            return None
        if refusal is RefuseMode.RESET:
            reset(connection.transport)
            await connection.wait_closed()  # closed: websockets sends no response at all
        return connection.respond(
            http.HTTPStatus.SERVICE_UNAVAILABLE, "connections refused by fault injection\n"
        )

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        path = urlsplit(request.path).path if request is not None else ""
        if path == CONTROL_PATH:
            await self._serve_control(connection)
            return
        feed = _feed_of(path)
        if feed is None:  # process_request answered 404 already; never reached
            return
        hub = self._require()
        await Session(hub, connection, hub.next_id(), feed).run()

    async def _serve_control(self, connection: ServerConnection) -> None:
        try:
            async for frame in connection:
                reply = await self._control_reply(frame)
                await connection.send(_json_encoder.encode(reply), text=True)
        except ConnectionClosed:
            return

    async def _control_reply(self, frame: bytes | str) -> dict[str, Any]:
        try:
            message = msgspec.json.decode(frame)
        except msgspec.DecodeError:
            return {"ok": False, "error": "a control message must be a JSON object"}
        if not isinstance(message, dict):
            return {"ok": False, "error": "a control message must be a JSON object"}
        if "query" in message:
            if message != {"query": "stats"}:
                return {"ok": False, "error": 'the only query is {"query": "stats"}'}
            return {"ok": True, "result": self.stats().to_json()}
        params = dict(message)
        fault = params.pop("fault", None)
        if not isinstance(fault, str):
            return {"ok": False, "error": 'a control message needs "fault" (or "query")'}
        try:
            result = await self.inject(fault, **params)
        except (ConfigurationError, UnknownConnectionError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "result": result}
