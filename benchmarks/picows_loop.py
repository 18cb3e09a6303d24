"""The bare picows loops: a typed-union msgspec decode per frame in picows' frame callback.

picows offers no permessage-deflate. ``bare_picows`` reads the replay uncompressed (the floor of
picows itself, a lighter workload than the deflated stream the other clients read);
``bare_picows_deflate`` offers the extension and inflates with one zlib inflater, as any picows
user reading Alpaca's deflated stream must: the same bytes as streamfsm on picows reads.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Any, Final

import msgspec

from benchmarks.server import SYMBOLS
from streamfsm.models import Quote
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET

if TYPE_CHECKING:
    from benchmarks.clients import Counter

__all__ = ["bare_picows", "bare_picows_deflate"]

_ENCODE: Final = msgspec.msgpack.encode
#: RFC 7692: the empty block the sender stripped from each message.
_TAIL: Final = b"\x00\x00\xff\xff"
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
    """Plain frames: connect with picows, shake hands, count quotes per frame until done."""
    await _bare(url, counter, deflate=False)


async def bare_picows_deflate(url: str, counter: Counter) -> None:
    """Deflated frames, inflated with context takeover; otherwise as :func:`bare_picows`."""
    await _bare(url, counter, deflate=True)


async def _bare(url: str, counter: Counter, *, deflate: bool) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    done = asyncio.get_running_loop().create_future()
    inflate = zlib.decompressobj(wbits=-zlib.MAX_WBITS).decompress

    class Listener(WSListener):
        def __init__(self) -> None:
            self.frames = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if self.frames >= _HANDSHAKE_FRAMES:
                if frame.rsv1:
                    counter.add(len(_DECODE(inflate(frame.get_payload_as_bytes() + _TAIL))))
                else:
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

    headers = {"Content-Type": "application/msgpack"}
    if deflate:
        headers["Sec-WebSocket-Extensions"] = "permessage-deflate; client_max_window_bits"
    transport, _listener = await ws_connect(Listener, url, extra_headers=headers)
    try:
        await done
    finally:
        transport.disconnect()
        await transport.wait_disconnected()
