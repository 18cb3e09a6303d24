"""The event loop of the sync controller's thread: uvloop when chosen, asyncio's otherwise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import attrs
import pytest

from streamfsm import Credentials, StreamConfig
from streamfsm._aio.loops import loop_factory, uses_uvloop
from streamfsm._core.machine import State
from streamfsm.config import EventLoop, Transport
from streamfsm.controller import StreamController
from streamfsm.errors import ConfigurationError
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

uvloop = pytest.importorskip("uvloop")

WAIT = 5.0
QUOTES_WANTED = 5
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes quickly."""
    with SimulatorThread(SimConfig(rate=400, batch=4, seed=5, symbol_limit=5)) as simulator:
        yield simulator


class LoopRecorder:
    """Counts quotes and notes the type of the loop each callback ran on."""

    def __init__(self) -> None:
        self.loops: list[type[asyncio.AbstractEventLoop]] = []
        self.enough = threading.Event()

    def __call__(self, _quote: object) -> None:
        self.loops.append(type(asyncio.get_running_loop()))
        if len(self.loops) >= QUOTES_WANTED:
            self.enough.set()


def run_controller(sim: SimulatorThread, config: StreamConfig) -> LoopRecorder:
    """Stream quotes with ``config`` until a few arrived; the loop types they arrived on."""
    recorder = LoopRecorder()
    controller = StreamController(
        CREDENTIALS,
        attrs.evolve(config, url=sim.url("iex")),
        on_quote=recorder,
        symbols=("AAPL", "MSFT"),
    )
    try:
        controller.start()
        assert controller.wait_for(State.SUBSCRIBED, WAIT)
        assert recorder.enough.wait(WAIT)
    finally:
        controller.close()
    return recorder


@pytest.mark.parametrize("transport", list(Transport))
def test_the_uvloop_choice_streams_on_a_uvloop_loop(
    sim: SimulatorThread, transport: Transport
) -> None:
    """With loop="uvloop" the sync controller subscribes and delivers quotes on uvloop's loop."""
    recorder = run_controller(sim, StreamConfig(transport=transport, loop="uvloop"))
    assert set(recorder.loops) == {uvloop.Loop}


def test_picows_runs_on_asyncio_unless_uvloop_is_chosen(sim: SimulatorThread) -> None:
    """By default picows streams on asyncio's own loop, not uvloop's."""
    recorder = run_controller(sim, StreamConfig(transport="picows"))
    assert uvloop.Loop not in recorder.loops
    assert all(issubclass(kind, asyncio.BaseEventLoop) for kind in recorder.loops)


@pytest.mark.parametrize(
    ("transport", "loop", "expected"),
    [
        (Transport.PICOWS, EventLoop.ASYNCIO, False),
        (Transport.PICOWS, EventLoop.UVLOOP, True),
        (Transport.WEBSOCKETS, EventLoop.UVLOOP, True),
    ],
)
def test_the_loop_is_the_one_chosen(transport: Transport, loop: EventLoop, expected: bool) -> None:
    """uvloop runs exactly when chosen, on either transport; asyncio's loop is the default."""
    config = StreamConfig(transport=transport, loop=loop)
    assert uses_uvloop(config) is expected
    assert (loop_factory(config) is not None) is expected
    assert StreamConfig(transport=transport).loop is EventLoop.ASYNCIO


def test_an_unknown_loop_is_refused() -> None:
    """A loop name that is not asyncio or uvloop is a ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match="loop"):
        StreamConfig(loop="trio")
