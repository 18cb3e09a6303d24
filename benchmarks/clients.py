"""The clients under test, each run once against a replay server until it has N quotes.

Every runner returns a :class:`Sample`: wall time and client-process CPU time between the first
and the N-th quote handed to user code. User code is the same everywhere: one sync call that
counts (alpaca-py requires coroutine handlers, so there it is awaited from one).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import attrs
import msgpack
import msgspec
import websockets

from benchmarks.picows_loop import bare_picows, bare_picows_deflate
from benchmarks.server import SYMBOLS
from streamfsm.config import OverflowPolicy, StreamConfig
from streamfsm.controller import StreamController
from streamfsm.credentials import Credentials
from streamfsm.models import Quote
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET

__all__ = ["CLIENTS", "Counter", "Sample", "run_client"]

#: Seconds a client may take for a run before it is recorded as failed (alpaca-py typed is slow).
MIN_RUN_TIMEOUT: Final = 30.0
#: Quotes per second below which the run timeout grows: the slowest client's rate, halved.
SLOWEST_RATE: Final = 30_000.0
#: alpaca-py's receive queue and frame limits are left at their defaults; ours too.
MSGPACK_HEADERS: Final = {"Content-Type": "application/msgpack"}
#: Frames up to this size are accepted by the bare loops (the replay's are ~10 KiB).
MAX_FRAME_BYTES: Final = 8 * 1024 * 1024
#: The largest backlog in bytes a config accepts: a throughput run must never drop.
MAX_BACKLOG_BYTES: Final = 2**31 - 1


@attrs.frozen
class Sample:
    """One run of one client: N quotes, wall seconds and client CPU seconds, first to N-th."""

    messages: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        """Quotes per second."""
        return self.messages / self.wall if self.wall > 0 else float("nan")

    @property
    def cpu_us_per_message(self) -> float:
        """Client-process CPU microseconds per quote."""
        return self.cpu / self.messages * 1e6


class Counter:
    """Counts quotes, stamps wall and CPU time at the first and at the N-th, then sets ``done``.

    ``on_message`` is the user callback of the per-message clients: a closure whose per-message
    work is one increment and one comparison, so the clients are compared on their own cost, not
    on the callback's. ``add`` counts a whole frame for the per-frame loops.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.done = threading.Event()
        self.first_wall = self.first_cpu = self.last_wall = self.last_cpu = 0.0
        self.first_count = self.last_count = 0
        self.count = 0
        count = 0
        mark = 1

        def on_message(_message: object) -> None:
            nonlocal count, mark
            count += 1
            if count >= mark:
                self.count = count
                self._stamp()
                mark = target if count < target else sys.maxsize

        self.on_message = on_message

    def __call__(self, message: object) -> None:
        """Count one quote (for runners that wrap the callback)."""
        self.on_message(message)

    def add(self, quotes: int) -> None:
        """Count a frame of ``quotes`` quotes at once."""
        before = self.count
        self.count += quotes
        if before == 0 or (before < self.target <= self.count):
            self._stamp()

    def _stamp(self) -> None:
        if self.first_count == 0:
            self.first_wall, self.first_cpu = time.perf_counter(), time.process_time()
            self.first_count = self.count
        elif self.count >= self.target and not self.done.is_set():
            self.last_wall, self.last_cpu = time.perf_counter(), time.process_time()
            self.last_count = self.count
            self.done.set()

    def sample(self) -> Sample:
        """The measurement, from the first stamp to the N-th quote."""
        if not self.done.is_set():
            raise TimeoutError(f"received {self.count} of {self.target} quotes")
        return Sample(
            self.last_count - self.first_count,
            self.last_wall - self.first_wall,
            self.last_cpu - self.first_cpu,
        )


def run_timeout(messages: int) -> float:
    """How long one client run may take."""
    return max(MIN_RUN_TIMEOUT, messages / SLOWEST_RATE)


def credentials() -> Credentials:
    """The simulator's demo credentials."""
    return Credentials(DEMO_KEY_ID, DEMO_SECRET)


# ---------------------------------------------------------------- streamfsm


def lossless(url: str, messages: int) -> StreamConfig:
    """A config that delivers every one of ``messages`` quotes, however far callbacks fall behind.

    The replay server sends as fast as the socket takes frames, and streamfsm drains the socket
    ahead of a slower callback; a backlog that holds the whole workload, with no age bound and no
    conflation, keeps the overflow policy out of a run that measures lossless throughput.
    """
    return StreamConfig(
        url=url,
        dispatch_queue_size=max(messages, 1),
        dispatch_queue_bytes=MAX_BACKLOG_BYTES,
        dispatch_max_age=None,
        overflow=OverflowPolicy.DROP_OLDEST,
    )


def _streamfsm(
    mode: str, transport: str = "websockets", loop: str = "asyncio"
) -> Callable[[str, int], Sample]:
    def run(url: str, messages: int) -> Sample:
        counter = Counter(messages)
        controller = StreamController(
            credentials(),
            attrs.evolve(lossless(url, messages), transport=transport, loop=loop),
            on_quote=counter.on_message,
            models=mode,
            symbols=SYMBOLS,
        )
        controller.start()
        try:
            counter.done.wait(run_timeout(messages))
        finally:
            controller.close()
        return counter.sample()

    return run


# ---------------------------------------------------------------- alpaca-py


def alpaca_stream(url: str, *, raw: bool) -> Any:
    """An alpaca-py ``StockDataStream`` aimed at the simulator."""
    from alpaca.data.live.stock import StockDataStream

    return StockDataStream(DEMO_KEY_ID, DEMO_SECRET, raw_data=raw, url_override=url)


