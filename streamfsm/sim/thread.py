"""The simulator on its own event loop in a daemon thread, for synchronous code and tests.

The thread and the calls onto its loop are the same bridge the sync stream controller uses
(:class:`streamfsm._portal.LoopPortal`). Every method runs one coroutine on the simulator's loop
and returns its result, so it is safe from any thread except the simulator's own (where it would
deadlock, so it raises).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Final, TypeVar

from streamfsm._portal import LoopPortal, PortalClosedError
from streamfsm.config import Feed
from streamfsm.errors import LocalProtocolError
from streamfsm.sim.config import Replay, SimConfig
from streamfsm.sim.faults import MalformedKind, RefuseMode
from streamfsm.sim.hub import Predicate
from streamfsm.sim.server import CONNECTION_LIMIT_CODE, DEFAULT_WAIT, NORMAL_CLOSURE, Simulator
from streamfsm.sim.stats import ConnectionInfo, SimStats

__all__ = ["SimulatorThread"]

#: Binding a loopback port takes milliseconds; five seconds means something is wrong.
START_TIMEOUT: Final = 5.0
#: Closing waits for each client's close handshake, bounded by the close timeout (1 s default).
STOP_TIMEOUT: Final = 5.0
#: A fault call returns within a close handshake or two on loopback.
CALL_TIMEOUT: Final = 5.0
#: Extra time a marshalled wait gets beyond its own timeout, so the inner one fires first.
WAIT_MARGIN: Final = 1.0

_T = TypeVar("_T")


class SimulatorThread:
    """A :class:`~streamfsm.sim.Simulator` running in a named daemon thread.

    Use it as ``with SimulatorThread(SimConfig(...)) as sim:``. Leaving the block closes every
    connection and joins the thread.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        name: str = "streamfsm-sim",
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self._simulator = Simulator(config)
        self._portal = LoopPortal(name)
        self._call_timeout = call_timeout
        self._started = False

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = START_TIMEOUT) -> SimulatorThread:
        """Start the thread and wait until the simulator listens.

        Raises:
            LocalProtocolError: when already started.
            OSError: when the port cannot be bound (re-raised from the thread).
            TimeoutError: when the simulator is not listening within ``timeout`` seconds.
        """
        if self._started:
            raise LocalProtocolError("a SimulatorThread can be started once")
        self._started = True
        try:
            self._portal.open(self._serve, timeout)
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"simulator did not start within {timeout:g} s") from None
        return self

    async def _serve(self, ready: Callable[[], None], closing: asyncio.Event) -> None:
        await self._simulator.start()
        ready()
        try:
            await closing.wait()
        finally:
            await self._simulator.aclose()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every connection, stop the loop and join the thread. Idempotent.

        Raises:
            TimeoutError: when the thread does not end within ``timeout`` seconds.
        """
        try:
            self._portal.close(timeout)
        except TimeoutError:
            raise TimeoutError(f"simulator thread did not stop within {timeout:g} s") from None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ marshalling

    def _call(
        self, make: Callable[[], Coroutine[Any, Any, _T]], timeout: float | None = None
    ) -> _T:
        if self._portal.on_loop_thread():
            raise LocalProtocolError("on the simulator's own loop, await the Simulator's methods")
        limit = self._call_timeout if timeout is None else timeout
        try:
            return self._portal.run(make, limit)
        except PortalClosedError:
            raise LocalProtocolError("the simulator thread is not running") from None
        except TimeoutError:
            raise TimeoutError(f"simulator call did not finish within {limit:g} s") from None

    async def _stats(self) -> SimStats:
        return self._simulator.stats()

    # ------------------------------------------------------------ addresses and observation

    @property
    def simulator(self) -> Simulator:
        """The wrapped simulator; await its methods only on its own loop."""
        return self._simulator

    @property
    def port(self) -> int:
        """The TCP port served."""
        return self._simulator.port

    def url(self, feed: Feed | str = Feed.IEX) -> str:
        """The URL of ``feed``'s stream, e.g. ``ws://127.0.0.1:PORT/v2/iex``."""
        return self._simulator.url(feed)

    @property
    def base_url(self) -> str:
        """``ws://HOST:PORT``."""
        return self._simulator.base_url

    @property
    def control_url(self) -> str:
        """The URL of the JSON control socket."""
        return self._simulator.control_url

    def stats(self) -> SimStats:
        """A snapshot of counters and connections, taken on the simulator's loop.

        After :meth:`stop` it returns the final state (nothing changes it any more).
        """
        if self._started and not self._portal.running:
            return self._simulator.stats()
        return self._call(self._stats)

    def connections(self) -> tuple[ConnectionInfo, ...]:
        """Snapshots of the remembered data connections, in id order."""
        return self.stats().connections

    def wait_for(self, predicate: Predicate, timeout: float = DEFAULT_WAIT) -> SimStats:
        """Block until ``predicate(stats())`` holds (evaluated on the simulator's loop).

        Raises:
            TimeoutError: when it does not hold within ``timeout`` seconds.
        """
        return self._call(
            lambda: self._simulator.wait_for(predicate, timeout), timeout + WAIT_MARGIN
        )

    def wait_for_connections(
        self,
        count: int,
        timeout: float = DEFAULT_WAIT,
        *,
        authenticated: bool = False,
        subscribed: bool = False,
    ) -> tuple[ConnectionInfo, ...]:
        """Block until ``count`` data connections reached a stage; see ``Simulator``."""
        return self._call(
            lambda: self._simulator.wait_for_connections(
                count, timeout, authenticated=authenticated, subscribed=subscribed
            ),
            timeout + WAIT_MARGIN,
        )

    # ------------------------------------------------------------ faults

    def drop(self, connection_id: int | None = None) -> tuple[int, ...]:
        """Reset TCP connections; see :meth:`Simulator.drop`."""
        return self._call(lambda: self._simulator.drop(connection_id))

    def close_connections(
        self, code: int = NORMAL_CLOSURE, reason: str = "", connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Close connections with a code; see :meth:`Simulator.close_connections`."""
        return self._call(lambda: self._simulator.close_connections(code, reason, connection_id))

    def mute(
        self, seconds: float | None = None, connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Send nothing for a while; see :meth:`Simulator.mute`."""
        return self._call(lambda: self._simulator.mute(seconds, connection_id))

    def unmute(self, connection_id: int | None = None) -> tuple[int, ...]:
        """End a mute; see :meth:`Simulator.unmute`."""
        return self._call(lambda: self._simulator.unmute(connection_id))

    def send_malformed(
        self, kind: MalformedKind | str, connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Send a malformed frame; see :meth:`Simulator.send_malformed`."""
        return self._call(lambda: self._simulator.send_malformed(kind, connection_id))

    def send_error(
        self, code: int, msg: str | None = None, connection_id: int | None = None
    ) -> tuple[int, ...]:
        """Send an error message; see :meth:`Simulator.send_error`."""
        return self._call(lambda: self._simulator.send_error(code, msg, connection_id))

    def refuse(
        self, seconds: float | None = None, mode: RefuseMode | str = RefuseMode.HTTP_503
    ) -> None:
        """Refuse new connections; see :meth:`Simulator.refuse`."""
        self._call(lambda: self._simulator.refuse(seconds, mode))

    def accept(self) -> None:
        """Stop refusing; see :meth:`Simulator.accept`."""
        self._call(self._simulator.accept)

    def fail_auth(self, count: int = 1, code: int = CONNECTION_LIMIT_CODE) -> None:
        """Fail the next auths; see :meth:`Simulator.fail_auth`."""
        self._call(lambda: self._simulator.fail_auth(count, code))

    def delay_auth(self, seconds: float) -> None:
        """Delay auth replies; see :meth:`Simulator.delay_auth`."""
        self._call(lambda: self._simulator.delay_auth(seconds))

    def set_rate(self, rate: float | None) -> None:
        """Change the data rate; see :meth:`Simulator.set_rate`."""
        self._call(lambda: self._simulator.set_rate(rate))

    def set_replay(self, replay: Replay | None) -> None:
        """Replay frames on new connections; see :meth:`Simulator.set_replay`."""
        self._call(lambda: self._simulator.set_replay(replay))

    def inject(self, fault: str, **params: object) -> list[int] | None:
        """Apply a fault by name; see :meth:`Simulator.inject`."""
        return self._call(lambda: self._simulator.inject(fault, **params))
