"""The error classes of :mod:`streamfsm.errors` (import them from there)."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyAuthenticatedError",
    "AuthTimeoutError",
    "AuthenticationError",
    "BusUnavailableError",
    "ChangeIgnoredError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ConnectionLimitError",
    "ControllerStoppedError",
    "InsufficientSubscriptionError",
    "InternalError",
    "InternalServerError",
    "InvalidActionError",
    "InvalidSymbolError",
    "InvalidSyntaxError",
    "InvalidTransitionError",
    "LocalProtocolError",
    "MissingCredentialsError",
    "MsgpackOnlyError",
    "NotAuthenticatedError",
    "RemoteProtocolError",
    "ServerError",
    "ShutdownTimeoutError",
    "SlowClientError",
    "StaleConnectionError",
    "StreamError",
    "SymbolLimitError",
    "TransportError",
    "WildcardNotAllowedError",
]


class StreamError(Exception):
    """Base class of every streamfsm error.

    Attributes:
        fatal: True when retrying cannot help (bad credentials, missing entitlement, our misuse).
    """

    fatal: ClassVar[bool] = False


# ---------------------------------------------------------------- configuration


class ConfigurationError(StreamError, ValueError):
    """A configuration value is invalid.

    The message names the field, what was expected and what came.

    Attributes:
        field: the name of the offending field or argument.
    """

    fatal = True

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"{field}: expected {expected}, got {got!r}")


class MissingCredentialsError(ConfigurationError):
    """Credential environment variables are unset or blank.

    Attributes:
        variables: every missing or blank variable, in the order they are read.
        variable: the first of them.
    """

    def __init__(self, *variables: str) -> None:
        self.variables = variables
        self.variable = variables[0]
        names = " and ".join(variables)
        verb = "is" if len(variables) == 1 else "are"
        StreamError.__init__(
            self, f"environment variable {names} {verb} missing or blank; set your Alpaca key"
        )
        self.field = self.variable
        self.expected = "a non-blank value"
        self.got = None


# ---------------------------------------------------------------- local misuse


class LocalProtocolError(StreamError):
    """The caller broke the rules of the API; the controller's state is unchanged."""

    fatal = True


class InvalidTransitionError(LocalProtocolError):
    """A trigger fired in a state where the transition table has no row for it.

    Attributes:
        state: the name of the state the machine was (and still is) in.
        trigger: the name of the trigger that was refused.
    """

    def __init__(self, state: str, trigger: str) -> None:
        self.state = state
        self.trigger = trigger
        super().__init__(f"no transition for trigger {trigger!r} from state {state!r}")


class ControllerStoppedError(LocalProtocolError):
    """A command reached a controller whose event loop has already finished."""


class InvalidSymbolError(LocalProtocolError, ValueError):
    """A symbol is not a valid ticker; nothing was subscribed or unsubscribed.

    Attributes:
        symbol: the rejected value.
    """

    def __init__(self, symbol: object, reason: str) -> None:
        self.symbol = symbol
        self.reason = reason
        super().__init__(f"invalid symbol {symbol!r}: {reason}")


class InternalError(StreamError):
    """An unexpected exception inside streamfsm: a defect, logged with its traceback.

    It fails only the session it happened in, as a transient error, so backoff and the breaker
    bound any repetition while the stream keeps its other duties.
    """


class ShutdownTimeoutError(StreamError):
    """``stop()`` waited ``timeout`` seconds and the controller's loop thread still runs.

    Attributes:
        timeout: the seconds waited.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        super().__init__(f"the controller's loop thread did not end within {timeout} s")


# ---------------------------------------------------------------- remote and transport


class RemoteProtocolError(StreamError):
    """The server sent bytes or messages the Alpaca protocol does not allow here.

    Treated as transient: a fresh connection usually speaks properly again.
    """


class ChangeIgnoredError(RemoteProtocolError):
    """The server acknowledged a subscription change without applying all of it.

    The ignored symbols leave (or, for an unsubscribe, stay in) the desired set, so the request
    is not repeated in a loop; the session itself is fine.

    Attributes:
        action: ``subscribe`` or ``unsubscribe``.
        symbols: the ``(channel, symbol)`` pairs the server did not apply, sorted.
    """

    def __init__(self, action: str, symbols: list[tuple[str, str]]) -> None:
        self.action = action
        self.symbols = symbols
        shown = ", ".join(f"{channel}:{symbol}" for channel, symbol in symbols)
        super().__init__(f"the server acknowledged the {action} without applying {shown}")


class TransportError(StreamError):
    """The connection failed below the Alpaca protocol; always transient."""


class ConnectTimeoutError(TransportError):
    """A connect, handshake or protocol reply did not arrive within its deadline.

    Attributes:
        phase: which step timed out (``connect``, ``welcome``, ``auth``, ``subscribe``).
        seconds: the deadline that passed.
    """

    def __init__(self, phase: str, seconds: float) -> None:
        self.phase = phase
        self.seconds = seconds
        super().__init__(f"{phase} did not complete within {seconds:g} s")


class BusUnavailableError(TransportError):
    """Cluster mode: the NATS bus that carries the shared connection is unreachable or was lost.

    Transient: the member retries with backoff while the NATS client reconnects.
    """


class ConnectionClosedError(TransportError):
    """The peer or the network closed the connection.

    Attributes:
        code: the WebSocket close code, or None when no close frame came (reset, EOF).
        reason: the close reason the peer sent, possibly empty.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        shown = "no close frame" if code is None else f"close code {code}"
        super().__init__(f"connection closed ({shown}){': ' + reason if reason else ''}")


