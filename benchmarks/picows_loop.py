"""The bare picows loop: a typed-union msgspec decode per frame in picows' frame callback.

picows does not offer permessage-deflate, so the replay server sends this client plain frames:
its figure is the floor of an uncompressed stream, a different workload from the deflated one
the websockets clients read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

import msgspec

from benchmarks.server import SYMBOLS
from streamfsm.models import Quote
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET

if TYPE_CHECKING:
    from benchmarks.clients import Counter

__all__ = ["bare_picows"]

_ENCODE: Final = msgspec.msgpack.encode
#: Handshake frames before the data: welcome, authenticated, subscription ack.
_HANDSHAKE_FRAMES: Final = 3


class _Control(msgspec.Struct, tag_field="T", gc=False):
    """Any control message; its fields are not needed."""


class _Subscription(_Control, tag="subscription", gc=False):
    """The subscription ack."""


class _Success(_Control, tag="success", gc=False):
    """A success control message."""


class _Error(_Control, tag="error", gc=False):
    """An error control message."""


_DECODE: Final = msgspec.msgpack.Decoder(list[Quote | _Subscription | _Success | _Error]).decode


async def bare_picows(url: str, counter: Counter) -> None:
    """Connect with picows, shake hands, count quotes per frame until the counter is done."""
    from picows import WSListener, WSMsgType, ws_connect

    done = asyncio.get_running_loop().create_future()

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.frames = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if self.frames >= _HANDSHAKE_FRAMES:
                counter.add(len(_DECODE(frame.get_payload_as_memoryview())))
                if counter.done.is_set() and not done.done():
                    done.set_result(None)
                return
            self.frames += 1
            if self.frames == 1:
                auth = {"action": "auth", "key": DEMO_KEY_ID, "secret": DEMO_SECRET}
                transport.send(WSMsgType.BINARY, _ENCODE(auth))
            elif self.frames == 2:
                subscribe = {"action": "subscribe", "quotes": list(SYMBOLS)}
                transport.send(WSMsgType.BINARY, _ENCODE(subscribe))

    transport, _listener = await ws_connect(
        Listener, url, extra_headers={"Content-Type": "application/msgpack"}
    )
    try:
        await done
    finally:
        transport.disconnect()
        await transport.wait_disconnected()
