"""The simulator: a real ``websockets`` server on loopback that speaks Alpaca's stream protocol.

Paths:

* ``/v2/{feed}`` for ``iex``, ``sip``, ``delayed_sip`` and ``test``: market-data connections
  (see :mod:`streamfsm.sim.session` for the protocol and the assumptions it makes);
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
import math
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from streamfsm._validate import member
from streamfsm.config import Feed
from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.logs import StreamLogger
from streamfsm.sim.config import Replay, SimConfig
from streamfsm.sim.faults import (
    Fault,
    MalformedKind,
    RefuseMode,
    UnknownConnectionError,
    check_close_code,
)
from streamfsm.sim.hub import Hub, Predicate
from streamfsm.sim.session import Session, error_message, reset
from streamfsm.sim.stats import ConnectionInfo, SimStats

if TYPE_CHECKING:
    from websockets.http11 import Request, Response

__all__ = ["CONTROL_PATH", "DEFAULT_WAIT", "Simulator"]

#: The path of the JSON control socket.
CONTROL_PATH: Final = "/control"
#: Market data lives under ``/v2/{feed}`` as on Alpaca.
FEED_PATH_PREFIX: Final = "/v2/"
#: Waits in tests should fail fast on loopback; five seconds is generous there.
DEFAULT_WAIT: Final = 5.0
#: Keepalive as the websockets default: catches a client whose TCP peer vanished.
PING_INTERVAL: Final = 20.0
PING_TIMEOUT: Final = 20.0
#: Largest client message: alpaca-py fragments subscribe messages into 32 KiB frames; 1 MiB
#: holds tens of thousands of symbols.
MAX_CLIENT_MESSAGE: Final = 1 << 20
#: Close reasons must fit a control frame: 125 bytes minus the 2-byte code.
MAX_CLOSE_REASON_BYTES: Final = 123
#: Shutdown waits the close timeout plus this for clients to finish their close handshakes, then
#: resets the stragglers (a client that stopped reading never sees our close frame).
SHUTDOWN_MARGIN: Final = 0.5
#: Default close code of the ``close`` fault.
NORMAL_CLOSURE: Final = 1000
#: Default error code of the ``fail_auth`` fault: Alpaca's connection limit.
CONNECTION_LIMIT_CODE: Final = 406
#: Alpaca error codes are three-digit HTTP-like numbers.
ERROR_CODE_RANGE: Final = range(100, 1000)

#: websockets logs every frame at DEBUG, clients' auth frames included; this logger is kept
#: above DEBUG so a test run with DEBUG logging shows no secret from the simulator either.
FRAME_LOGGER: Final = logging.getLogger("streamfsm.sim.websockets")
_log = StreamLogger("streamfsm.sim", component="sim")
_E = TypeVar("_E", bound=enum.Enum)
_json_encoder: Final = msgspec.json.Encoder()


def _feed_of(path: str) -> Feed | None:
    if not path.startswith(FEED_PATH_PREFIX):
        return None
    try:
        return Feed(path[len(FEED_PATH_PREFIX) :])
    except ValueError:
        return None


def _optional_seconds(field: str, value: object) -> float | None:
    if value is None:
        return None
    return _seconds(field, value)


def _seconds(field: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(field, "a finite number of seconds >= 0", value)
    return float(value)


def _count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(field, "an integer >= 0", value)
    return value


def _error_code(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in ERROR_CODE_RANGE:
        raise ConfigurationError("code", "a three-digit error code", value)
    return value


def _connection_id(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError("connection_id", "an integer connection id or None", value)
    return value


def _rate(value: object) -> float | None:
    if value is None:
        return None
    return _seconds("rate", value)


def _reason(value: object) -> str:
    if not isinstance(value, str) or len(value.encode()) > MAX_CLOSE_REASON_BYTES:
        raise ConfigurationError("reason", "a string of at most 123 UTF-8 bytes", value)
    return value


def _message(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError("msg", "a string or None", value)
    return value


def _member(kind: type[_E], field: str, value: object) -> _E:
    return member(kind, field)(value)


def _malformed_kind(value: object) -> MalformedKind:
    return _member(MalformedKind, "kind", value)


def _refuse_mode(value: object) -> RefuseMode:
    return _member(RefuseMode, "mode", value)


class _Params:
    """Named fault parameters from a control message, type-checked one by one."""

    def __init__(self, params: Mapping[str, object]) -> None:
        self._params = dict(params)

    def take(self, name: str, default: object = None) -> object:
        return self._params.pop(name, default)

    def done(self) -> None:
        if self._params:
            raise ConfigurationError("params", "only the fault's parameters", sorted(self._params))


class Simulator:
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
        """The URL of ``feed``'s stream, e.g. ``ws://127.0.0.1:PORT/v2/iex``.

        Raises:
            ValueError: for a feed name outside ``iex``, ``sip``, ``delayed_sip``, ``test``.
        """
        return f"{self.base_url}{FEED_PATH_PREFIX}{Feed(feed).value}"

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

    # ------------------------------------------------------------ faults on connections

    def _targets(self, connection_id: int | None) -> list[Session]:
        sessions = [session for session in self._require().sessions.values() if session.is_open]
        if connection_id is None:
            return sessions
        chosen = [session for session in sessions if session.id == connection_id]
        if not chosen:
            raise UnknownConnectionError(connection_id)
        return chosen

    def _injected(self, fault: Fault, targets: list[Session], **fields: Any) -> tuple[int, ...]:
        ids = tuple(session.id for session in targets)
        _log.info("sim_fault_injected", fault=fault.value, connections=ids, **fields)
        return ids

    async def drop(self, connection_id: int | None = None) -> tuple[int, ...]:
        """Reset the TCP connections (no close frame) and wait until they are gone.

        Raises:
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        targets = self._targets(_connection_id(connection_id))
        await asyncio.gather(*(session.drop() for session in targets))
        return self._injected(Fault.DROP, targets)

    async def close_connections(
        self, code: int = NORMAL_CLOSURE, reason: str = "", connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Close connections with ``code`` and ``reason`` (1000, 1001, 1011, ...).

        Waits for the close handshake, at most the configured close timeout.

        Raises:
            ConfigurationError: for a reserved close code or a reason over 123 bytes.
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        code, reason = check_close_code(code), _reason(reason)
        targets = self._targets(_connection_id(connection_id))
        await asyncio.gather(*(session.close(code, reason) for session in targets))
        return self._injected(Fault.CLOSE, targets, code=code)

    async def mute(
        self, seconds: float | None = None, connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Stop sending anything (pings are still answered) for ``seconds`` or until unmuted.

        Raises:
            ConfigurationError: for a negative or non-finite duration.
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        duration = _optional_seconds("seconds", seconds)
        targets = self._targets(_connection_id(connection_id))
        for session in targets:
            session.mute(duration)
        return self._injected(Fault.MUTE, targets, seconds=duration)

    async def unmute(self, connection_id: int | None = None) -> tuple[int, ...]:
        """End a mute; replies held back go out, then data flows again.

        Raises:
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        targets = self._targets(_connection_id(connection_id))
        for session in targets:
            session.unmute()
        return self._injected(Fault.UNMUTE, targets)

    async def send_malformed(
        self, kind: MalformedKind | str, connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Send one malformed frame of ``kind`` (even to muted connections).

        Raises:
            ConfigurationError: for an unknown kind.
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        malformed = _malformed_kind(kind)
        targets = self._targets(_connection_id(connection_id))
        sent = await self._each(targets, lambda session: session.send_malformed(malformed))
        return self._injected(Fault.MALFORMED, sent, kind=malformed.value)

    async def send_error(
        self, code: int, msg: str | None = None, connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Send ``[{"T": "error", "code": code, "msg": msg}]`` without closing.

        ``msg`` defaults to Alpaca's documented text for ``code``.

        Raises:
            ConfigurationError: for a code outside 100-999 or a non-string message.
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        code, msg = _error_code(code), _message(msg)
        text = msg if msg is not None else error_message(code)
        targets = self._targets(_connection_id(connection_id))
        sent = await self._each(targets, lambda session: session.send_error(code, text))
        return self._injected(Fault.ERROR, sent, code=code)

    @staticmethod
    async def _each(
        targets: list[Session], action: Callable[[Session], Awaitable[None]]
    ) -> list[Session]:
        """Run ``action(session)`` on each target; skip the ones that closed meanwhile."""
        sent = []
        for session in targets:
            try:
                await action(session)
            except ConnectionClosed:
                continue
            sent.append(session)
        return sent

    # ------------------------------------------------------------ faults on the server

    async def refuse(
        self, seconds: float | None = None, mode: RefuseMode | str = RefuseMode.HTTP_503
    ) -> None:
        """Refuse new data connections for ``seconds`` (None: until :meth:`accept`).

        Open connections are not touched. The control socket is never refused.

        Raises:
            ConfigurationError: for a negative duration or an unknown mode.
        """
        duration, refuse_mode = _optional_seconds("seconds", seconds), _refuse_mode(mode)
        hub = self._require()
        now = asyncio.get_running_loop().time()
        hub.refuse(math.inf if duration is None else now + duration, refuse_mode)
        self._injected(Fault.REFUSE, [], seconds=duration, mode=refuse_mode.value)

    async def accept(self) -> None:
        """Stop refusing new connections."""
        self._require().accept()
        self._injected(Fault.ACCEPT, [])

    async def fail_auth(self, count: int = 1, code: int = CONNECTION_LIMIT_CODE) -> None:
        """Answer the next ``count`` auths that have valid credentials with error ``code``.

        The default reproduces a held slot: 406 connection limit exceeded. The connection is
        closed after each such reply, as after every failed auth. ``count=0`` cancels.

        Raises:
            ConfigurationError: for a negative count or a code outside 100-999.
        """
        self._require().fail_auth(_count("count", count), _error_code(code))
        self._injected(Fault.FAIL_AUTH, [], count=count, code=code)

    async def delay_auth(self, seconds: float) -> None:
        """Hold every auth reply back ``seconds`` from now on (0 ends the delay).

        Raises:
            ConfigurationError: for a negative or non-finite duration.
        """
        self._require().auth_delay = _seconds("seconds", seconds)
        self._injected(Fault.DELAY_AUTH, [], seconds=seconds)

    async def set_rate(self, rate: float | None) -> None:
        """Change the data rate of every connection (0: quiet; None: as fast as they read).

        Raises:
            ConfigurationError: for a negative or non-finite rate.
        """
        hub = self._require()
        hub.rate = _rate(rate)
        for session in hub.sessions.values():
            session.wake()
        hub.changed()
        self._injected(Fault.RATE, [], rate=hub.rate)

    async def set_replay(self, replay: Replay | None) -> None:
        """Replay ``replay`` on connections opened from now on (None: the random walk again)."""
        if replay is not None and not isinstance(replay, Replay):
            raise ConfigurationError("replay", "a Replay or None", replay)
        self._require().replay = replay

    async def inject(self, fault: Fault | str, **params: object) -> list[int] | None:
        """Apply a fault by name, with parameters as the control socket receives them.

        Returns:
            The ids of the connections acted on, or None for server-wide faults.

        Raises:
            ConfigurationError: for an unknown fault, an unknown parameter or a bad value.
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        name = _member(Fault, "fault", fault)
        args = _Params(params)
        target = _connection_id(args.take("connection_id"))
        ids: tuple[int, ...] | None = None
        if name is Fault.DROP:
            args.done()
            ids = await self.drop(target)
        elif name is Fault.CLOSE:
            code = check_close_code(args.take("code", NORMAL_CLOSURE))
            reason = _reason(args.take("reason", ""))
            args.done()
            ids = await self.close_connections(code, reason, target)
        elif name is Fault.MUTE:
            seconds = _optional_seconds("seconds", args.take("seconds"))
            args.done()
            ids = await self.mute(seconds, target)
        elif name is Fault.UNMUTE:
            args.done()
            ids = await self.unmute(target)
        elif name is Fault.MALFORMED:
            kind = _malformed_kind(args.take("kind", MalformedKind.GARBAGE.value))
            args.done()
            ids = await self.send_malformed(kind, target)
        elif name is Fault.ERROR:
            error_code, msg = _error_code(args.take("code")), _message(args.take("msg"))
            args.done()
            ids = await self.send_error(error_code, msg, target)
        else:
            if target is not None:
                raise ConfigurationError("connection_id", f"no connection id for {name}", target)
            await self._inject_server_fault(name, args)
        return None if ids is None else list(ids)

    async def _inject_server_fault(self, name: Fault, args: _Params) -> None:
        if name is Fault.REFUSE:
            seconds = _optional_seconds("seconds", args.take("seconds"))
            mode = _refuse_mode(args.take("mode", RefuseMode.HTTP_503.value))
            args.done()
            await self.refuse(seconds, mode)
        elif name is Fault.ACCEPT:
            args.done()
            await self.accept()
        elif name is Fault.FAIL_AUTH:
            count = _count("count", args.take("count", 1))
            code = _error_code(args.take("code", CONNECTION_LIMIT_CODE))
            args.done()
            await self.fail_auth(count, code)
        elif name is Fault.DELAY_AUTH:
            seconds = _seconds("seconds", args.take("seconds"))
            args.done()
            await self.delay_auth(seconds)
        else:
            rate = _rate(args.take("rate"))
            args.done()
            await self.set_rate(rate)

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
