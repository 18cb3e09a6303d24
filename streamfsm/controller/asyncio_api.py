"""The asyncio face of :class:`~streamfsm.StreamController`: ``async with`` and the async twins.

In the caller's running loop the controller hosts its engine there (``astart``); called from a
loop that does not host it, each twin runs its sync counterpart on a worker thread, so it never
blocks that loop. Inside an async callback (the dispatcher's own task) nothing awaits the
dispatcher, which would wait for that very callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from streamfsm._aio.bridge import EngineBridge
    from streamfsm._aio.feed import TransitionFeed
    from streamfsm._core.core import ConnectionCore
    from streamfsm._core.records import TransitionRecord

from streamfsm._core.machine import State

__all__ = ["AsyncLifecycle"]


class AsyncLifecycle:
    """The async twins of start, stop and close, and the transition stream, mixed into the
    controller; it assumes the controller's bridge, core and transition feed."""

    _bridge: EngineBridge
    _feed: TransitionFeed
    core: ConnectionCore

    if TYPE_CHECKING:

        def start(self, timeout: float | None = ...) -> None: ...
        def stop(self, timeout: float | None = ...) -> None: ...
        def close(self, timeout: float | None = ...) -> None: ...

    async def astart(self) -> None:
        """Begin the lifecycle inside the running loop (the async twin of :meth:`start`)."""
        engine = await self._bridge.ahost()
        if engine is None:
            await asyncio.to_thread(self.start)
        elif asyncio.current_task() is engine.dispatch_task:
            engine.start()
        else:
            await engine.start_when_closed()

    async def astop(self) -> None:
        """Stop and wait until no session or socket remains (the async twin of :meth:`stop`)."""
        engine = await self._bridge.ahost()
        if engine is None:
            await asyncio.to_thread(self.stop)
        elif asyncio.current_task() is engine.dispatch_task:
            # Inside an async callback: awaiting the sessions here is fine, but awaiting the
            # dispatcher would wait for this very callback. Stop now; sockets close right after.
            engine.stop_now()
        else:
            await engine.stop()

    async def aclose(self) -> None:
        """Stop, then end the engine hosted in this loop (the async twin of :meth:`close`)."""
        if self._bridge.host is None or not self._bridge.on_loop_thread():
            await asyncio.to_thread(self.close)
            return
        if self.core.state is not State.STOPPED:
            await self.astop()
        await self._bridge.aclose()
        self._feed.close()

    async def await_state(self, state: State) -> None:
        """Wait in the loop until the controller is in ``state``; bound it with asyncio.timeout."""
        await self._feed.until(lambda: self.core.state is state)

    def transitions(self) -> AsyncIterator[TransitionRecord]:
        """Yield every transition record from now on, in the caller's loop."""
        return self._feed.records()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
