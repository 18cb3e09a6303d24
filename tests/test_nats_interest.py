"""Interest on a real nats-server: the holder's union follows joins, changes, leaves and deaths."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats

from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm.cluster.interest import UnionChange
from streamfsm.cluster.nats_interest import InterestPublisher, InterestWatcher
from streamfsm.cluster.nats_lease import open_bucket
from streamfsm.cluster.natsd import LocalNatsServer
from streamfsm.logs import StreamLogger

TTL = 2.0
PREFIX = "interest.scope"
#: Generous bound for what the tests wait on.
PATIENCE = 20.0


def test_the_union_follows_every_process_and_a_dead_one_expires(
    nats_server: LocalNatsServer,
) -> None:
    """Changes arrive as differences; a leaver is removed at once, a dead one after its TTL."""

    async def scenario() -> None:
        client = await nats.connect(nats_server.url)
        kv = await open_bucket(client.jetstream(), "interest_test", TTL, 1)
        alpaca = [EMPTY]

        def apply(change: UnionChange) -> None:
            assert not (change.added & alpaca[0])
            alpaca[0] = (alpaca[0] | change.added) - change.removed

        watcher = InterestWatcher(kv, PREFIX, apply, StreamLogger())

        async def until(predicate: Callable[[], bool]) -> None:
            """Wait (bounded) until ``predicate()`` holds, rechecked after each key update."""
            async with asyncio.timeout(PATIENCE):
                while not predicate():
                    watcher.updated.clear()
                    await watcher.updated.wait()

        watcher.start()
        await asyncio.wait_for(watcher.ready.wait(), PATIENCE)
        log = StreamLogger()
        a = InterestPublisher(kv, f"{PREFIX}.a", TTL, log)
        b = InterestPublisher(kv, f"{PREFIX}.b", TTL, log)
        await a.publish(Subscription(quotes={"SPY", "AAPL"}))
        await b.publish(Subscription(quotes={"SPY"}, trades={"MSFT"}))
        await until(lambda: alpaca[0] == Subscription(quotes={"SPY", "AAPL"}, trades={"MSFT"}))
        await a.publish(Subscription(quotes={"SPY"}))
        await until(lambda: alpaca[0] == Subscription(quotes={"SPY"}, trades={"MSFT"}))
        for _ in range(4):  # heartbeats keep b alive past its TTL
            b.written.clear()
            await asyncio.wait_for(b.written.wait(), PATIENCE)
        assert watcher.book.members == ("a", "b")
        await a.stop()
        await until(lambda: watcher.book.members == ("b",))
        # b dies: no heartbeat, no delete. The server expires its key.
        assert b._heartbeat is not None  # freeze the heartbeat, as a crash would
        b._heartbeat.cancel()
        await until(lambda: alpaca[0] == EMPTY)
        assert watcher.book.members == ()
        await watcher.stop()
        await client.close()

    asyncio.run(scenario())
