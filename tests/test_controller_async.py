"""The async API: the controller inside the caller's event loop, and sync calls into it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from streamfsm import BackoffPolicy, Credentials, StalePolicy, StreamConfig
from streamfsm._core.machine import State
from streamfsm._core.records import TransitionRecord
from streamfsm.controller import StreamController
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, Simulator, SimulatorThread

CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
WAIT = 5.0


def config(url: str) -> StreamConfig:
    return StreamConfig(
        url=url,
        backoff=BackoffPolicy(initial=0.05, maximum=0.1),
        stale=StalePolicy(quotes=None),
        healthy_after=0.2,
    )


def test_async_with_streams_and_tells_transitions() -> None:
    """Inside a running loop: async callbacks, transitions() iterator, clean exit."""

    async def main() -> tuple[list[Any], list[TransitionRecord]]:
        quotes: list[Any] = []
        got_some = asyncio.Event()

        async def on_quote(quote: Any) -> None:
            quotes.append(quote)
            got_some.set()

        records: list[TransitionRecord] = []
        async with Simulator(SimConfig(rate=300, batch=3, seed=2)) as sim:
            async with StreamController(
                CREDENTIALS, config(sim.url("iex")), on_quote=on_quote, symbols=["AAPL"]
            ) as ctl:
                async with asyncio.timeout(WAIT):
                    async for record in ctl.transitions():
                        records.append(record)
                        if record.dst == "subscribed":
                            break
                    await got_some.wait()
                    # The backoff lasts 50 ms: wait for the loss itself, not the state it passes.
                    lost = asyncio.Event()
                    ctl.add_listener(
                        lambda r: lost.set() if r.trigger == "connection_lost" else None
                    )
                    await sim.drop()
                    await lost.wait()
                    await ctl.await_state(State.SUBSCRIBED)
                assert ctl.health().reconnects == 1
            assert ctl.state is State.STOPPED
            assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("streamfsm")]
        return quotes, records

    quotes, records = asyncio.run(main())
    assert quotes
    assert records[-1].dst == "subscribed"


def test_sync_calls_from_another_thread_reach_an_async_controller() -> None:
    """A thread may subscribe to a controller that lives in someone else's loop."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=100, seed=2)) as sim:
            ctl = StreamController(
                CREDENTIALS, config(sim.url("iex")), on_quote=lambda q: None, symbols=["AAPL"]
            )
            await ctl.astart()
            async with asyncio.timeout(WAIT):
                await ctl.await_state(State.SUBSCRIBED)
            worker = threading.Thread(target=ctl.subscribe, kwargs={"quotes": ["MSFT"]})
            worker.start()
            await asyncio.to_thread(worker.join, WAIT)
            assert ctl.health().desired.quotes == {"AAPL", "MSFT"}
            await ctl.astop()
            assert ctl.state is State.STOPPED

    asyncio.run(main())


def test_transitions_iterator_in_another_loop_follows_a_threaded_controller() -> None:
    """transitions() works from the caller's loop while the controller runs its own thread."""
    with SimulatorThread(SimConfig(rate=100, seed=2)) as sim:
        ctl = StreamController(
            CREDENTIALS, config(sim.url("iex")), on_quote=lambda q: None, symbols=["AAPL"]
        )

        async def collect() -> list[str]:
            seen: list[str] = []
            async for record in ctl.transitions():
                seen.append(record.dst)
                if record.dst == "subscribed":
                    break
            return seen

        async def watch() -> list[str]:
            async with asyncio.timeout(WAIT):
                watcher = asyncio.create_task(collect())
                await asyncio.sleep(0)  # let the iterator register before the first transition
                ctl.start()
                return await watcher

        assert asyncio.run(watch()) == ["connecting", "subscribed"]
        ctl.stop()
        assert ctl.state is State.STOPPED


def test_start_after_stop_runs_again_and_keeps_totals() -> None:
    """A stopped controller can be started again; its journal and counters continue."""
    with SimulatorThread(SimConfig(rate=100, seed=2)) as sim:
        ctl = StreamController(
            CREDENTIALS, config(sim.url("iex")), on_quote=lambda q: None, symbols=["AAPL"]
        )
        ctl.start()
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        ctl.stop()
        ctl.start()
        assert ctl.wait_for(State.SUBSCRIBED, WAIT)
        assert ctl.health().attempts == 2
        ctl.stop()
        seqs = [r.seq for r in ctl.journal()]
        assert seqs == list(range(1, len(seqs) + 1))
