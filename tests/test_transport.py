"""The WebSocket transport against a bare websockets server on 127.0.0.1: typed errors only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from websockets.asyncio.server import ServerConnection, serve

from streamfsm._aio.transport import WebSocketTransport
from streamfsm.config import StreamConfig
from streamfsm.errors import ConnectionClosedError, TransportError

WAIT = 5.0
CONFIG = StreamConfig(close_timeout=1.0)
T = TypeVar("T")


def with_server(
    handler: Callable[[ServerConnection], Awaitable[None]],
    body: Callable[[str], Awaitable[T]],
) -> T:
    """Run ``body(url)`` against a server on a free loopback port running ``handler``."""

    async def main() -> T:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.wait_for(body(f"ws://127.0.0.1:{port}/v2/iex"), WAIT)

    return asyncio.run(main())


def test_messages_go_both_ways_and_fragments_arrive_as_one() -> None:
    """send() of two fragments is one message to the server; recv() returns its echo whole."""

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async def body(url: str) -> str | bytes:
        transport = await WebSocketTransport.open(url, CONFIG, {})
        try:
            await transport.send(['{"action": ', '"ping"}'])
            return await transport.recv()
        finally:
            await transport.close()

    assert with_server(echo, body) == '{"action": "ping"}'


def test_a_close_by_the_server_is_a_typed_error_with_its_code() -> None:
    """The server closing with 1011 reaches the reader as ConnectionClosedError(1011)."""

    async def close_at_once(connection: ServerConnection) -> None:
        await connection.close(1011, "going away")

    async def body(url: str) -> ConnectionClosedError:
        transport = await WebSocketTransport.open(url, CONFIG, {})
        try:
            with pytest.raises(ConnectionClosedError) as caught:
                await transport.recv()
            return caught.value
        finally:
            await transport.close()

    error = with_server(close_at_once, body)
    assert "1011" in str(error)


def test_nothing_listening_is_a_transport_error() -> None:
    """A refused connection is a TransportError naming the URL, never an OSError."""

    async def body() -> None:
        async with serve(lambda _c: asyncio.sleep(0), "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
        with pytest.raises(TransportError, match=str(port)):
            await WebSocketTransport.open(f"ws://127.0.0.1:{port}/v2/iex", CONFIG, {})

    asyncio.run(body())


def test_close_is_a_polite_1000_and_idempotent() -> None:
    """close() ends the session with code 1000; a second close() changes nothing."""
    codes: list[int | None] = []

    async def wait(connection: ServerConnection) -> None:
        await connection.wait_closed()
        codes.append(connection.close_code)

    async def body(url: str) -> None:
        transport = await WebSocketTransport.open(url, CONFIG, {})
        await transport.close()
        await transport.close()

    with_server(wait, body)
    assert codes == [1000]
