"""The relay on a real nats-server: frames in order, fenced publishers silent, gaps reported."""

from __future__ import annotations

import asyncio

import nats

from streamfsm.cluster.framing import Verdict
from streamfsm.cluster.nats_relay import RelayPublisher, RelaySubscriber, frames_subject
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.logs import StreamLogger

SUBJECT = frames_subject("test", "scope")
#: Generous bound for the frames the tests wait for.
PATIENCE = 20.0


class Received:
    """What a follower got: frames, gap verdicts, and an event per frame."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.gaps: list[tuple[Verdict, int]] = []
        self.arrived = asyncio.Event()

    def frame(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.arrived.set()

    def gap(self, verdict: Verdict, epoch: int) -> None:
        self.gaps.append((verdict, epoch))

    async def until(self, count: int) -> None:
        """Wait (bounded) for ``count`` frames."""
        async with asyncio.timeout(PATIENCE):
            while len(self.frames) < count:
                self.arrived.clear()
                await self.arrived.wait()


def test_frames_arrive_in_order_and_a_handover_is_reported(nats_server: LocalNatsServer) -> None:
    """A follower gets each frame once, in order; a new tenure is a handover; old ones drop."""

    async def scenario() -> None:
        holder = await nats.connect(nats_server.url)
        follower = await nats.connect(nats_server.url)
        received = Received()
        subscriber = RelaySubscriber(
            follower, SUBJECT, on_frame=received.frame, on_gap=received.gap, log=StreamLogger()
        )
        await subscriber.start()
        old = RelayPublisher(holder, SUBJECT, 5, lambda: True)
        for index in range(3):
            await old.publish(f'[{{"i":{index}}}]')
        await holder.flush()
        await received.until(3)
        new = RelayPublisher(holder, SUBJECT, 9, lambda: True)
        await new.publish(b"[new]")
        await holder.flush()
        await received.until(4)
        await old.publish("[late]")
        await new.publish(b"[after]")
        await holder.flush()
        await received.until(5)
        assert received.frames == [b'[{"i":0}]', b'[{"i":1}]', b'[{"i":2}]', b"[new]", b"[after]"]
        assert received.gaps == [(Verdict.HANDOVER, 9)]
        assert subscriber.sequencer.stale == 1
        await subscriber.stop()
        await holder.close()
        await follower.close()

    asyncio.run(scenario())


def test_a_fenced_publisher_sends_nothing_and_a_lost_frame_is_a_gap(
    nats_server: LocalNatsServer,
) -> None:
    """No frame leaves once the lease forbids it; a sequence jump is reported as a bus gap."""

    async def scenario() -> None:
        client = await nats.connect(nats_server.url)
        received = Received()
        subscriber = RelaySubscriber(
            client, SUBJECT, on_frame=received.frame, on_gap=received.gap, log=StreamLogger()
        )
        await subscriber.start()
        allowed = [True]
        publisher = RelayPublisher(client, SUBJECT, 3, lambda: allowed[0])
        assert await publisher.publish(b"[1]")
        allowed[0] = False
        assert not await publisher.publish(b"[fenced]")
        allowed[0] = True
        publisher.seq += 2  # two frames lost on the wire
        assert await publisher.publish(b"[4]")
        await client.flush()
        await received.until(2)
        assert received.frames == [b"[1]", b"[4]"]
        assert received.gaps == [(Verdict.GAP, 3)]
        assert (publisher.refused, subscriber.sequencer.missing) == (1, 2)
        await subscriber.stop()
        await client.close()

    asyncio.run(scenario())
