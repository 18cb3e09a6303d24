"""The core's vocabulary as values: the inputs it is sent and the commands it answers with.

Inputs are what happens to a connection: a user's request (:class:`StartRequested`,
:class:`SymbolsRequested`, ...) or a fact the I/O layer observed (:class:`SessionReady`,
:class:`TimerFired`, ...). They reach the core through one door,
:meth:`~streamfsm._core.core.ConnectionCore.handle`, in h11's ``send(event)`` manner, so a caller,
a queue or a test holds plain frozen values, never closures over the core.

Commands are what the core asks of the I/O layer in return (open a session, arm a timer, ...):
the core appends them to its outbox and a driver (:mod:`streamfsm._core.runner`) carries them
out.
"""

from __future__ import annotations

import enum

import attrs

from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm.errors import ServerError, StreamError

__all__ = [
    "ArmTimer",
    "CancelTimer",
    "ChangeAcknowledged",
    "ChangeRejected",
    "CloseSession",
    "Command",
    "Input",
    "OpenSession",
    "ReportError",
    "RestartRequested",
    "SendChange",
    "SessionEnded",
    "SessionReady",
    "StartRequested",
    "StopRequested",
    "SymbolsRequested",
    "Timer",
    "TimerFired",
]


class Timer(enum.Enum):
    """The timers a core arms; at most one of each kind is armed at a time."""

    BACKOFF = "backoff"
    COOLDOWN = "cooldown"
    STALE = "stale"
    HEALTHY = "healthy"


# ---------------------------------------------------------------- inputs: requests


@attrs.frozen
class StartRequested:
    """Begin the lifecycle; valid from idle or stopped only."""


@attrs.frozen
class StopRequested:
    """Stop from any state; idempotent. ``reason`` goes to the journal."""

    reason: str = "user"


@attrs.frozen
class RestartRequested:
    """Close the session and connect again; ``force`` also overrides an open breaker."""

    force: bool = False


@attrs.frozen
class SymbolsRequested:
    """Change the desired set; while subscribed only the difference is sent."""

    add: Subscription = EMPTY
    remove: Subscription = EMPTY


# ---------------------------------------------------------------- inputs: facts


@attrs.frozen
class SessionReady:
    """The session of ``epoch`` is authenticated and the server acknowledged ``ack``.

    ``rejection`` is set when the server refused part of the initial subscription (405).
    """

    epoch: int
    ack: Subscription
    rejection: ServerError | None = None


@attrs.frozen
class SessionEnded:
    """The session of ``epoch`` failed or closed with ``error``."""

    epoch: int
    error: StreamError


@attrs.frozen
class ChangeAcknowledged:
    """The server acknowledged a change on ``epoch``; ``ack`` is its whole current set."""

    epoch: int
    ack: Subscription


@attrs.frozen
class ChangeRejected:
    """The server refused the change in flight on ``epoch`` (405, 400, 410)."""

    epoch: int
    error: ServerError


@attrs.frozen
class TimerFired:
    """A timer armed with ``token`` expired; a stale token is ignored."""

    timer: Timer
    token: int


Input = (
    StartRequested
    | StopRequested
    | RestartRequested
    | SymbolsRequested
    | SessionReady
    | SessionEnded
    | ChangeAcknowledged
    | ChangeRejected
    | TimerFired
)


# ---------------------------------------------------------------- commands (effects as data)


@attrs.frozen
class OpenSession:
    """Open a connection, authenticate, subscribe to ``subscription`` and report back."""

    epoch: int
    connection_id: str
    subscription: Subscription
    attempt: int = 0


@attrs.frozen
class CloseSession:
    """Close the session of ``epoch`` now, without waiting out a dead peer."""

    epoch: int
    reason: str


@attrs.frozen
class SendChange:
    """Send one subscribe or unsubscribe message on the live session of ``epoch``."""

    epoch: int
    action: str
    symbols: Subscription


@attrs.frozen
class ArmTimer:
    """Send ``TimerFired(timer, token)`` after ``delay`` seconds, replacing any armed one."""

    timer: Timer
    delay: float
    token: int


@attrs.frozen
class CancelTimer:
    """Disarm ``timer`` if armed."""

    timer: Timer


@attrs.frozen
class ReportError:
    """Hand ``error`` to the user's ``on_error`` callback."""

    error: StreamError


Command = OpenSession | CloseSession | SendChange | ArmTimer | CancelTimer | ReportError
