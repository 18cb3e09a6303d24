"""Frozen snapshots of what a simulator has seen, for tests and the control endpoint.

No snapshot holds a secret: a connection shows its key as a fingerprint (``...`` and the last
four characters of the key id) and only once it authenticated.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from streamfsm.config import Encoding, Feed
from streamfsm.sim.requests import ALL_CHANNELS, SubscriptionSet

__all__ = ["ConnectionInfo", "SimStats"]


def _frozen_mapping(value: Mapping[Any, int]) -> Mapping[Any, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class ConnectionInfo:
    """One data connection at the moment of the snapshot.

    Attributes:
        id: the simulator's connection id, counting from 1 in accept order.
        feed: the feed of the URL path.
        encoding: msgpack or JSON, from the handshake's Content-Type.
        key: the authenticated key's fingerprint; None before a successful auth.
        subscriptions: the current subscription set.
        acks: subscription acks sent (``acks > 0``: the client has subscribed).
        messages_sent: market-data messages sent (replayed frames count as frames only).
        muted: whether a mute holds everything back.
        open: False once the TCP connection is gone.
        close_code: the close code seen (1006 after a reset or EOF); None while open.
        close_reason: the close reason seen, possibly empty.
    """

    id: int
    feed: Feed
    encoding: Encoding
    key: str | None
    subscriptions: SubscriptionSet
    acks: int
    messages_sent: int
    muted: bool
    open: bool
    close_code: int | None
    close_reason: str

    @property
    def authenticated(self) -> bool:
        """True once an auth succeeded on this connection."""
        return self.key is not None

    @property
    def subscribed(self) -> bool:
        """True once the connection received a subscription ack."""
        return self.acks > 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (used by the control endpoint)."""
        return {
            "id": self.id,
            "feed": self.feed.value,
            "encoding": self.encoding.value,
            "key": self.key,
            "subscriptions": {
                name: sorted(symbols)
                for name in ALL_CHANNELS
                if (symbols := self.subscriptions.channel(name))
            },
            "acks": self.acks,
            "messages_sent": self.messages_sent,
            "muted": self.muted,
            "open": self.open,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
        }


@attrs.frozen(kw_only=True)
class SimStats:
    """Counters and connections of one simulator, taken at one moment on its event loop.

    Attributes:
        connection_attempts: upgrade requests on ``/v2/{feed}``, refused ones included.
        connections_refused: attempts turned away by the ``refuse`` fault.
        connections: every data connection still remembered (open ones and the most recent
            closed ones), in id order.
        auth_attempts: auth messages and header auths, whatever their outcome.
        auth_successes: auths answered ``authenticated``.
        errors_sent: error messages sent, by code (injected ones included).
        messages_sent: market-data messages sent, by symbol.
        frames_sent: market-data frames sent, replayed frames included.
        replays_completed: connections that received a whole replay.
        slots_held: connection slots held per key fingerprint, reaping delays included.
        rate: the current data rate (messages per second; 0: quiet; None: as fast as read).
    """

    connection_attempts: int
    connections_refused: int
    connections: tuple[ConnectionInfo, ...]
    auth_attempts: int
    auth_successes: int
    errors_sent: Mapping[int, int] = attrs.field(converter=_frozen_mapping)
    messages_sent: Mapping[str, int] = attrs.field(converter=_frozen_mapping)
    frames_sent: int
    replays_completed: int
    slots_held: Mapping[str, int] = attrs.field(converter=_frozen_mapping)
    rate: float | None

    @property
    def open_connections(self) -> tuple[ConnectionInfo, ...]:
        """The connections that are still open."""
        return tuple(info for info in self.connections if info.open)

    def connection(self, connection_id: int) -> ConnectionInfo:
        """The connection with ``connection_id``.

        Raises:
            KeyError: when no remembered connection has that id.
        """
        for info in self.connections:
            if info.id == connection_id:
                return info
        raise KeyError(connection_id)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (used by the control endpoint)."""
        return {
            "connection_attempts": self.connection_attempts,
            "connections_refused": self.connections_refused,
            "connections": [info.to_json() for info in self.connections],
            "auth_attempts": self.auth_attempts,
            "auth_successes": self.auth_successes,
            "errors_sent": {str(code): count for code, count in self.errors_sent.items()},
            "messages_sent": dict(self.messages_sent),
            "frames_sent": self.frames_sent,
            "replays_completed": self.replays_completed,
            "slots_held": dict(self.slots_held),
            "rate": self.rate,
        }
