"""The picows transport keeps every protocol duty of the websockets one, against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from streamfsm._aio.picows_transport import PicowsTransport, parse_deflate
from streamfsm.config import MIN_FRAME_BYTES, StreamConfig
from streamfsm.errors import ConnectionClosedError, ConnectTimeoutError, TransportError

#: Generous bound on every wait (never an assertion on speed).
WAIT = 10.0
CONFIG = StreamConfig(url="ws://127.0.0.1:1/v2/iex", transport="picows", connect_timeout=0.5)
HEADERS = {"Content-Type": "application/msgpack"}

Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(handler: Handler, **options: Any) -> AsyncIterator[str]:
    """A websockets server on a free loopback port running ``handler`` per connection."""
    async with serve(handler, "127.0.0.1", 0, **options) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v2/iex"


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, WAIT))  # type: ignore[arg-type]


def test_deflated_messages_with_context_takeover_arrive_whole() -> None:
    """With permessage-deflate negotiated, a run of similar messages inflates to the originals."""
    payloads = [bytes([index]) * 3000 + b"quote" * 200 for index in range(20)]
    negotiated: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        negotiated.extend(extension.name for extension in ws.protocol.extensions)
        for payload in payloads:
            await ws.send(payload)
        await ws.wait_closed()

    async def main() -> None:
        async with server(handler, compression="deflate") as url:
            transport = await PicowsTransport.open(url, CONFIG, HEADERS)
            received = [await transport.recv() for _ in payloads]
            await transport.close()
        assert received == payloads

    run(main())
    assert negotiated == ["permessage-deflate"]


def test_fragmented_and_text_messages_are_reassembled() -> None:
    """A message sent in fragments comes out whole; a text message comes out as str."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send([b"ab", b"cd", b"ef"])
        await ws.send('[{"T":"success"}]')
        await ws.wait_closed()

    async def main() -> None:
        async with server(handler, compression=None) as url:
            transport = await PicowsTransport.open(url, CONFIG, HEADERS)
            assert await transport.recv() == b"abcdef"
            assert await transport.recv() == '[{"T":"success"}]'
            await transport.close()

    run(main())


def test_fragmented_sends_arrive_as_one_message() -> None:
    """send() with several fragments is one message at the server."""
    got: list[object] = []

    async def handler(ws: ServerConnection) -> None:
        got.append(await ws.recv())
        await ws.wait_closed()

    async def main() -> None:
        async with server(handler) as url:
            transport = await PicowsTransport.open(url, CONFIG, HEADERS)
            await transport.send([b"sub", b"scr", b"ibe"])
            await transport.close()

    run(main())
    assert got == [b"subscribe"]


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_a_message_over_the_size_limit_closes_with_1009(compression: str | None) -> None:
    """A message larger than max_frame_bytes (inflated too) ends the session with 1009."""
    codes: list[int | None] = []
    config = StreamConfig(
        url="ws://127.0.0.1:1/v2/iex", transport="picows", max_frame_bytes=MIN_FRAME_BYTES
    )

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"x" * (MIN_FRAME_BYTES + 1))
        await ws.wait_closed()
        codes.append(ws.close_code)

    async def main() -> None:
        async with server(handler, compression=compression, max_size=None) as url:
            transport = await PicowsTransport.open(url, config, HEADERS)
            with pytest.raises(ConnectionClosedError):
                await transport.recv()
            await transport.close()

    run(main())
    assert codes == [1009]