class StaleConnectionError(TransportError):
    """The socket stayed open but no market data arrived within the stale threshold.

    Attributes:
        channel: the channel whose threshold passed first.
        silent_for: seconds since the last market data on that channel.
    """

    def __init__(self, channel: str, silent_for: float) -> None:
        self.channel = channel
        self.silent_for = silent_for
        super().__init__(f"no {channel} data for {silent_for:.3f} s on an open connection")


# ---------------------------------------------------------------- server error codes


class ServerError(StreamError):
    """An error message sent by the Alpaca server.

    Attributes:
        code: the Alpaca error code.
        message: the server's text for it.
    """

    code: ClassVar[int] = 0
    documented_message: ClassVar[str] = "unknown error"
    #: Rejects one subscription change but leaves the session and earlier subscriptions intact.
    rejects_change: ClassVar[bool] = False

    def __init__(self, message: str | None = None, *, code: int | None = None) -> None:
        self.message = message if message is not None else self.documented_message
        self.server_code = code if code is not None else self.code
        super().__init__(f"alpaca error {self.server_code}: {self.message}")


class InvalidSyntaxError(ServerError):
    """400: the server could not parse a message; while streaming it rejects that change."""

    code = 400
    documented_message = "invalid syntax"
    fatal = True
    rejects_change = True


class NotAuthenticatedError(ServerError):
    """401: a subscription was sent before authenticating (our bug)."""

    code = 401
    documented_message = "not authenticated"
    fatal = True


class AuthenticationError(ServerError):
    """402: the key id or secret was refused. Never retried."""

    code = 402
    documented_message = "auth failed"
    fatal = True


class AlreadyAuthenticatedError(ServerError):
    """403: a second auth on one connection (our bug)."""

    code = 403
    documented_message = "already authenticated"
    fatal = True


class AuthTimeoutError(ServerError):
    """404: the server saw no auth within its deadline (10 s)."""

    code = 404
    documented_message = "auth timeout"


class SymbolLimitError(ServerError):
    """405: the plan's symbol limit is exceeded; the subscription is as it was before."""

    code = 405
    documented_message = "symbol limit exceeded"
    rejects_change = True


class ConnectionLimitError(ServerError):
    """406: the account already holds its allowed connections.

    Usually our own half-dead session that the server has not reaped yet (about 90 s), a second
    process, or a rolling deploy. Transient, with a long cool-down, and counted by the breaker.
    """

    code = 406
    documented_message = "connection limit exceeded"


class SlowClientError(ServerError):
    """407: the client reads too slowly and the server is about to disconnect it."""

    code = 407
    documented_message = "slow client"


class InsufficientSubscriptionError(ServerError):
    """409: the account's plan does not include this feed (for example SIP). Never retried."""

    code = 409
    documented_message = "insufficient subscription"
    fatal = True


class InvalidActionError(ServerError):
    """410: a subscribe action this feed does not offer; while streaming it rejects that change."""

    code = 410
    documented_message = "invalid subscribe action for this feed"
    fatal = True
    rejects_change = True


class MsgpackOnlyError(ServerError):
    """412: the option stream speaks msgpack only; a JSON client is refused (our bug or config)."""

    code = 412
    documented_message = "option messages are only available in MsgPack format"
    fatal = True


class WildcardNotAllowedError(ServerError):
    """413: ``*`` is refused for option quotes; while streaming it rejects that change."""

    code = 413
    documented_message = "star subscription is not allowed for option quotes"
    fatal = True
    rejects_change = True


class InternalServerError(ServerError):
    """500: an error inside Alpaca's server."""

    code = 500
    documented_message = "internal error"
