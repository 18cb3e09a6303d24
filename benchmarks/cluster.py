"""``python -m benchmarks.cluster [--smoke]``: failover time and the bus's cost per hop.

1. Failover: three members share a lease on a local nats-server (lease TTL 2 s, the default).
   The holder is killed, as ``kill -9`` would: its NATS connection drops and it never releases.
   Measured: from the kill to the moment another member holds. Then the same with a clean stop
   (the holder fences and deletes the lease). Ten of each; median and max.
2. The bus: one relay publisher and one subscriber on separate connections, one quote frame
   (a JSON array of one quote, as Alpaca sends it) per message. Throughput with the publisher
   sending as fast as it can, and latency (publish call to subscriber callback) at a fixed rate,
   against the same hand-off done in-process.

Everything runs on 127.0.0.1 in one event loop; the server's store is a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import nats
from nats.aio.client import Client

from benchmarks import cluster_md
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.framing import Verdict
from streamfsm.cluster.lease_table import LeaseState
from streamfsm.cluster.nats_lease import NatsLease, open_bucket
from streamfsm.cluster.nats_relay import RelayPublisher, RelaySubscriber, frames_subject
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.logs import StreamLogger

__all__ = ["measure"]

DOCS: Final = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
FRAME: Final = (
    b'[{"T":"q","S":"AAPL","bx":"V","bp":189.52,"bs":3,"ax":"V","ap":189.55,"as":2,'
    b'"c":["R"],"z":"C","t":"2026-01-02T15:30:00.123456789Z"}]'
)
KILLS: Final = 10
SMOKE_KILLS: Final = 2
FRAMES: Final = 50_000
SMOKE_FRAMES: Final = 2_000
LATENCY_RATE: Final = 2_000.0
LATENCY_FRAMES: Final = 4_000
SMOKE_LATENCY_FRAMES: Final = 400
PATIENCE: Final = 30.0
PERCENTILES: Final = 100


class _Member:
    """One lease on its own connection."""

    def __init__(self, name: str, changed: asyncio.Event) -> None:
        self.name = name
        self.changed = changed
        self.client: Client | None = None
        self.lease: NatsLease | None = None
        self.held_at: float | None = None

    async def join(self, url: str, config: ClusterConfig) -> None:
        self.client = await nats.connect(url, max_reconnect_attempts=0)
        kv = await open_bucket(self.client.jetstream(), "bench_lease", config.lease_ttl, 1)

        async def fence(_epoch: int) -> None:
            return None

        def held(_epoch: int) -> None:
            self.held_at = time.perf_counter()

        self.lease = NatsLease(
            config,
            kv=kv,
            key="lease.bench",
            member=self.name,
            on_hold=held,
            on_fence=fence,
            on_record=lambda _record: None,
            log=StreamLogger(member=self.name),
            on_step=self.changed.set,
        )
        await self.lease.start()

    def holds(self) -> bool:
        return self.lease is not None and self.lease.core.state is LeaseState.HOLDER

    def follows(self) -> bool:
        return self.lease is not None and self.lease.core.state is LeaseState.FOLLOWER


async def _until(changed: asyncio.Event, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not predicate():
            changed.clear()
            await changed.wait()


async def _failover(url: str, rounds: int, *, clean: bool) -> list[float]:
    """Seconds from losing the holder to a new holder, ``rounds`` times."""
    config = ClusterConfig()
    changed = asyncio.Event()
    members = [_Member(f"m{index}", changed) for index in range(3)]
    for member in members:
        await member.join(url, config)
    await _until(changed, lambda: any(m.holds() for m in members))
    times: list[float] = []
    for index in range(rounds):
        holder = next(m for m in members if m.holds())
        others = [m for m in members if m is not holder]
        for other in others:
            other.held_at = None
        await _until(changed, lambda group=others: all(m.follows() for m in group))
        start = time.perf_counter()
        assert holder.lease is not None
        assert holder.client is not None
        if clean:
            await holder.lease.stop()
        else:
            await holder.client.close()
        await _until(changed, lambda group=others: any(m.held_at is not None for m in group))
        times.append(min(m.held_at for m in others if m.held_at is not None) - start)
        if not clean:
            await holder.lease.stop()
        members[members.index(holder)] = replacement = _Member(f"r{index}", changed)
        await replacement.join(url, config)
    for member in members:
        if member.lease is not None:
            await member.lease.stop()
        if member.client is not None:
            await member.client.close()
    return times


async def _bus(url: str, frames: int, latency_frames: int) -> dict[str, Any]:
    publisher_client = await nats.connect(url)
    subscriber_client = await nats.connect(url)
    subject = frames_subject("bench", "scope")
    done = asyncio.Event()
    count = [0]
    sent_at: list[float] = []
    latencies: list[float] = []

    def on_frame(_frame: bytes) -> None:
        count[0] += 1
        if sent_at:
            latencies.append(time.perf_counter() - sent_at[len(latencies)])
        if count[0] == target[0]:
            done.set()

    def on_gap(_verdict: Verdict, _epoch: int) -> None:
        return None

    target = [frames]
    subscriber = RelaySubscriber(
        subscriber_client, subject, on_frame=on_frame, on_gap=on_gap, log=StreamLogger()
    )
    await subscriber.start()
    publisher = RelayPublisher(publisher_client, subject, 1, lambda: True)
    start = time.perf_counter()
    for _ in range(frames):
        await publisher.publish(FRAME)
    await publisher_client.flush()
    await asyncio.wait_for(done.wait(), PATIENCE)
    bus_rate = frames / (time.perf_counter() - start)

    local_count = [0]

    def local(_frame: bytes) -> None:
        local_count[0] += 1

    start = time.perf_counter()
    for _ in range(frames):
        local(FRAME)
    local_rate = frames / (time.perf_counter() - start)

    count[0] = 0
    done.clear()
    target[0] = latency_frames
    interval = 1.0 / LATENCY_RATE
    publisher.seq = 0
    publisher.epoch = 2
    for _ in range(latency_frames):
        sent_at.append(time.perf_counter())
        await publisher.publish(FRAME)
        await asyncio.sleep(interval)
    await asyncio.wait_for(done.wait(), PATIENCE)
    cuts = statistics.quantiles(latencies, n=PERCENTILES)
    await subscriber.stop()
    await publisher_client.close()
    await subscriber_client.close()
    return {
        "frame_bytes": len(FRAME),
        "frames": frames,
        "bus_frames_per_s": bus_rate,
        "in_process_frames_per_s": local_rate,
        "bus_us_per_frame": 1e6 / bus_rate,
        "in_process_us_per_frame": 1e6 / local_rate,
        "latency_rate_per_s": LATENCY_RATE,
        "latency_p50_us": cuts[49] * 1e6,
        "latency_p99_us": cuts[98] * 1e6,
        "gaps": subscriber.sequencer.gaps,
    }


def _summary(times: list[float]) -> dict[str, Any]:
    return {
        "runs": len(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
        "all_s": [round(t, 4) for t in times],
    }


async def _measure(url: str, *, smoke: bool) -> dict[str, Any]:
    kills = SMOKE_KILLS if smoke else KILLS
    return {
        "lease_ttl_s": ClusterConfig().lease_ttl,
        "failover_kill": _summary(await _failover(url, kills, clean=False)),
        "failover_stop": _summary(await _failover(url, kills, clean=True)),
        "bus": await _bus(
            url,
            SMOKE_FRAMES if smoke else FRAMES,
            SMOKE_LATENCY_FRAMES if smoke else LATENCY_FRAMES,
        ),
    }


def measure(*, smoke: bool = False) -> dict[str, Any]:
    """Start a local nats-server, measure, stop it; the figures as a dict."""
    with tempfile.TemporaryDirectory() as store, LocalNatsServer(Path(store)) as server:
        return asyncio.run(_measure(server.url, smoke=smoke))


def main() -> None:
    """Measure and write ``benchmarks/results/cluster.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few rounds only")
    parser.add_argument(
        "--write-docs", action="store_true", help="also splice the section into the docs"
    )
    args = parser.parse_args()
    results = measure(smoke=args.smoke)
    if not args.smoke:
        cluster_md.RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        if args.write_docs:
            DOCS.write_text(cluster_md.splice(DOCS.read_text(), results))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
