"""The lease on a real nats-server: create, renew by revision, release, expiry and fencing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import nats
from nats.aio.client import Client

from streamfsm._core.records import TransitionRecord
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.lease_table import LeaseState
from streamfsm.cluster.nats_lease import NatsLease, open_bucket
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.logs import StreamLogger

CONFIG = ClusterConfig()  # the defaults: 2 s TTL, room for a loaded test machine
KEY = "lease.test"
#: Generous bound for anything the tests wait on (a loaded CI machine is slow).
PATIENCE = 20.0
#: Reconnect quickly after the server comes back.
RECONNECT_WAIT = 0.1


@attrs.define
class Member:
    """One lease with what happened to it, in loop time."""

    name: str
    lease: NatsLease = attrs.field(init=False)
    client: Client = attrs.field(init=False)
    held: list[tuple[float, int]] = attrs.Factory(list)
    fenced: list[tuple[float, int]] = attrs.Factory(list)
    records: list[TransitionRecord] = attrs.Factory(list)

    def holds(self) -> bool:
        return self.lease.core.state is LeaseState.HOLDER


class Changes:
    """Wakes waiters after any lease in the test handled an input."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def step(self) -> None:
        self.event.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait (bounded by ``PATIENCE``) until ``predicate()`` holds after some lease step."""
        async with asyncio.timeout(PATIENCE):
            while not predicate():
                self.event.clear()
                await self.event.wait()
        assert predicate(), what


@asynccontextmanager
async def member(
    server: LocalNatsServer, name: str, changes: Changes, *, notices_disconnect: bool = True
) -> AsyncIterator[Member]:
    """A process in the cluster: its own NATS connection, bucket handle and lease.

    With ``notices_disconnect=False`` the lease is not told when the connection drops, as in a
    silent partition: it must fence on its own deadline.
    """
    loop = asyncio.get_running_loop()
    result = Member(name)
    lease_ref: list[NatsLease] = []

    async def disconnected() -> None:
        if lease_ref and notices_disconnect:
            lease_ref[0].store_lost()

    async def reconnected() -> None:
        if lease_ref:
            lease_ref[0].store_back()

    result.client = await nats.connect(
        server.url,
        reconnect_time_wait=RECONNECT_WAIT,
        max_reconnect_attempts=-1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
    )
    kv = await open_bucket(result.client.jetstream(), "lease_test", CONFIG.lease_ttl, 1)

    async def fence(epoch: int) -> None:
        result.fenced.append((loop.time(), epoch))

    result.lease = NatsLease(
        attrs.evolve(CONFIG, member=name),
        kv=kv,
        key=KEY,
        member=name,
        on_hold=lambda epoch: result.held.append((loop.time(), epoch)),
        on_fence=fence,
        on_record=result.records.append,
        log=StreamLogger(member=name),
        on_step=changes.step,
    )
    lease_ref.append(result.lease)
    try:
        yield result
    finally:
        if result.lease.core.state is not LeaseState.STOPPED:
            await result.lease.stop()
        await result.client.close()


def test_one_holds_the_other_follows_and_renewals_keep_it(nats_server: LocalNatsServer) -> None:
    """The first to create holds; renewals by revision keep it past several TTLs."""

    async def scenario() -> None:
        changes = Changes()
        async with member(nats_server, "a", changes) as a, member(nats_server, "b", changes) as b:
            await a.lease.start()
            await changes.until(a.holds, "a holds")
            await b.lease.start()
            await changes.until(lambda: b.lease.core.state is LeaseState.FOLLOWER, "b follows")
            epoch = a.lease.core.epoch
            await changes.until(lambda: a.lease.core.revision >= epoch + 6, "a renewed")
            assert a.holds()
            assert a.lease.may_publish()
            assert b.lease.core.state is LeaseState.FOLLOWER
            assert b.lease.core.known_epoch == epoch
            assert a.fenced == []

    asyncio.run(scenario())


def test_stop_fences_then_releases_and_a_follower_takes_over_at_once(
    nats_server: LocalNatsServer,
) -> None:
    """A stopping holder closes Alpaca before deleting; the follower sees the delete."""

    async def scenario() -> None:
        changes = Changes()
        async with member(nats_server, "a", changes) as a, member(nats_server, "b", changes) as b:
            await a.lease.start()
            await changes.until(a.holds, "a holds")
            await b.lease.start()
            await changes.until(lambda: b.lease.core.state is LeaseState.FOLLOWER, "b follows")
            await a.lease.stop()
            await changes.until(b.holds, "b holds")
            assert [epoch for _, epoch in a.fenced] == [a.lease.core.epoch]
            assert a.fenced[0][0] < b.held[0][0]
            assert b.lease.core.epoch > a.lease.core.epoch
            takeover = [r for r in b.records if r.dst == "candidate"][-1]
            assert takeover.reason == "vacated"

    asyncio.run(scenario())


def test_a_holder_cut_off_fences_before_anyone_else_holds(nats_server: LocalNatsServer) -> None:
    """A holder whose connection dies fences itself; the follower holds only after that."""

    async def scenario() -> None:
        changes = Changes()
        async with (
            member(nats_server, "a", changes, notices_disconnect=False) as a,
            member(nats_server, "b", changes) as b,
        ):
            await a.lease.start()
            await changes.until(a.holds, "a holds")
            await b.lease.start()
            await changes.until(lambda: b.lease.core.state is LeaseState.FOLLOWER, "b follows")
            await a.client.close()
            await changes.until(b.holds, "b holds")
            assert a.fenced, "a never fenced"
            assert a.fenced[0][0] < b.held[0][0]
            assert not a.lease.may_publish()
            assert b.lease.core.epoch > a.lease.core.epoch

    asyncio.run(scenario())


def test_a_restarted_server_brings_everyone_back_with_a_newer_epoch(
    nats_server: LocalNatsServer,
) -> None:
    """Killing nats-server fences the holder; after a restart one process holds again."""

    async def scenario() -> None:
        changes = Changes()
        async with member(nats_server, "a", changes) as a, member(nats_server, "b", changes) as b:
            await a.lease.start()
            await changes.until(a.holds, "a holds")
            await b.lease.start()
            first = a.lease.core.epoch
            nats_server.kill()
            await changes.until(lambda: bool(a.fenced), "a fenced")
            assert not a.lease.may_publish()
            nats_server.start()
            await changes.until(lambda: a.holds() or b.holds(), "someone holds again")
            holder = a if a.holds() else b
            assert holder.lease.core.epoch > first

    asyncio.run(scenario())


def test_an_expired_lease_is_created_again_at_once(nats_server: LocalNatsServer) -> None:
    """After the server's expiry marker, the next create succeeds (no second TTL to wait)."""

    async def scenario() -> None:
        changes = Changes()
        async with member(nats_server, "a", changes, notices_disconnect=False) as a:
            await a.lease.start()
            await changes.until(a.holds, "a holds")
            observer = await nats.connect(nats_server.url)
            kv = await open_bucket(observer.jetstream(), "lease_test", CONFIG.lease_ttl, 1)
            watcher = await kv.watch(KEY)
            await a.client.close()  # a crashes: no release, no more renewals
            async with asyncio.timeout(PATIENCE):
                async for entry in watcher:
                    if entry is not None and entry.operation is not None:
                        break
            await watcher.stop()  # type: ignore[no-untyped-call]
            await observer.close()
        async with member(nats_server, "c", changes) as c:
            await c.lease.start()
            await changes.until(lambda: c.lease.core.state is not LeaseState.CANDIDATE, "answer")
            assert [(r.trigger, r.dst) for r in c.records] == [
                ("join", "candidate"),
                ("acquired", "holder"),
            ]

    asyncio.run(scenario())
