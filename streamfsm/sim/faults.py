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

import enum
from typing import Any, Final

from streamfsm.config import Encoding
from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.sim import wire

__all__ = [
    "Fault",
    "MalformedKind",
    "RefuseMode",
    "UnknownConnectionError",
    "check_close_code",
    "malformed_frame",
]


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
