"""One WebSocket connection over picows: the faster transport, ``StreamConfig(transport="picows")``.

It has the interface and the duties of :class:`~streamfsm._aio.transport.WebSocketTransport`:
whole messages out of :meth:`PicowsTransport.recv` (fragments reassembled), fragmented sends,
the size limit, keepalive pings, the close handshake within ``close_timeout``, and every failure
as a :class:`~streamfsm.errors.TransportError` subclass.

picows parses frames in C and calls :class:`_Listener` per frame from the protocol's
``data_received``. Keepalive is picows' own periodic ping; it requires the pong deadline to be
at most the interval, so the deadline is ``min(ping_timeout, ping_interval)``. picows knows no
extensions, so permessage-deflate (RFC 7692) is done here: the client offers it as websockets
does, reads the server's answer, and inflates messages whose first frame has RSV1 set with one
``zlib`` inflater kept for the whole connection (context takeover) unless the server said
``server_no_context_takeover``. Messages are sent uncompressed, which the extension allows. When
the frames waiting for :meth:`~PicowsTransport.recv` exceed ``receive_queue_frames`` the socket
stops reading until half of them are taken, so TCP pushes back as with websockets.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import zlib
from collections.abc import Mapping, Sequence
from typing import Final

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSError,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)
from picows.url import WSParsedURL
from picows.version import __version__ as picows_version

from streamfsm.config import StreamConfig
from streamfsm.errors import ConnectionClosedError, ConnectTimeoutError, TransportError

__all__ = ["PicowsTransport", "parse_deflate"]

#: picows logs at DEBUG on this logger; it is kept above DEBUG so no frame is ever logged.
FRAME_LOGGER: Final = logging.getLogger("streamfsm.picows")
USER_AGENT: Final = f"streamfsm picows/{picows_version}"
#: What the client offers, as websockets does: deflate, and a window the server may shrink.
DEFLATE_OFFER: Final = "permessage-deflate; client_max_window_bits"
_EMPTY_BLOCK: Final = b"\x00\x00\xff\xff"
_DEFAULT_WBITS: Final = zlib.MAX_WBITS
#: The close code for a message over ``max_frame_bytes`` and for text that is not UTF-8.
_TOO_BIG: Final = WSCloseCode.MESSAGE_TOO_BIG
_BAD_TEXT: Final = WSCloseCode.INVALID_TEXT
_PROTOCOL: Final = WSCloseCode.PROTOCOL_ERROR


def parse_deflate(header: str | None) -> tuple[bool, int, bool]:
    """Read the server's ``Sec-WebSocket-Extensions`` answer.

    Returns:
        (deflate accepted, the server's window bits, whether it resets its context per message).

    Raises:
        TransportError: when the server answers with an extension or a parameter that was not
            offered (RFC 7692 says the client must then fail the connection).
    """
    if not header:
        return False, _DEFAULT_WBITS, False
    parts = [part.strip() for part in header.split(";")]
    if parts[0] != "permessage-deflate" or "," in header:
        raise TransportError(f"the server accepted an extension that was not offered: {header}")
    wbits, no_takeover = _DEFAULT_WBITS, False
    for parameter in parts[1:]:
        name, _, value = parameter.partition("=")
        name = name.strip()
        if name == "server_no_context_takeover":
            no_takeover = True
        elif name == "server_max_window_bits" and value.strip().isdigit():
            wbits = int(value.strip())
        elif name not in ("client_no_context_takeover", "client_max_window_bits"):
            raise TransportError(f"unexpected permessage-deflate parameter: {parameter}")
    return True, wbits, no_takeover


class _Listener(WSListener):
    """picows' per-frame callbacks, handed to the transport that owns it."""

    def __init__(self, owner: PicowsTransport) -> None:
        self.owner = owner

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.owner._on_connected(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.owner._on_frame(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.owner._on_disconnected(transport)


class PicowsTransport:
    """An open WebSocket session over picows."""

    def __init__(self, config: StreamConfig) -> None:
        self._limit = config.max_frame_bytes
        self._close_timeout = config.close_timeout
        self._high_water = config.receive_queue_frames
        self._messages: collections.deque[bytes | str] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._transport: WSTransport | None = None
        self._error: ConnectionClosedError | None = None
        #: Set when the server's upgrade answer is unacceptable (an extension not offered).
        self._refused: TransportError | None = None
        #: Set when open() gave up (cancelled, timed out) before picows finished the handshake.
        self._abandoned = False
        #: The TCP socket handed to picows, until the handshake completes.
        self._socket: socket.socket | None = None
        self._paused = False
        self._inflater: zlib._Decompress | None = None
        self._wbits = _DEFAULT_WBITS
        self._reset_context = False
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._part_type = WSMsgType.BINARY
        self._part_compressed = False

    @classmethod
    async def open(
        cls, url: str, config: StreamConfig, headers: Mapping[str, str]
    ) -> PicowsTransport:
        """Connect to ``url``, complete the WebSocket handshake and negotiate deflate.

        Raises:
            ConnectTimeoutError: when it takes longer than ``config.connect_timeout``.
            TransportError: when the TCP connection or the HTTP upgrade fails.
        """
        if FRAME_LOGGER.level < logging.INFO:
            FRAME_LOGGER.setLevel(logging.INFO)
        self = cls(config)
        interval = config.ping_interval
        # picows wants the pong deadline within the interval; websockets allows it longer.
        reply = min(config.ping_timeout or interval or 0, interval or 0)
        try:
            async with asyncio.timeout(config.connect_timeout):
                transport, _listener = await ws_connect(
                    lambda: _Listener(self),
                    url,
                    websocket_handshake_timeout=config.connect_timeout,
                    logger_name=FRAME_LOGGER,
                    enable_auto_ping=interval is not None,
                    auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
                    auto_ping_idle_timeout=interval or 0,
                    auto_ping_reply_timeout=reply,
                    max_frame_size=config.max_frame_bytes,
                    socket_factory=self._connect_socket,
                    extra_headers={
                        **headers,
                        "User-Agent": USER_AGENT,
                        "Sec-WebSocket-Extensions": DEFLATE_OFFER,
                    },
                )
        except BaseException as exc:
            # Cancelled or failed: a handshake that completes later is dropped at once, and one
            # still in flight loses its socket (picows keeps it open otherwise).
            self._abandoned = True
            self.abort()
            self._shut_socket()
            if isinstance(exc, TimeoutError):
                raise ConnectTimeoutError("connect", config.connect_timeout) from exc
            if isinstance(exc, OSError | WSError | ValueError):
                raise TransportError(f"cannot open {url}: {type(exc).__name__}: {exc}") from exc
            raise
        if self._refused is not None:
            transport.disconnect(graceful=False)
            raise self._refused
        return self

    async def _connect_socket(self, url: WSParsedURL) -> socket.socket:
        """Connect a TCP socket for picows, and keep it, so an abandoned handshake can end it.

        Raises:
            OSError: when no address of the host accepts the connection.
        """
        loop = asyncio.get_running_loop()
        addresses = await loop.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
        failure: OSError | None = None
        for family, kind, proto, _name, address in addresses:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            except BaseException:
                sock.close()
                raise
            self._socket = sock
            return sock
        raise failure or OSError(f"no address for {url.host}")

    def _shut_socket(self) -> None:
        """End the TCP connection of a handshake nobody waits for; its transport then closes."""
        sock, self._socket = self._socket, None
        if sock is not None and self._transport is None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------ the interface

    async def recv(self) -> bytes | str:
        """The next whole message (fragments reassembled, inflated).

        Raises:
            ConnectionClosedError: when the session ended, with the close code when there was one.
        """
        messages = self._messages
        while not messages:
            if self._error is not None:
                raise self._error
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = messages.popleft()
        if self._paused and len(messages) <= self._high_water // 2:
            self._paused = False
            if self._transport is not None:
                self._transport.underlying_transport.resume_reading()
        return message

    async def send(self, fragments: Sequence[bytes | str]) -> None:
        """Send one message, fragmented into ``fragments`` when there are several.

        Raises:
            ConnectionClosedError: when the session is already gone.
        """
        transport = self._transport
        if self._error is not None or transport is None or transport.is_close_frame_sent:
            raise self._error or ConnectionClosedError(None)
        kind = WSMsgType.TEXT if isinstance(fragments[0], str) else WSMsgType.BINARY
        last = len(fragments) - 1
        for index, fragment in enumerate(fragments):
            payload = fragment.encode() if isinstance(fragment, str) else fragment
            transport.send(kind if index == 0 else WSMsgType.CONTINUATION, payload, index == last)

    async def close(self) -> None:
        """Close politely within ``close_timeout``, then drop the TCP connection; idempotent.

        The TCP connection is gone when this returns or raises, cancellation included. A picows
        protocol failure (a frame over ``max_frame_bytes``) is not raised: recv() reported it.
        """
        transport = self._transport
        if transport is None:
            return
        try:
            if not transport.is_close_frame_sent and not transport.is_disconnected:
                transport.send_close(WSCloseCode.OK)
            # Awaited even when disconnected: it collects picows' outcome (unretrieved otherwise).
            async with asyncio.timeout(self._close_timeout):
                await transport.wait_disconnected()
        except (TimeoutError, WSError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close handshake."""
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.disconnect(graceful=False)

    # ------------------------------------------------------------ picows callbacks

    def _on_connected(self, transport: WSTransport) -> None:
        """The upgrade succeeded: read the extension answer before the first frame arrives."""
        self._transport = transport
        self._socket = None  # the transport owns it now
        if self._abandoned:
            transport.disconnect(graceful=False)
            return
        try:
            answer = transport.response.headers.get("Sec-WebSocket-Extensions")
            deflate, self._wbits, self._reset_context = parse_deflate(answer)
        except TransportError as error:
            self._refused = error
            return
        if deflate:
            self._inflater = zlib.decompressobj(wbits=-self._wbits)

    def _on_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.BINARY or kind is WSMsgType.TEXT:
            if frame.payload_size > self._limit:  # picows checks too, but not on every path
                self._fail(transport, _TOO_BIG, "message too big")
                return
            if frame.fin and not self._parts:
                if frame.rsv1:
                    self._deliver(transport, kind, [frame.get_payload_as_bytes()], True)
                elif kind is WSMsgType.BINARY:
                    self._push(frame.get_payload_as_bytes())
                else:
                    self._deliver(transport, kind, [frame.get_payload_as_bytes()], False)
                return
            self._parts, self._parts_size = [], 0
            self._part_type, self._part_compressed = kind, frame.rsv1
            self._add_part(transport, frame)
        elif kind is WSMsgType.CONTINUATION:
            self._add_part(transport, frame)
        elif kind is WSMsgType.CLOSE:
            self._closed_by_peer(transport, frame)

    def _add_part(self, transport: WSTransport, frame: WSFrame) -> None:
        self._parts_size += frame.payload_size
        if self._parts_size > self._limit:
            self._fail(transport, _TOO_BIG, "message too big")
            return
        self._parts.append(frame.get_payload_as_bytes())
        if frame.fin:
            parts, self._parts = self._parts, []
            self._deliver(transport, self._part_type, parts, self._part_compressed)

    def _deliver(
        self, transport: WSTransport, kind: WSMsgType, parts: list[bytes], compressed: bool
    ) -> None:
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        if compressed:
            if self._inflater is None:
                self._fail(transport, _PROTOCOL, "a compressed message without deflate")
                return
            try:
                inflated = self._inflate(self._inflater, payload)
            except zlib.error:
                self._fail(transport, _PROTOCOL, "decompression failed")
                return
            if inflated is None:
                self._fail(transport, _TOO_BIG, "message too big once inflated")
                return
            payload = inflated
        if kind is WSMsgType.TEXT:
            try:
                self._push(payload.decode())
            except UnicodeDecodeError:
                self._fail(transport, _BAD_TEXT, "text message is not UTF-8")
            return
        self._push(payload)

    def _inflate(self, inflater: zlib._Decompress, payload: bytes) -> bytes | None:
        """The inflated message, or None when it would exceed the size limit.

        Raises:
            zlib.error: when the payload is not a deflate stream continuing the context.
        """
        if self._reset_context:
            inflater = self._inflater = zlib.decompressobj(wbits=-self._wbits)
        data = inflater.decompress(payload + _EMPTY_BLOCK, self._limit + 1)
        return None if len(data) > self._limit or inflater.unconsumed_tail else data

    def _push(self, message: bytes | str) -> None:
        messages = self._messages
        messages.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if len(messages) > self._high_water and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.underlying_transport.pause_reading()

    def _closed_by_peer(self, transport: WSTransport, frame: WSFrame) -> None:
        code = frame.get_close_code()
        number = code.value if isinstance(code, WSCloseCode) else int(code)  # codes >= 3000
        self._error = ConnectionClosedError(
            None if number == WSCloseCode.NO_INFO.value else number, frame.get_close_reason()
        )
        if not transport.is_close_frame_sent:
            transport.send_close(code)
        transport.disconnect()
        self._wake()

    def _fail(self, transport: WSTransport, code: WSCloseCode, reason: str) -> None:
        self._error = ConnectionClosedError(None, reason)
        transport.send_close(code, reason.encode())
        transport.disconnect()
        self._wake()

    def _on_disconnected(self, _transport: WSTransport) -> None:
        if self._error is None:
            self._error = ConnectionClosedError(None)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
