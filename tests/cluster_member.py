"""A cluster member as its own process, for the chaos tests: lease plus relay on NATS.

``python tests/cluster_member.py URL NAME`` joins the lease; while it holds, it relays a frame
every ``FRAME_INTERVAL`` seconds (``[{"member": NAME, "n": i}]``) through a relay publisher gated
by the lease. It prints ``JOINED`` as it joins, then ``HOLD <epoch>`` and
``FENCED <epoch> <last seq published>`` as they happen, and leaves cleanly (fence, then
release) on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys

import nats

from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.nats_lease import NatsLease, open_bucket
from streamfsm.cluster.nats_relay import RelayPublisher
from streamfsm.logs import StreamLogger

BUCKET = "chaos_lease"
KEY = "lease.chaos"
SUBJECT = "streamfsm.chaos.frames"
#: A frame every 10 ms: enough to see who publishes when.
FRAME_INTERVAL = 0.01


def say(line: str) -> None:
    """One protocol line to the test, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, name: str) -> None:
    """Run until SIGTERM."""
    config = ClusterConfig(member=name)
    client = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    kv = await open_bucket(client.jetstream(), BUCKET, config.lease_ttl, 1)
    relaying: list[asyncio.Task[None]] = []
    publishers: list[RelayPublisher] = []
    lease: NatsLease | None = None

    async def relay(epoch: int) -> None:
        assert lease is not None
        publisher = RelayPublisher(client, SUBJECT, epoch, lease.may_publish)
        publishers.append(publisher)
        count = 0
        while True:
            frame = json.dumps([{"member": name, "n": count}]).encode()
            if await publisher.publish(frame):
                count += 1
            await asyncio.sleep(FRAME_INTERVAL)

    def hold(epoch: int) -> None:
        say(f"HOLD {epoch}")
        relaying.append(asyncio.ensure_future(relay(epoch)))

    async def fence(epoch: int) -> None:
        for task in relaying:
            task.cancel()
        relaying.clear()
        last = max((p.seq for p in publishers if p.epoch == epoch), default=0)
        say(f"FENCED {epoch} {last}")

    lease = NatsLease(
        config,
        kv=kv,
        key=KEY,
        member=name,
        on_hold=hold,
        on_fence=fence,
        on_record=lambda _record: None,
        log=StreamLogger(member=name),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    say("JOINED")
    await lease.start()
    await stop.wait()
    await lease.stop()
    with contextlib.suppress(nats.errors.Error):
        await client.flush()
    await client.close()
    say("LEFT")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