#: The 1009 case in a process of its own: its garbage collection sees only this connection.
UNRETRIEVED_SCRIPT = """
import asyncio, gc
from websockets.asyncio.server import serve
from streamfsm._aio.picows_transport import PicowsTransport
from streamfsm.config import MIN_FRAME_BYTES, StreamConfig
from streamfsm.errors import ConnectionClosedError

config = StreamConfig(url="ws://127.0.0.1:1/v2/iex", transport="picows",
                      max_frame_bytes=MIN_FRAME_BYTES)
unhandled = []

async def handler(ws):
    await ws.send(b"x" * (MIN_FRAME_BYTES + 1))
    await ws.wait_closed()

async def main():
    asyncio.get_running_loop().set_exception_handler(lambda _l, c: unhandled.append(c["message"]))
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        transport = await PicowsTransport.open(f"ws://127.0.0.1:{port}/v2/iex", config, {})
        try:
            await transport.recv()
        except ConnectionClosedError:
            pass
        await transport.close()
    del transport
    gc.collect()

asyncio.run(main())
assert unhandled == [], unhandled
"""


def test_close_after_picows_own_size_failure_leaves_nothing_unretrieved() -> None:
    """close() after picows' own 1009 neither raises its WSProtocolError nor leaves it unread."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", UNRETRIEVED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "never retrieved" not in done.stderr


def test_close_handshake_sends_1000_and_a_server_close_reaches_recv() -> None:
    """close() completes the close handshake; a server close surfaces with its code and reason."""
    codes: list[int | None] = []

    async def polite(ws: ServerConnection) -> None:
        await ws.wait_closed()
        codes.append(ws.close_code)

    async def leaving(ws: ServerConnection) -> None:
        await ws.close(4001, "maintenance")

    async def main() -> None:
        async with server(polite) as url:
            transport = await PicowsTransport.open(url, CONFIG, HEADERS)
            await transport.close()
            await transport.close()  # idempotent
        async with server(leaving) as url:
            transport = await PicowsTransport.open(url, CONFIG, HEADERS)
            with pytest.raises(ConnectionClosedError) as caught:
                await transport.recv()
            assert (caught.value.code, caught.value.reason) == (4001, "maintenance")
            with pytest.raises(ConnectionClosedError):
                await transport.send([b"late"])
            await transport.close()

    run(main())
    assert codes == [1000]


def test_pings_from_the_server_are_answered() -> None:
    """A server ping gets its pong: the keepalive duty of a client."""
    answered: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        waiter = await ws.ping()
        answered.append(await asyncio.wait_for(waiter, WAIT))
        await ws.send(b"done")
        await ws.wait_closed()

    async def main() -> None:
        async with server(handler) as url:
            transport = await PicowsTransport.open(url, CONFIG, HEADERS)
            assert await transport.recv() == b"done"
            await transport.close()

    run(main())
    assert len(answered) == 1


def test_a_server_that_never_upgrades_times_out() -> None:
    """An accepted TCP connection without an HTTP answer fails with ConnectTimeoutError."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async def main() -> None:
        listener = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            with pytest.raises(ConnectTimeoutError):
                await PicowsTransport.open(f"ws://127.0.0.1:{port}/v2/iex", CONFIG, HEADERS)

    run(main())


def test_refused_connections_are_transport_errors() -> None:
    """Nothing listening: a TransportError naming the URL, not a picows exception."""

    async def main() -> None:
        listener = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        listener.close()
        await listener.wait_closed()
        with pytest.raises(TransportError, match="cannot open"):
            await PicowsTransport.open(f"ws://127.0.0.1:{port}/v2/iex", CONFIG, HEADERS)

    run(main())


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, (False, 15, False)),
        ("permessage-deflate", (True, 15, False)),
        ("permessage-deflate; server_max_window_bits=10", (True, 10, False)),
        (
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
            (True, 15, True),
        ),
    ],
)
def test_the_deflate_answer_is_read(answer: str | None, expected: tuple[bool, int, bool]) -> None:
    """The server's extension answer sets the window and the context reset."""
    assert parse_deflate(answer) == expected


@pytest.mark.parametrize("answer", ["x-webkit-deflate-frame", "permessage-deflate; bogus=1"])
def test_an_extension_that_was_not_offered_fails_the_connection(answer: str) -> None:
    """RFC 7692: an answer the client did not offer fails the connection."""
    with pytest.raises(TransportError):
        parse_deflate(answer)
