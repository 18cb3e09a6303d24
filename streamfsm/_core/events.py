"""The connection events a server frame can carry besides market data. Pure values.

:class:`Connected` and :class:`Authenticated` answer the handshake, :class:`SubscriptionAck` carries
the server's whole current subscription, :class:`ServerErrorEvent` an error code at any point.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from streamfsm._core.subscriptions import Subscription
from streamfsm.errors import ServerError, server_error

__all__ = [
    "Authenticated",
    "Connected",
    "ControlEvent",
    "ServerErrorEvent",
    "SubscriptionAck",
]

# ---------------------------------------------------------------- control events


@attrs.frozen
class Connected:
    """The server accepted the WebSocket: ``{"T": "success", "msg": "connected"}``."""


@attrs.frozen
class Authenticated:
    """The server accepted the credentials: ``{"T": "success", "msg": "authenticated"}``."""


@attrs.frozen
class SubscriptionAck:
    """The server's subscription after a change: ``{"T": "subscription", "trades": [...], ...}``.

    Attributes:
        subscription: the server's entire current set on every channel, not the change just
            made. The ack's ``corrections`` and ``cancelErrors`` lists (which mirror ``trades``)
            are ignored.
    """

    subscription: Subscription


@attrs.frozen
class ServerErrorEvent:
    """An error message from the server: ``{"T": "error", "code": 402, "msg": "auth failed"}``.

    Attributes:
        code: Alpaca's error code.
        message: the server's text, empty when it sent none.
    """

    code: int
    message: str

    def error(self) -> ServerError:
        """Return the typed error for this code (the documented text when ``message`` is empty)."""
        return server_error(self.code, self.message or None)


#: Everything a frame can carry besides market data.
ControlEvent: TypeAlias = Connected | Authenticated | SubscriptionAck | ServerErrorEvent
