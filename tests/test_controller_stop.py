"""stop() against a slow synchronous consumer, and what a stopped controller still holds.

The consumer spends 1 ms per quote while the simulator sends frames of 300 quotes, so a frame
takes 300 ms to deliver: a stop that waited for frame boundaries would be seen at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from streamfsm import BackoffPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.machine import State
from streamfsm.controller import StreamController
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
WAIT = 5.0
#: Work per quote of the slow consumer.
SLOW_SECONDS = 0.001
#: Quotes per frame: one frame keeps the consumer busy for 300 ms.
FRAME = 300
#: Callbacks that may run between stop() being called and its flag being seen: a handful at
#: most, against the hundreds a frame-boundary stop would let through.
STOP_SLACK = 50
CONFIG = StreamConfig(
    backoff=BackoffPolicy(initial=0.05, maximum=0.1),
    stale=StalePolicy(quotes=None),
    healthy_after=0.2,
)

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator sending 300-quote frames at 20k quotes/s."""
    with SimulatorThread(SimConfig(rate=20_000, batch=FRAME, seed=4)) as simulator:
        yield simulator


class SlowConsumer:
    """Burns SLOW_SECONDS per quote and counts calls, split around a stop."""

    def __init__(self) -> None:
        self.calls = 0
        self.during_stop = 0
        self.after_stop = 0
        self.phase = "before"
        self.busy = threading.Event()

    def __call__(self, _quote: Any) -> None:
        self.calls += 1
        if self.phase == "during":
            self.during_stop += 1
        elif self.phase == "after":
            self.after_stop += 1
        if self.calls > FRAME // 2:
            self.busy.set()  # well inside a frame's callbacks
        until = time.perf_counter() + SLOW_SECONDS
        while time.perf_counter() < until:
            continue


def test_stop_takes_effect_between_two_messages_of_a_frame(sim: SimulatorThread) -> None:
    """stop() from another thread interrupts a frame of slow callbacks and counts the rest."""
    consumer = SlowConsumer()
    config = attrs.evolve(CONFIG, url=sim.url("iex"))
    with StreamController(
        CREDENTIALS, config, on_quote=consumer, symbols=["AAPL"], models="fast"
    ) as ctl:
        assert consumer.busy.wait(WAIT)
        consumer.phase = "during"
        ctl.stop()
        consumer.phase = "after"
        assert ctl.state is State.STOPPED
        sim.wait_for(lambda stats: not stats.open_connections, WAIT)
        assert consumer.during_stop < STOP_SLACK
        assert consumer.after_stop == 0
        assert ctl.health().dropped_messages > 0
        assert ctl.health().queued_messages == 0


def test_a_start_after_a_stop_delivers_again_on_the_same_loop(sim: SimulatorThread) -> None:
    """After stop() the loop thread stays; start() connects and delivers again without it."""
    consumer = SlowConsumer()
    config = attrs.evolve(CONFIG, url=sim.url("iex"))
    with StreamController(
        CREDENTIALS, config, on_quote=consumer, symbols=["AAPL"], models="fast"
    ) as ctl:
        assert consumer.busy.wait(WAIT)
        threads = {thread.ident for thread in threading.enumerate()}
        ctl.stop()
        consumer.busy.clear()
        consumer.calls = 0
        ctl.start()
        assert consumer.busy.wait(WAIT)
        assert {thread.ident for thread in threading.enumerate()} <= threads | {None}


def open_files(path: Path) -> list[str]:
    """The descriptors of this process that point at ``path`` (Linux /proc)."""
    target = str(path.resolve())
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                found.append(fd)
        except OSError:
            continue  # closed while listing
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_stopped_controller_holds_no_journal_file(sim: SimulatorThread, tmp_path: Path) -> None:
    """Built with symbols, stopped twice, subscribed while stopped: the journal file is closed."""
    path = tmp_path / "journal.jsonl"
    config = attrs.evolve(CONFIG, url=sim.url("iex"), journal_path=path)
    ctl = StreamController(CREDENTIALS, config, on_quote=lambda _q: None, symbols=["AAPL"])
    assert open_files(path) == []  # the constructor's record closed it again
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    ctl.stop()
    assert open_files(path) == []
    ctl.stop()
    ctl.subscribe(quotes=["MSFT"])
    assert open_files(path) == []
    ctl.close()
    assert open_files(path) == []
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(ctl.journal())


def loop_threads(ctl: StreamController) -> list[threading.Thread]:
    """The controller's own loop thread, if it runs."""
    return [t for t in threading.enumerate() if t.name == f"streamfsm-{ctl.correlation_id}"]


def test_the_loop_thread_lives_from_the_first_command_until_close(sim: SimulatorThread) -> None:
    """subscribe() before start() opens the loop; stop() keeps it; close() ends it; with too."""
    config = attrs.evolve(CONFIG, url=sim.url("iex"))
    ctl = StreamController(CREDENTIALS, config, on_quote=lambda _q: None)
    assert loop_threads(ctl) == []
    ctl.subscribe(quotes=["AAPL"])
    (thread,) = loop_threads(ctl)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    ctl.stop()
    assert loop_threads(ctl) == [thread]
    ctl.close()
    assert loop_threads(ctl) == []
    assert ctl.state is State.STOPPED
    with ctl:
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        assert len(loop_threads(ctl)) == 1
    assert loop_threads(ctl) == []
    assert ctl.state is State.STOPPED
