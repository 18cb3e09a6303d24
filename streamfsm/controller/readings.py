"""What a :class:`~streamfsm.StreamController` tells about itself, safe from any thread.

The state, the latest error, the journal, the health snapshot, the desired subscriptions, a
callback's arrival time and lag, and the waits on a state or a synced subscription. Reads of the
core are of values it replaces whole, so no lock is needed; ``health()`` runs on the controller's
loop when one runs, so its figures are consistent with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streamfsm._aio.arguments import check_listener
from streamfsm._aio.health import Health, snapshot
from streamfsm._core.machine import State

if TYPE_CHECKING:
    from streamfsm._aio.bridge import EngineBridge
    from streamfsm._aio.clock import SystemClock
    from streamfsm._aio.feed import TransitionFeed
    from streamfsm._core.core import ConnectionCore
    from streamfsm._core.records import TransitionRecord
    from streamfsm._core.subscriptions import Subscription
    from streamfsm._core.tracking import DataTracker
    from streamfsm.cluster.node import ClusterNode
    from streamfsm.errors import StreamError

__all__ = ["Readings"]


class Readings:
    """The controller's reads and waits, mixed into it; it assumes the controller's core,
    transition feed, bridge, data tracker, clock and correlation id."""

    correlation_id: str
    core: ConnectionCore
    _bridge: EngineBridge
    _clock: SystemClock
    _feed: TransitionFeed
    _tracker: DataTracker
    _node: ClusterNode | None
    _lease_listeners: list[Callable[[TransitionRecord], object]]

    @property
    def state(self) -> State:
        """The current state."""
        return self.core.state

    def is_connected(self) -> bool:
        """True exactly in ``subscribed``."""
        return self.core.state is State.SUBSCRIBED

    @property
    def last_error(self) -> StreamError | None:
        """The error of the latest failure, rejected change or fatal stop."""
        return self.core.last_error

    def journal(self) -> tuple[TransitionRecord, ...]:
        """The retained transition records, oldest first."""
        return self._feed.journal.records()

    def lease_journal(self) -> tuple[TransitionRecord, ...]:
        """Cluster mode: the lease machine's retained records, oldest first (else empty)."""
        node = self._node
        return tuple(node.lease_journal) if node is not None else ()

    def health(self) -> Health:
        """A consistent snapshot, taken on the controller's loop when one runs."""
        engine = self._bridge.engine
        dispatcher = engine.dispatcher if engine is not None else None

        node = self._node

        def take() -> Health:
            return snapshot(
                self.correlation_id,
                self.core,
                self._tracker,
                dispatcher,
                self._clock.monotonic(),
                cluster=node.reading() if node is not None else None,
            )

        return self._bridge.call(take) if self._bridge.running else take()

    def desired(self) -> Subscription:
        """The symbols asked for, per channel (frozen; any thread); a refused change leaves it."""
        return self.core.book.desired

    def arrival_time(self) -> float | None:
        """Inside a market-data callback: when its frame arrived (monotonic seconds on the
        controller's clock, carried with the frame through the backlog), else None."""
        engine = self._bridge.engine
        return engine.dispatcher.current_received_at if engine is not None else None

    def delivery_lag(self) -> float:
        """Inside a market-data callback: seconds since its frame arrived (else 0.0), so prices
        are dated by arrival and a backlog behind slow callbacks ages them."""
        engine = self._bridge.engine
        arrived = engine.dispatcher.current_received_at if engine is not None else None
        return max(0.0, self._clock.monotonic() - arrived) if arrived is not None else 0.0

    def add_listener(self, listener: Callable[[TransitionRecord], object]) -> None:
        """Call ``listener(record)`` on the loop after every transition; errors are logged.

        Raises:
            ConfigurationError: when ``listener`` is not callable.
        """
        check_listener(listener)
        self._feed.add_listener(listener)

    def add_lease_listener(self, listener: Callable[[TransitionRecord], object]) -> None:
        """Cluster mode: call ``listener(record)`` on the loop after every transition of the
        lease machine (joins, takeovers, fences, leaves); errors are logged.

        Raises:
            ConfigurationError: when ``listener`` is not callable.
        """
        check_listener(listener)
        self._lease_listeners.append(listener)

    def wait_for(self, state: State, timeout: float | None = None) -> bool:
        """Block until in ``state``; False when ``timeout`` passes first. Not from a callback:
        the loop it waits on is the one running the callback."""
        return self._feed.wait(lambda: self.core.state is state, timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until subscribed with the acknowledged set equal to the desired set."""
        core = self.core
        return self._feed.wait(
            lambda: (
                core.state is State.SUBSCRIBED and core.book.in_sync and not core.change_in_flight
            ),
            timeout,
        )
