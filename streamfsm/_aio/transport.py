"""One WebSocket connection: the only module that imports ``websockets``.

Every failure leaves here as a :class:`~streamfsm.errors.TransportError` subclass with the
library's exception chained. Opening is bounded by the connect timeout; closing sends a close
frame and waits at most ``close_timeout`` before aborting the TCP connection, so a dead peer never
holds up a stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.version import version as websockets_version

from streamfsm.config import StreamConfig, Transport
from streamfsm.errors import ConnectionClosedError, ConnectTimeoutError, TransportError

__all__ = ["Connection", "WebSocketTransport", "open_transport"]

#: websockets logs every frame, the auth frame included, at DEBUG on its connection logger; ours
#: is pinned above DEBUG (see :func:`streamfsm.logs.pin_library_loggers`), so no frame is logged.
FRAME_LOGGER = logging.getLogger("streamfsm.websockets")
#: Identifies the client to the server, as alpaca-py's ``APCA-PY/<version>`` does.
USER_AGENT = f"streamfsm websockets/{websockets_version}"


def _closed(exc: ConnectionClosed) -> ConnectionClosedError:
    frame = exc.rcvd
    if frame is None:
        return ConnectionClosedError(None)
    return ConnectionClosedError(frame.code, frame.reason)


class WebSocketTransport:
    """An open WebSocket session with Alpaca (or the simulator)."""

    def __init__(self, connection: ClientConnection, close_timeout: float) -> None:
        self._connection = connection
        self._close_timeout = close_timeout

    @classmethod
    async def open(
        cls, url: str, config: StreamConfig, headers: Mapping[str, str]
    ) -> WebSocketTransport:
        """Connect to ``url`` and complete the WebSocket handshake.

        Raises:
            ConnectTimeoutError: when it takes longer than ``config.connect_timeout``.
            TransportError: when the TCP connection or the HTTP upgrade fails.
        """
        try:
            async with asyncio.timeout(config.connect_timeout):
                connection = await connect(
                    url,
                    additional_headers=dict(headers),
                    user_agent_header=USER_AGENT,
                    proxy=None,
                    open_timeout=None,
                    ping_interval=config.ping_interval,
                    ping_timeout=config.ping_timeout,
                    close_timeout=config.close_timeout,
                    max_size=config.max_frame_bytes,
                    max_queue=config.receive_queue_frames,
                    compression="deflate",
                    logger=FRAME_LOGGER,
                )
        except TimeoutError as exc:
            raise ConnectTimeoutError("connect", config.connect_timeout) from exc
        except ConnectionClosed as exc:
            raise _closed(exc) from exc
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            raise TransportError(f"cannot open {url}: {type(exc).__name__}: {exc}") from exc
        return cls(connection, config.close_timeout)

    async def recv(self) -> bytes | str:
        """The next whole message (fragments reassembled).

        Raises:
            ConnectionClosedError: when the session ended, with the close code when there was one.
        """
        try:
            return await self._connection.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def send(self, fragments: Sequence[bytes | str]) -> None:
        """Send one message, fragmented into ``fragments`` when there are several.

        Raises:
            ConnectionClosedError: when the session is already gone.
        """
        try:
            if len(fragments) == 1:
                await self._connection.send(fragments[0])
            else:
                await self._connection.send(list(fragments))
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def close(self) -> None:
        """Close politely within ``close_timeout``, then drop the TCP connection; idempotent.

        The TCP connection is gone when this returns or raises, cancellation included.
        """
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._connection.close()
        except (TimeoutError, ConnectionClosed):
            # A dead or already closed peer: nothing more to say to it.
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close handshake."""
        transport = self._connection.transport
        if transport is not None:
            transport.abort()


class Connection(Protocol):
    """What a session needs of a transport; :class:`WebSocketTransport` and picows' both have it."""

    async def recv(self) -> bytes | str:
        """The next whole message."""
        ...

    async def send(self, fragments: Sequence[bytes | str]) -> None:
        """Send one message made of ``fragments``."""
        ...

    async def close(self) -> None:
        """Close politely within the close timeout, then drop the connection."""
        ...

    def abort(self) -> None:
        """Drop the connection at once."""
        ...


async def open_transport(url: str, config: StreamConfig, headers: Mapping[str, str]) -> Connection:
    """Open a connection on the transport ``config.transport`` names.

    Raises:
        ConnectTimeoutError: when it takes longer than ``config.connect_timeout``.
        TransportError: when the TCP connection or the HTTP upgrade fails.
    """
    if config.transport is Transport.PICOWS:
        from streamfsm._aio.picows_transport import PicowsTransport  # only with streamfsm[fast]

        return await PicowsTransport.open(url, config, headers)
    return await WebSocketTransport.open(url, config, headers)
