"""The server side of Alpaca's wire format, written independently of the client's codec.

Server frames are arrays of message objects. The handshake's ``Content-Type`` picks the encoding:
``application/msgpack`` gives binary msgpack frames whose timestamps are msgpack Timestamp
extensions (type -1, nanosecond precision), anything else gives JSON text frames whose timestamps
are RFC 3339 strings with nanoseconds. Client frames are accepted in either encoding, whatever
was negotiated. No I/O here.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from streamfsm.config import Encoding
from streamfsm.errors import SERVER_ERRORS

__all__ = [
    "MSGPACK_CONTENT_TYPE",
    "SEQ_KEY",
    "DecodeError",
    "Stamp",
    "authenticated",
    "connected",
    "decode",
    "encode",
    "encoding_for",
    "error",
    "error_message",
    "msgpack_timestamp",
    "rfc3339",
    "stamp_for",
]

#: The media type that selects msgpack frames.
MSGPACK_CONTENT_TYPE: Final = "application/msgpack"
#: The non-Alpaca key carrying the simulator's per-channel, per-symbol sequence number.
SEQ_KEY: Final = "_seq"
#: Text for a code Alpaca does not document (only injected errors can carry one).
UNDOCUMENTED_ERROR: Final = "error"
#: msgpack's reserved extension type for timestamps.
_TIMESTAMP_EXT: Final = -1
_NS_PER_SECOND: Final = 1_000_000_000
#: timestamp64 holds the seconds in 34 bits (valid until the year 2514).
_TIMESTAMP64_SECONDS_BITS: Final = 34

#: Turns epoch nanoseconds into the wire form of ``t`` for one encoding.
Stamp = Callable[[int], object]

_msgpack_encoder: Final = msgspec.msgpack.Encoder()
_json_encoder: Final = msgspec.json.Encoder()
_msgpack_decoder: Final = msgspec.msgpack.Decoder()
_json_decoder: Final = msgspec.json.Decoder()


class DecodeError(ValueError):
    """A client frame is neither valid JSON nor valid msgpack."""


def encoding_for(content_type: str | None) -> Encoding:
    """The frame encoding a handshake's ``Content-Type`` header asks for (JSON by default)."""
    if content_type is None:
        return Encoding.JSON
    media_type = content_type.split(";", 1)[0].strip().lower()
    return Encoding.MSGPACK if media_type == MSGPACK_CONTENT_TYPE else Encoding.JSON


def msgpack_timestamp(ns: int) -> msgspec.msgpack.Ext:
    """Epoch nanoseconds as a msgpack timestamp64 extension (what Alpaca sends)."""
    seconds, nanoseconds = divmod(ns, _NS_PER_SECOND)
    return msgspec.msgpack.Ext(
        _TIMESTAMP_EXT, struct.pack(">Q", (nanoseconds << _TIMESTAMP64_SECONDS_BITS) | seconds)
    )


def rfc3339(ns: int) -> str:
    """Epoch nanoseconds as RFC 3339 UTC with nine fractional digits, as Alpaca's JSON has."""
    seconds, nanoseconds = divmod(ns, _NS_PER_SECOND)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanoseconds:09d}Z"


def stamp_for(encoding: Encoding) -> Stamp:
    """The timestamp converter for ``encoding``."""
    return msgpack_timestamp if encoding is Encoding.MSGPACK else rfc3339


def encode(messages: Sequence[Mapping[str, Any]] | Mapping[str, Any], encoding: Encoding) -> bytes:
    """Encode a frame (normally a list of messages) as msgpack or as UTF-8 JSON bytes.

    Send JSON bytes as a text frame. A bare mapping is encoded as is: only faults do that.
    """
    if encoding is Encoding.MSGPACK:
        return _msgpack_encoder.encode(messages)
    return _json_encoder.encode(messages)


def decode(frame: bytes | str) -> Any:
    """Decode a client frame: text as JSON, binary as msgpack and, failing that, as JSON.

    Raises:
        DecodeError: when the frame is valid in neither encoding.
    """
    try:
        if isinstance(frame, str):
            return _json_decoder.decode(frame)
        try:
            return _msgpack_decoder.decode(frame)
        except msgspec.DecodeError:
            return _json_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from exc


def connected() -> list[dict[str, Any]]:
    """The welcome frame sent as soon as the WebSocket opens."""
    return [{"T": "success", "msg": "connected"}]


def authenticated() -> list[dict[str, Any]]:
    """The reply to a successful auth."""
    return [{"T": "success", "msg": "authenticated"}]


def error(code: int, message: str) -> list[dict[str, Any]]:
    """An error frame; control messages always travel alone in their array."""
    return [{"T": "error", "code": code, "msg": message}]


def error_message(code: int) -> str:
    """Alpaca's documented text for ``code`` (from :data:`streamfsm.errors.SERVER_ERRORS`)."""
    spec = SERVER_ERRORS.get(code)
    return spec.message if spec is not None else UNDOCUMENTED_ERROR
