"""Chaos on real processes: members holding the lease and relaying, killed, stopped and paused.

Each member is its own process (``tests/cluster_member.py``) on a real nats-server; the test
watches the relay subject raw, so it sees every message any process published, and checks the
fencing promises: after a handover, nothing of the old tenure is published once the new one has
begun, whatever happened to the old holder.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from streamfsm.cluster.framing import BusSequencer, Verdict, decode_frame
from streamfsm.cluster.nats_relay import settle
from streamfsm.cluster.natsd import LocalNatsServer

MEMBER = Path(__file__).with_name("cluster_member.py")
SUBJECT = "streamfsm.chaos.frames"
#: Generous bound for anything awaited (a lease TTL is 2 s; a loaded machine is slow).
PATIENCE = 30.0


class Member:
    """A member process and the protocol lines it printed."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER), url, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, name=f"member-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word = line.strip().split(" ", 1)[0]
            if word in {"JOINED", "HOLD", "FENCED", "LEFT"}:
                self.lines.put(line.strip())

    def expect(self, word: str) -> str:
        """The next protocol line, which must start with ``word``."""
        line = self.lines.get(timeout=PATIENCE)
        assert line.startswith(word), (self.name, line)
        return line

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(PATIENCE)
        self._reader.join(PATIENCE)
        assert self.process.stdout is not None
        self.process.stdout.close()


class Tap:
    """Every relayed message, raw, in arrival order: (epoch, seq, member) per message."""

    def __init__(self, url: str) -> None:
        self.seen: queue.Queue[tuple[int, int, str]] = queue.Queue()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(url,), name="tap", daemon=True)
        self._thread.start()
        assert self._ready.wait(PATIENCE)

    def _run(self, url: str) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            client = await nats.connect(url)

            async def handle(message: Msg) -> None:
                epoch, seq, frame = decode_frame(message.data)
                self.seen.put((epoch, seq, json.loads(frame)[0]["member"]))

            await client.subscribe(SUBJECT, cb=handle)
            await settle(client)
            self._ready.set()
            await self._stop.wait()
            await client.close()

        asyncio.run(main())

    def until_member(self, name: str) -> list[tuple[int, int, str]]:
        """Messages up to and including the first one from ``name``."""
        got: list[tuple[int, int, str]] = []
        while True:
            item = self.seen.get(timeout=PATIENCE)
            got.append(item)
            if item[2] == name:
                return got

    def next(self, count: int) -> list[tuple[int, int, str]]:
        """The next ``count`` messages."""
        return [self.seen.get(timeout=PATIENCE) for _ in range(count)]

    def close(self) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(PATIENCE)


@contextmanager
def cluster(server: LocalNatsServer, *names: str) -> Iterator[tuple[Tap, dict[str, Member]]]:
    """A tap and the named members, joined one after the other; all ended afterwards."""
    tap = Tap(server.url)
    members: dict[str, Member] = {}
    try:
        for name in names:
            members[name] = Member(server.url, name)
            members[name].expect("JOINED")
        yield tap, members
    finally:
        for member in members.values():
            member.end()
        tap.close()


def _holder(members: dict[str, Member]) -> tuple[Member, int]:
    first = members[next(iter(members))]
    return first, int(first.expect("HOLD").split()[1])


def _after_handover(tap: Tap, new_name: str, old_epoch: int) -> None:
    """Once the new holder's first message arrived, no message of the old tenure follows."""
    tap.until_member(new_name)
    later = tap.next(50)  # half a second of the new holder's frames
    assert all(epoch > old_epoch for epoch, _, _ in later), later


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_a_follower_takes_over_when_the_holder_dies_or_stops(
    nats_server: LocalNatsServer, how: int
) -> None:
    """kill -9 or SIGTERM of the holder: another process holds and relays under a newer epoch."""
    with cluster(nats_server, "a", "b") as (tap, members):
        a, epoch = _holder(members)
        tap.until_member("a")
        a.signal(how)
        new_epoch = int(members["b"].expect("HOLD").split()[1])
        assert new_epoch > epoch
        _after_handover(tap, "b", epoch)
        if how == signal.SIGTERM:
            a.expect("FENCED")
            a.expect("LEFT")


def test_a_paused_holder_publishes_nothing_after_losing_the_lease(
    nats_server: LocalNatsServer,
) -> None:
    """SIGSTOP past the TTL, then SIGCONT: it fences and publishes nothing more; late is stale."""
    with cluster(nats_server, "a", "b") as (tap, members):
        a, epoch = _holder(members)
        tap.until_member("a")
        a.signal(signal.SIGSTOP)
        new_epoch = int(members["b"].expect("HOLD").split()[1])
        assert new_epoch > epoch
        tap.until_member("b")
        a.signal(signal.SIGCONT)
        _, fenced_epoch, last = a.expect("FENCED").split()
        assert int(fenced_epoch) == epoch
        # Frames a had handed its client before the pause may still go out, late: nothing
        # beyond what it published while its lease allowed, and followers drop them by epoch.
        sequencer = BusSequencer()
        for seen_epoch, seq, member in tap.next(50):
            if seen_epoch == epoch:
                assert seq <= int(last), (seq, last)
            verdict = sequencer.accept(seen_epoch, seq)
            assert member == "b" or verdict is Verdict.STALE