class AlpacaRunner:
    """Runs an alpaca-py stream's ``_run_forever()`` on its own loop thread; stops it on demand."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.thread = threading.Thread(target=self._main, name="alpaca-py", daemon=True)

    def _main(self) -> None:
        asyncio.run(self.stream._run_forever())

    def start(self) -> None:
        """Start the loop thread and wait until alpaca-py's loop exists."""
        self.thread.start()
        while self.stream._loop is None:
            time.sleep(0.001)

    def stop(self, timeout: float = MIN_RUN_TIMEOUT) -> None:
        """alpaca-py's own ``stop()``, then wait for its loop to finish."""
        self.stream.stop()
        self.thread.join(timeout)

    def teardown(self, timeout: float = MIN_RUN_TIMEOUT) -> None:
        """Stop without waiting out alpaca-py's 5 s receive timeout on a quiet stream.

        ``stop()`` only queues a request that its loop reads between frames; once the replay
        is over no frame comes, so the socket is closed under it too. Not a stop() measurement.
        """
        self.stream.stop()
        loop = self.stream._loop
        if loop is not None and loop.is_running() and self.stream._ws is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.stream._ws.close(), loop).result(timeout)
        self.thread.join(timeout)


def _alpaca(raw: bool) -> Callable[[str, int], Sample]:
    def run(url: str, messages: int) -> Sample:
        counter = Counter(messages)

        async def on_quote(quote: object) -> None:
            counter(quote)

        stream = alpaca_stream(url, raw=raw)
        stream.subscribe_quotes(on_quote, *SYMBOLS)
        runner = AlpacaRunner(stream)
        runner.start()
        try:
            counter.done.wait(run_timeout(messages))
        finally:
            runner.teardown()
        return counter.sample()

    return run


# ---------------------------------------------------------------- bare loops


async def _handshake(ws: Any) -> None:
    await ws.recv()  # [{"T": "success", "msg": "connected"}]
    await ws.send(msgpack.packb({"action": "auth", "key": DEMO_KEY_ID, "secret": DEMO_SECRET}))
    await ws.recv()  # authenticated
    await ws.send(msgpack.packb({"action": "subscribe", "quotes": list(SYMBOLS)}))


async def _bare_msgpack(url: str, counter: Counter) -> None:
    """The naive reference: msgpack.unpackb per frame, counted per frame."""
    unpack = msgpack.unpackb
    async with websockets.connect(
        url, additional_headers=MSGPACK_HEADERS, max_size=MAX_FRAME_BYTES
    ) as ws:
        await _handshake(ws)
        while not counter.done.is_set():
            counter.add(len(unpack(await ws.recv())))


class _Subscription(msgspec.Struct, tag_field="T", tag="subscription", gc=False):
    """The subscription ack; its fields are not needed."""


class _Success(msgspec.Struct, tag_field="T", tag="success", gc=False):
    """A success control message."""


class _Error(msgspec.Struct, tag_field="T", tag="error", gc=False):
    """An error control message."""


#: The typed union a bare client decodes every frame into (gc=False structs, as streamfsm's).
_FRAME = msgspec.msgpack.Decoder(list[Quote | _Subscription | _Success | _Error])


async def _bare_msgspec(url: str, counter: Counter) -> None:
    """The floor: a typed-union decode per frame, counted per frame, no per-message work."""
    decode = _FRAME.decode
    async with websockets.connect(
        url, additional_headers=MSGPACK_HEADERS, max_size=MAX_FRAME_BYTES
    ) as ws:
        await _handshake(ws)
        while not counter.done.is_set():
            counter.add(len(decode(await ws.recv())))


async def _bare_msgspec_callback(url: str, counter: Counter) -> None:
    """The floor of a callback API: the same decode, then one Python call per message."""
    decode = _FRAME.decode
    on_message = counter.on_message
    async with websockets.connect(
        url, additional_headers=MSGPACK_HEADERS, max_size=MAX_FRAME_BYTES
    ) as ws:
        await _handshake(ws)
        while not counter.done.is_set():
            for message in decode(await ws.recv()):
                on_message(message)


def _bare(
    loop_body: Callable[[str, Counter], Any], *, uvloop: bool = False
) -> Callable[[str, int], Sample]:
    def run(url: str, messages: int) -> Sample:
        counter = Counter(messages)
        factory = None
        if uvloop:
            import uvloop as uvloop_module  # installed with streamfsm[fast]

            factory = uvloop_module.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(loop_body(url, counter), run_timeout(messages)))
        return counter.sample()

    return run


#: Every client, by the name the report uses, in the order runs interleave.
CLIENTS: Final[dict[str, Callable[[str, int], Sample]]] = {
    "streamfsm fast": _streamfsm("fast"),
    "streamfsm raw": _streamfsm("raw"),
    "streamfsm alpaca": _streamfsm("alpaca"),
    "streamfsm fast picows": _streamfsm("fast", "picows"),
    "streamfsm fast picows uvloop": _streamfsm("fast", "picows", "uvloop"),
    "alpaca-py raw_data": _alpaca(raw=True),
    "alpaca-py typed": _alpaca(raw=False),
    "websockets + msgpack": _bare(_bare_msgpack),
    "websockets + msgspec": _bare(_bare_msgspec),
    "websockets + msgspec + callback": _bare(_bare_msgspec_callback),
    "picows + msgspec": _bare(bare_picows),
    "picows + zlib + msgspec": _bare(bare_picows_deflate),
    "picows + zlib + msgspec uvloop": _bare(bare_picows_deflate, uvloop=True),
}


def run_client(name: str, url: str, messages: int) -> Sample:
    """One run of the client called ``name``."""
    return CLIENTS[name](url, messages)
