"""The Alpaca market-data stream protocol without I/O: frames in, events out, and back.

Decoding lives in :mod:`streamfsm._core.decoder` (:class:`FrameDecoder`) and the control events
in :mod:`streamfsm._core.events`; both are re-exported here, the one entry point of the codec.
This module encodes the client's messages and classifies the server's errors.

The module knows nothing of time, sockets or state. The handshake
(:mod:`streamfsm._core.handshake`) waits for :class:`Connected`, sends :func:`encode_auth`, waits
for :class:`Authenticated`, sends :func:`encode_subscribe` and waits for the
:class:`SubscriptionAck`, whose set is the server's whole current subscription. A
:class:`ServerErrorEvent` can come at any point; :func:`is_fatal` on its
:meth:`~ServerErrorEvent.error` says whether retrying can help, from the one table in
:mod:`streamfsm.errors`. The same messages serve all four markets (stocks, crypto, options, news);
only the channels and the symbols differ.
"""

from __future__ import annotations

from typing import Final, TypeVar

import msgspec

from streamfsm._core.decoder import DecodedFrame, FrameDecoder
from streamfsm._core.events import (
    Authenticated,
    Connected,
    ControlEvent,
    ServerErrorEvent,
    SubscriptionAck,
)
from streamfsm._core.subscriptions import Subscription
from streamfsm.config import MAX_SUBSCRIBE_FRAGMENT, Encoding
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    SERVER_ERRORS,
    LocalProtocolError,
    ServerErrorSpec,
    StreamError,
)

__all__ = [
    "Authenticated",
    "Connected",
    "ControlEvent",
    "DecodedFrame",
    "FrameDecoder",
    "ServerErrorEvent",
    "SubscriptionAck",
    "auth_headers",
    "classify",
    "content_type",
    "encode_auth",
    "encode_subscribe",
    "encode_unsubscribe",
    "is_fatal",
]

# ---------------------------------------------------------------- encoding

_MSGPACK_ENCODER: Final = msgspec.msgpack.Encoder()
_JSON_ENCODER: Final = msgspec.json.Encoder()
_CONTENT_TYPES: Final = {
    Encoding.MSGPACK: "application/msgpack",
    Encoding.JSON: "application/json",
}
#: Header names for authenticating during the WebSocket handshake.
_KEY_ID_HEADER: Final = "APCA-API-KEY-ID"
_SECRET_HEADER: Final = "APCA-API-SECRET-KEY"

_Payload = TypeVar("_Payload", bytes, str)


def _fragments(payload: _Payload) -> list[_Payload]:
    step = MAX_SUBSCRIBE_FRAGMENT
    return [payload[start : start + step] for start in range(0, len(payload), step)]


def encode_auth(credentials: Credentials, encoding: Encoding) -> bytes | str:
    """Encode ``{"action": "auth", "key": ..., "secret": ...}``.

    The result holds the secret in clear: hand it to the socket and drop it; never log it.

    Returns:
        ``bytes`` for msgpack (a binary frame), ``str`` for JSON (a text frame).
    """
    message = {"action": "auth", "key": credentials.key_id, "secret": credentials.reveal()}
    if Encoding(encoding) is Encoding.MSGPACK:
        return _MSGPACK_ENCODER.encode(message)
    return _JSON_ENCODER.encode(message).decode()


def _encode_action(
    action: str, subscription: Subscription, encoding: Encoding
) -> list[bytes] | list[str]:
    if not subscription:
        raise LocalProtocolError(f"nothing to {action}: the subscription is empty")
    message = {"action": action, **subscription.to_wire()}
    if Encoding(encoding) is Encoding.MSGPACK:
        return _fragments(_MSGPACK_ENCODER.encode(message))
    return _fragments(_JSON_ENCODER.encode(message).decode())


def encode_subscribe(subscription: Subscription, encoding: Encoding) -> list[bytes] | list[str]:
    """Encode ``{"action": "subscribe", "trades": [...], "quotes": [...], "updatedBars": ...}``.

    Subscribing is additive on the server: pass only what to add. Channels are named as on the
    wire (``updatedBars``, ``dailyBars``), channels without symbols are left out, symbols sorted.

    Returns:
        The fragments of one WebSocket message, each at most ``MAX_SUBSCRIBE_FRAGMENT`` bytes,
        as alpaca-py sends them; pass the list to ``websockets``' ``send``, which sends an
        iterable as one fragmented message. JSON fragments are ``str`` cut at characters, which
        are bytes here: symbols are ASCII.

    Raises:
        LocalProtocolError: when ``subscription`` is empty.
    """
    return _encode_action("subscribe", subscription, encoding)


def encode_unsubscribe(subscription: Subscription, encoding: Encoding) -> list[bytes] | list[str]:
    """Encode ``{"action": "unsubscribe", ...}``, fragmented as :func:`encode_subscribe` does.

    Raises:
        LocalProtocolError: when ``subscription`` is empty.
    """
    return _encode_action("unsubscribe", subscription, encoding)


class _AuthHeaders(dict[str, str]):
    """Handshake headers whose repr (and so str) masks the secret."""

    def __repr__(self) -> str:
        shown = {name: "***" if name == _SECRET_HEADER else value for name, value in self.items()}
        return repr(shown)

    __str__ = __repr__


def auth_headers(credentials: Credentials) -> dict[str, str]:
    """Return the headers that authenticate during the WebSocket handshake.

    The values hold the secret in clear; the mapping's ``repr`` does not show it.
    """
    return _AuthHeaders({_KEY_ID_HEADER: credentials.key_id, _SECRET_HEADER: credentials.reveal()})


def content_type(encoding: Encoding) -> str:
    """Return the ``Content-Type`` header that asks the server for ``encoding`` frames."""
    return _CONTENT_TYPES[Encoding(encoding)]


def classify(code: int) -> ServerErrorSpec | None:
    """Return the row of :data:`streamfsm.errors.SERVER_ERRORS` for ``code``.

    Returns:
        The class, documented message and classification (``fatal``, ``rejects_change``) of a
        documented code; None for a code Alpaca has not documented, which streamfsm treats as a
        transient :class:`~streamfsm.errors.ServerError`.
    """
    return SERVER_ERRORS.get(code)


def is_fatal(error: BaseException) -> bool:
    """Say whether ``error`` ends the lifecycle (True) or is worth another attempt (False).

    A streamfsm error says so itself (``StreamError.fatal``, from the error table for server
    codes). ``OSError`` (which includes ``TimeoutError`` and connection resets) and ``EOFError``
    from below the transport are transient. Anything else is an unexpected failure, a bug: it is
    fatal so it surfaces instead of being retried forever, the rule websockets' reconnecting
    client applies too.
    """
    if isinstance(error, StreamError):
        return error.fatal
    return not isinstance(error, OSError | EOFError)
