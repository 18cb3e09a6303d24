"""A replay server that never sets the pace: pre-encoded, pre-deflated frames, written in bulk.

The throughput benchmark compares clients by their own CPU per message, so the server must
always be ahead of the fastest client: if the client waits for frames, it wakes up once per
frame instead of once per socket read, and its CPU per message measures the server. This server
therefore does no per-frame work at all while streaming. At start it builds the whole run once:

- the msgpack frames of 100 quotes on 4 symbols (:func:`benchmarks.server.build_frames`);
- the WebSocket frames around them, twice: deflated with one compressor for the whole run
  (permessage-deflate with context takeover, as Alpaca negotiates it) and plain (for clients
  that do not offer the extension, such as picows);

and per connection it speaks just enough of Alpaca's protocol (welcome, authenticated,
subscription ack, all uncompressed) before it writes the prepared bytes in large chunks,
honouring the socket's flow control. Client frames are parsed only to answer pings and closes;
their payloads (auth, subscribe) are not checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib
from typing import Final

import msgspec

from benchmarks.server import SYMBOLS, build_frames

__all__ = ["ReplayServer"]

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Bytes written per drain: large enough that the server's per-write cost is negligible.
WRITE_CHUNK: Final = 256 * 1024
_OP_TEXT: Final = 0x1
_OP_BINARY: Final = 0x2
_OP_CLOSE: Final = 0x8
_OP_PING: Final = 0x9
_OP_PONG: Final = 0xA
_FIN: Final = 0x80
_RSV1: Final = 0x40
_EMPTY_BLOCK: Final = b"\x00\x00\xff\xff"
_SHORT: Final = 126
_MEDIUM: Final = 1 << 16
_MEDIUM_MARK: Final = 126
_LONG_MARK: Final = 127
_MASKED: Final = 0x80
_LENGTH: Final = 0x7F
_OPCODE: Final = 0x0F
_HEADER: Final = 2
_MASK_BYTES: Final = 4
_HTTP_END: Final = b"\r\n\r\n"


def _frame(opcode: int, payload: bytes, *, compressed: bool = False) -> bytes:
    """One unmasked server frame."""
    first = _FIN | opcode | (_RSV1 if compressed else 0)
    size = len(payload)
    if size < _SHORT:
        header = struct.pack("!BB", first, size)
    elif size < _MEDIUM:
        header = struct.pack("!BBH", first, _MEDIUM_MARK, size)
    else:
        header = struct.pack("!BBQ", first, _LONG_MARK, size)
    return header + payload


def build_stream(messages: int) -> tuple[bytes, bytes]:
    """The data frames of a whole run: (deflated with context takeover, plain)."""
    frames, repeat = build_frames(messages)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated: list[bytes] = []
    plain: list[bytes] = []
    for _ in range(repeat):
        for payload in frames:
            plain.append(_frame(_OP_BINARY, payload))
            data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            deflated.append(_frame(_OP_BINARY, data.removesuffix(_EMPTY_BLOCK), compressed=True))
    return b"".join(deflated), b"".join(plain)


def _control(message: dict[str, object]) -> bytes:
    return _frame(_OP_BINARY, msgspec.msgpack.encode([message]))


_CONNECTED: Final = _control({"T": "success", "msg": "connected"})
_AUTHENTICATED: Final = _control({"T": "success", "msg": "authenticated"})
_ACK: Final = _control(
    {"T": "subscription", "trades": [], "quotes": list(SYMBOLS), "bars": [], "updatedBars": []}
)


class _ClientFrames:
    """Reads masked client frames; answers pings, reports closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def message(self) -> bool:
        """Read one whole client message (any fragments); False when the client closed."""
        while True:
            head = await self.reader.readexactly(_HEADER)
            opcode, size = head[0] & _OPCODE, head[1] & _LENGTH
            if size == _MEDIUM_MARK:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == _LONG_MARK:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            mask = await self.reader.readexactly(_MASK_BYTES) if head[1] & _MASKED else b""
            payload = await self.reader.readexactly(size)
            if mask:
                payload = bytes(byte ^ mask[i % _MASK_BYTES] for i, byte in enumerate(payload))
            if opcode == _OP_PING:
                self.writer.write(_frame(_OP_PONG, payload))
                continue
            if opcode == _OP_CLOSE:
                self.writer.write(_frame(_OP_CLOSE, payload[:2]))
                return False
            if head[0] & _FIN and opcode != _OP_PONG:
                return True


class ReplayServer:
    """Serves the prepared run to every connection on ``ws://127.0.0.1:PORT/v2/iex``."""

    def __init__(self, messages: int) -> None:
        self.deflated, self.plain = build_stream(messages)
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; return the URL."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v2/iex"

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            deflate = await self._upgrade(reader, writer)
            frames = _ClientFrames(reader, writer)
            writer.write(_CONNECTED)
            if not await frames.message():  # auth
                return
            writer.write(_AUTHENTICATED)
            if not await frames.message():  # subscribe
                return
            writer.write(_ACK)
            drain = asyncio.create_task(self._drain_client(frames))
            try:
                stream = memoryview(self.deflated if deflate else self.plain)
                for start in range(0, len(stream), WRITE_CHUNK):
                    writer.write(stream[start : start + WRITE_CHUNK])
                    await writer.drain()
                await drain
            finally:
                drain.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: its run is over
        finally:
            writer.close()

    @staticmethod
    async def _drain_client(frames: _ClientFrames) -> None:
        while await frames.message():
            continue

    @staticmethod
    async def _upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer the HTTP upgrade; True when permessage-deflate was negotiated."""
        request = await reader.readuntil(_HTTP_END)
        headers: dict[str, str] = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(
            hashlib.sha1(headers["sec-websocket-key"].encode() + _GUID).digest()
        ).decode()
        deflate = "permessage-deflate" in headers.get("sec-websocket-extensions", "")
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept}",
        ]
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return deflate
