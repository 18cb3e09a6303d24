"""What the simulator tests share: a minimal Alpaca client on websockets, bounded runs, frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamfsm.errors import SERVER_ERRORS
from streamfsm.sim import (
    DEMO_KEY_ID,
    DEMO_SECRET,
    Simulator,
)

#: Upper bound of any single wait in these tests; loopback answers in milliseconds.
TIMEOUT = 5.0
#: Bound of a whole test body.
TEST_TIMEOUT = 20.0
POLICY_VIOLATION = 1008
DATA_TYPES = frozenset({"q", "t", "b", "u", "d", "s", "l", "c", "x", "o", "n"})

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` in a fresh loop, bounded, and check that it leaves no task behind."""

    async def guarded() -> T:
        result = await asyncio.wait_for(main(), TEST_TIMEOUT)
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        assert not leftovers, f"tasks left behind: {leftovers}"
        return result

    return asyncio.run(guarded())


class Client:
    """A minimal Alpaca stream client for the tests, on the websockets asyncio client."""

    def __init__(self, ws: ClientConnection, *, msgpack_frames: bool) -> None:
        self.ws = ws
        self.msgpack_frames = msgpack_frames

    async def recv_raw(self) -> bytes | str:
        return await asyncio.wait_for(self.ws.recv(), TIMEOUT)

    async def recv(self) -> Any:
        frame = await self.recv_raw()
        if self.msgpack_frames:
            assert isinstance(frame, bytes), "msgpack sessions get binary frames"
            return msgpack.unpackb(frame)
        assert isinstance(frame, str), "JSON sessions get text frames"
        return json.loads(frame)

    async def recv_control(self) -> dict[str, Any]:
        """The next control message, skipping data frames."""
        while True:
            messages = await self.recv()
            if messages[0]["T"] not in DATA_TYPES:
                assert len(messages) == 1, "control messages travel alone"
                message: dict[str, Any] = messages[0]
                return message

    async def recv_data(self, count: int) -> list[dict[str, Any]]:
        """At least ``count`` data messages; fails on any control message."""
        received: list[dict[str, Any]] = []
        while len(received) < count:
            messages = await self.recv()
            assert all(message["T"] in DATA_TYPES for message in messages), messages
            received.extend(messages)
        return received

    async def send(self, message: dict[str, Any]) -> None:
        if self.msgpack_frames:
            await self.ws.send(msgpack.packb(message))
        else:
            await self.ws.send(json.dumps(message))

    async def auth(self, key: str = DEMO_KEY_ID, secret: str = DEMO_SECRET) -> dict[str, Any]:
        await self.send({"action": "auth", "key": key, "secret": secret})
        return await self.recv_control()

    async def subscribe(self, **channels: list[str]) -> dict[str, Any]:
        await self.send({"action": "subscribe", **channels})
        return await self.recv_control()

    async def unsubscribe(self, **channels: list[str]) -> dict[str, Any]:
        await self.send({"action": "unsubscribe", **channels})
        return await self.recv_control()


@asynccontextmanager
async def client(
    url: str,
    *,
    msgpack_frames: bool = False,
    auth: bool = True,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Client]:
    """Connect, read ``connected``, optionally authenticate; close on exit."""
    extra = dict(headers or {})
    if msgpack_frames:
        extra["Content-Type"] = "application/msgpack"
    # max_queue=None: a test that stops reading a flood must still see the server's close frame.
    async with connect(url, additional_headers=extra, open_timeout=TIMEOUT, max_queue=None) as ws:
        session = Client(ws, msgpack_frames=msgpack_frames)
        assert await session.recv_control() == {"T": "success", "msg": "connected"}
        if auth:
            assert await session.auth() == {"T": "success", "msg": "authenticated"}
        yield session


def error(code: int) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": SERVER_ERRORS[code].message}


def full_ack(**channels: list[str]) -> dict[str, Any]:
    ack: dict[str, Any] = {"T": "subscription"}
    for name in ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds"):
        ack[name] = sorted(channels.get(name, []))
    ack["corrections"] = ack["cancelErrors"] = ack["trades"]
    return ack


def first_id(sim: Simulator) -> int:
    """The id of the first remembered connection."""
    return sim.connections()[0].id


async def closed_code(session: Client) -> int | None:
    """Wait until the server closes the connection; return the close code received."""
    with contextlib.suppress(ConnectionClosed):
        while True:  # bounded: recv_raw times out if the server never closes
            await session.recv_raw()
    await session.ws.wait_closed()
    return session.ws.close_code
