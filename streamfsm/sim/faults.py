"""The faults a simulator can inject, their names on the control endpoint, and their payloads.

====================  ===============================================  ==========================
fault                 effect                                           parameters
====================  ===============================================  ==========================
``drop``              TCP reset (``SO_LINGER`` 0, then abort)          connection_id
``close``             close handshake with a chosen code and reason    code, reason, connection_id
``mute``              stay open, send nothing (pings still answered)   seconds, connection_id
``unmute``            end a mute                                       connection_id
``refuse``            refuse new connections (HTTP 503 or TCP reset)   seconds, mode
``accept``            stop refusing                                    (none)
``fail_auth``         answer the next ``count`` auths with ``code``    count, code
``delay_auth``        hold every auth reply back ``seconds``           seconds
``malformed``         send one malformed frame of ``kind``             kind, connection_id
``error``             send ``{"T":"error","code":..,"msg":..}``        code, msg, connection_id
``rate``              change the data rate (0: quiet, null: max)       rate
====================  ===============================================  ==========================

Faults on connections act on the open data connections: all of them, or the one whose id is
given. Everything here is pure; the simulator applies the faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import socket
import struct
from collections.abc import Mapping
from typing import Any, Final, Protocol, TypeVar

from streamfsm._validate import member
from streamfsm.config import Encoding
from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.sim import wire

__all__ = [
    "CONNECTION_LIMIT_CODE",
    "NORMAL_CLOSURE",
    "Fault",
    "FaultTarget",
    "MalformedKind",
    "Params",
    "RefuseMode",
    "UnknownConnectionError",
    "apply_fault",
    "check_close_code",
    "malformed_frame",
    "parse_connection_id",
    "parse_count",
    "parse_error_code",
    "parse_malformed_kind",
    "parse_message",
    "parse_optional_seconds",
    "parse_rate",
    "parse_reason",
    "parse_refuse_mode",
    "parse_seconds",
    "reset",
]

#: struct linger {int l_onoff; int l_linger;} = {1, 0}: close() sends RST, not FIN.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)

#: Close reasons must fit a control frame: 125 bytes minus the 2-byte code.
MAX_CLOSE_REASON_BYTES: Final = 123
#: Default close code of the ``close`` fault.
NORMAL_CLOSURE: Final = 1000
#: Default error code of the ``fail_auth`` fault: Alpaca's connection limit.
CONNECTION_LIMIT_CODE: Final = 406
#: Alpaca error codes are three-digit HTTP-like numbers.
ERROR_CODE_RANGE: Final = range(100, 1000)
_E = TypeVar("_E", bound=enum.Enum)


class Fault(enum.StrEnum):
    """Fault names, as the control endpoint and the CLI spell them."""

    DROP = "drop"
    CLOSE = "close"
    MUTE = "mute"
    UNMUTE = "unmute"
    REFUSE = "refuse"
    ACCEPT = "accept"
    FAIL_AUTH = "fail_auth"
    DELAY_AUTH = "delay_auth"
    MALFORMED = "malformed"
    ERROR = "error"
    RATE = "rate"


class MalformedKind(enum.StrEnum):
    """Ways one frame can break the protocol.

    ``garbage``: bytes that are neither msgpack nor JSON. ``truncated``: a valid data frame cut
    in half. ``bare_object``: a quote not wrapped in an array. ``unknown_type``: a message whose
    ``T`` no client knows. ``missing_fields``: a quote with only ``T`` and ``S``.
    """

    GARBAGE = "garbage"
    TRUNCATED = "truncated"
    BARE_OBJECT = "bare_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELDS = "missing_fields"


class RefuseMode(enum.StrEnum):
    """How a refused connection is turned away.

    ``http_503``: the HTTP upgrade is answered 503 Service Unavailable (a load balancer's way).
    ``reset``: the TCP connection is reset before any HTTP response (a crashed server's way).
    """

    HTTP_503 = "http_503"
    RESET = "reset"


class UnknownConnectionError(LocalProtocolError, LookupError):
    """A fault named a connection id that is not an open data connection.

    Attributes:
        connection_id: the id that was asked for.
    """

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id
        super().__init__(f"no open data connection with id {connection_id}")


#: Close codes an endpoint may send (RFC 6455 section 7.4; 1004-1006 and 1015 are reserved).
_SENDABLE_CLOSE_CODES: Final = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})
_APPLICATION_CLOSE_CODES: Final = range(3000, 5000)
#: A frame that is neither JSON nor, with the 0xc1 bytes msgpack never uses in front, msgpack.
#: Text frames must be UTF-8, so JSON connections get the printable part only.
_GARBAGE_TEXT: Final = b"\x00 not a frame {"
_GARBAGE_BINARY: Final = b"\xc1\xc1" + _GARBAGE_TEXT
#: A type letter no Alpaca client dispatches.
_UNKNOWN_TYPE: Final = "zz"


def reset(transport: asyncio.Transport) -> None:
    """Abort a TCP connection with a reset (RST), dropping unsent data.

    A connection already closing is simply aborted: its socket may be shut down already.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and not transport.is_closing():
        # OSError: the peer closed the socket meanwhile; aborting is still what is asked.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


def check_close_code(code: object) -> int:
    """Return ``code`` if a server may send it in a close frame.

    Raises:
        ConfigurationError: for reserved or out-of-range codes (1005, 1006, 2000, ...).
    """
    sendable = code in _SENDABLE_CLOSE_CODES or code in _APPLICATION_CLOSE_CODES
    if isinstance(code, int) and not isinstance(code, bool) and sendable:
        return code
    raise ConfigurationError(
        "code", "a sendable close code (1000-1003, 1007-1014, 3000-4999)", code
    )


def _sample_quote(symbol: str, stamp: wire.Stamp, now_ns: int) -> dict[str, Any]:
    return {
        "T": "q",
        "S": symbol,
        "bx": "V",
        "bp": 100.0,
        "bs": 1,
        "ax": "V",
        "ap": 100.01,
        "as": 1,
        "c": ["R"],
        "z": "C",
        "t": stamp(now_ns),
    }


def malformed_frame(
    kind: MalformedKind, encoding: Encoding, symbol: str, now_ns: int
) -> tuple[bytes, bool]:
    """One malformed frame for a connection that negotiated ``encoding``.

    Args:
        kind: what is wrong with it.
        encoding: the connection's encoding (the frame is broken in that encoding).
        symbol: the symbol it pretends to be about; pick a subscribed one to reach handlers.
        now_ns: the timestamp it carries, epoch nanoseconds.

    Returns:
        The payload and whether to send it as a text frame.
    """
    text = encoding is Encoding.JSON
    stamp = wire.stamp_for(encoding)
    if kind is MalformedKind.GARBAGE:
        return (_GARBAGE_TEXT if text else _GARBAGE_BINARY), text
    if kind is MalformedKind.TRUNCATED:
        whole = wire.encode([_sample_quote(symbol, stamp, now_ns)], encoding)
        return whole[: len(whole) // 2], text
    if kind is MalformedKind.BARE_OBJECT:
        return wire.encode(_sample_quote(symbol, stamp, now_ns), encoding), text
    if kind is MalformedKind.UNKNOWN_TYPE:
        return wire.encode([{"T": _UNKNOWN_TYPE, "S": symbol, "t": stamp(now_ns)}], encoding), text
    return wire.encode([{"T": "q", "S": symbol}], encoding), text


# ---------------------------------------------------------------- control parameters


def parse_optional_seconds(field: str, value: object) -> float | None:
    if value is None:
        return None
    return parse_seconds(field, value)


def parse_seconds(field: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(field, "a finite number of seconds >= 0", value)
    return float(value)


def parse_count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(field, "an integer >= 0", value)
    return value


def parse_error_code(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in ERROR_CODE_RANGE:
        raise ConfigurationError("code", "a three-digit error code", value)
    return value


def parse_connection_id(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError("connection_id", "an integer connection id or None", value)
    return value


def parse_rate(value: object) -> float | None:
    if value is None:
        return None
    return parse_seconds("rate", value)


def parse_reason(value: object) -> str:
    if not isinstance(value, str) or len(value.encode()) > MAX_CLOSE_REASON_BYTES:
        raise ConfigurationError("reason", "a string of at most 123 UTF-8 bytes", value)
    return value


def parse_message(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError("msg", "a string or None", value)
    return value


def parse_member(kind: type[_E], field: str, value: object) -> _E:
    return member(kind, field)(value)


def parse_malformed_kind(value: object) -> MalformedKind:
    return parse_member(MalformedKind, "kind", value)


def parse_refuse_mode(value: object) -> RefuseMode:
    return parse_member(RefuseMode, "mode", value)


class Params:
    """Named fault parameters from a control message, type-checked one by one."""

    def __init__(self, params: Mapping[str, object]) -> None:
        self._params = dict(params)

    def take(self, name: str, default: object = None) -> object:
        return self._params.pop(name, default)

    def done(self) -> None:
        if self._params:
            raise ConfigurationError("params", "only the fault's parameters", sorted(self._params))


# ---------------------------------------------------------------- applying faults by name


class FaultTarget(Protocol):
    """The simulator's fault methods, as :func:`apply_fault` calls them."""

    async def drop(self, connection_id: int | None = None) -> tuple[int, ...]: ...
    async def close_connections(
        self, code: int = NORMAL_CLOSURE, reason: str = "", connection_id: int | None = None
    ) -> tuple[int, ...]: ...
    async def mute(
        self, seconds: float | None = None, connection_id: int | None = None
    ) -> tuple[int, ...]: ...
    async def unmute(self, connection_id: int | None = None) -> tuple[int, ...]: ...
    async def send_malformed(
        self, kind: MalformedKind | str, connection_id: int | None = None
    ) -> tuple[int, ...]: ...
    async def send_error(
        self, code: int, msg: str | None = None, connection_id: int | None = None
    ) -> tuple[int, ...]: ...
    async def refuse(
        self, seconds: float | None = None, mode: RefuseMode | str = RefuseMode.HTTP_503
    ) -> None: ...
    async def accept(self) -> None: ...
    async def fail_auth(self, count: int = 1, code: int = CONNECTION_LIMIT_CODE) -> None: ...
    async def delay_auth(self, seconds: float) -> None: ...
    async def set_rate(self, rate: float | None) -> None: ...


async def apply_fault(
    sim: FaultTarget, fault: Fault | str, params: Mapping[str, object]
) -> list[int] | None:
    """Apply a fault to ``sim`` by name, with parameters as the control socket receives them.

    Returns:
        The ids of the connections acted on, or None for server-wide faults.

    Raises:
        ConfigurationError: for an unknown fault, an unknown parameter or a bad value.
        UnknownConnectionError: when ``connection_id`` is not an open data connection.
    """
    name = parse_member(Fault, "fault", fault)
    args = Params(params)
    target = parse_connection_id(args.take("connection_id"))
    ids: tuple[int, ...] | None = None
    if name is Fault.DROP:
        args.done()
        ids = await sim.drop(target)
    elif name is Fault.CLOSE:
        code = check_close_code(args.take("code", NORMAL_CLOSURE))
        reason = parse_reason(args.take("reason", ""))
        args.done()
        ids = await sim.close_connections(code, reason, target)
    elif name is Fault.MUTE:
        seconds = parse_optional_seconds("seconds", args.take("seconds"))
        args.done()
        ids = await sim.mute(seconds, target)
    elif name is Fault.UNMUTE:
        args.done()
        ids = await sim.unmute(target)
    elif name is Fault.MALFORMED:
        kind = parse_malformed_kind(args.take("kind", MalformedKind.GARBAGE.value))
        args.done()
        ids = await sim.send_malformed(kind, target)
    elif name is Fault.ERROR:
        error_code, msg = parse_error_code(args.take("code")), parse_message(args.take("msg"))
        args.done()
        ids = await sim.send_error(error_code, msg, target)
    else:
        if target is not None:
            raise ConfigurationError("connection_id", f"no connection id for {name}", target)
        await _server_fault(sim, name, args)
    return None if ids is None else list(ids)


async def _server_fault(sim: FaultTarget, name: Fault, args: Params) -> None:
    if name is Fault.REFUSE:
        seconds = parse_optional_seconds("seconds", args.take("seconds"))
        mode = parse_refuse_mode(args.take("mode", RefuseMode.HTTP_503.value))
        args.done()
        await sim.refuse(seconds, mode)
    elif name is Fault.ACCEPT:
        args.done()
        await sim.accept()
    elif name is Fault.FAIL_AUTH:
        count = parse_count("count", args.take("count", 1))
        code = parse_error_code(args.take("code", CONNECTION_LIMIT_CODE))
        args.done()
        await sim.fail_auth(count, code)
    elif name is Fault.DELAY_AUTH:
        seconds = parse_seconds("seconds", args.take("seconds"))
        args.done()
        await sim.delay_auth(seconds)
    else:
        rate = parse_rate(args.take("rate"))
        args.done()
        await sim.set_rate(rate)
