"""The simulator's fault methods, on connections and on the server, as a mixin of
:class:`~streamfsm.sim.Simulator`. Each validates its parameters first (raising
:class:`~streamfsm.errors.ConfigurationError`), applies the fault on the simulator's loop and logs
it; faults on connections return the ids of the connections they acted on.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from streamfsm.errors import ConfigurationError
from streamfsm.logs import StreamLogger
from streamfsm.sim.config import Replay
from streamfsm.sim.faults import (
    CONNECTION_LIMIT_CODE,
    NORMAL_CLOSURE,
    Fault,
    MalformedKind,
    RefuseMode,
    UnknownConnectionError,
    apply_fault,
    check_close_code,
    parse_connection_id,
    parse_count,
    parse_error_code,
    parse_malformed_kind,
    parse_message,
    parse_optional_seconds,
    parse_rate,
    parse_reason,
    parse_refuse_mode,
    parse_seconds,
)
from streamfsm.sim.hub import Hub
from streamfsm.sim.session import Session
from streamfsm.sim.wire import error_message

__all__ = ["FaultInjection"]

_log = StreamLogger(component="sim")


class FaultInjection:
    """Fault injection on a running simulator; the simulator supplies :meth:`_require`."""

    def _require(self) -> Hub:
        """The running simulator's hub (raises LocalProtocolError when not running)."""
        raise NotImplementedError

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
        targets = self._targets(parse_connection_id(connection_id))
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
        code, reason = check_close_code(code), parse_reason(reason)
        targets = self._targets(parse_connection_id(connection_id))
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
        duration = parse_optional_seconds("seconds", seconds)
        targets = self._targets(parse_connection_id(connection_id))
        for session in targets:
            session.mute(duration)
        return self._injected(Fault.MUTE, targets, seconds=duration)

    async def unmute(self, connection_id: int | None = None) -> tuple[int, ...]:
        """End a mute; replies held back go out, then data flows again.

        Raises:
            UnknownConnectionError: when ``connection_id`` is not an open data connection.
        """
        targets = self._targets(parse_connection_id(connection_id))
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
        malformed = parse_malformed_kind(kind)
        targets = self._targets(parse_connection_id(connection_id))
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
        code, msg = parse_error_code(code), parse_message(msg)
        text = msg if msg is not None else error_message(code)
        targets = self._targets(parse_connection_id(connection_id))
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
        duration, refuse_mode = parse_optional_seconds("seconds", seconds), parse_refuse_mode(mode)
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
        self._require().fail_auth(parse_count("count", count), parse_error_code(code))
        self._injected(Fault.FAIL_AUTH, [], count=count, code=code)

    async def delay_auth(self, seconds: float) -> None:
        """Hold every auth reply back ``seconds`` from now on (0 ends the delay).

        Raises:
            ConfigurationError: for a negative or non-finite duration.
        """
        self._require().auth_delay = parse_seconds("seconds", seconds)
        self._injected(Fault.DELAY_AUTH, [], seconds=seconds)

    async def set_rate(self, rate: float | None) -> None:
        """Change the data rate of every connection (0: quiet; None: as fast as they read).

        Raises:
            ConfigurationError: for a negative or non-finite rate.
        """
        hub = self._require()
        hub.rate = parse_rate(rate)
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
        return await apply_fault(self, fault, params)
