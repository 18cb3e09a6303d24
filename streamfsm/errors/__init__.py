"""Every error streamfsm raises or reports, split by blame.

The hierarchy::

    StreamError                         base of everything below; never raised itself
    ├── ConfigurationError              a value given to streamfsm is invalid (also ValueError)
    │   └── MissingCredentialsError     an environment variable is missing or blank
    ├── LocalProtocolError              the caller broke the rules of the API
    │   ├── InvalidTransitionError      a trigger that the state table has no row for
    │   ├── ControllerStoppedError      a command sent to a controller that no longer runs
    │   └── InvalidSymbolError          a symbol that is not a valid ticker
    ├── RemoteProtocolError             the peer sent something the protocol does not allow
    │   └── ChangeIgnoredError          an ack shows the server did not apply a requested change
    ├── InternalError                   an unexpected exception inside streamfsm (a defect)
    ├── ShutdownTimeoutError            stop() gave up waiting for the loop thread to end
    ├── TransportError                  the socket failed: refused, reset, closed, timed out
    │   ├── BusUnavailableError         cluster mode: the NATS bus is unreachable or was lost
    │   ├── ConnectTimeoutError         no connection, handshake or reply within its deadline
    │   ├── ConnectionClosedError       the peer or the network closed the session
    │   └── StaleConnectionError        the socket stayed open but no market data came
    └── ServerError                     an Alpaca error message ``{"T": "error", "code": N}``
        ├── InvalidSyntaxError           400 invalid syntax
        ├── NotAuthenticatedError        401 not authenticated
        ├── AuthenticationError          402 auth failed
        ├── AlreadyAuthenticatedError    403 already authenticated
        ├── AuthTimeoutError             404 auth timeout
        ├── SymbolLimitError             405 symbol limit exceeded
        ├── ConnectionLimitError         406 connection limit exceeded
        │   └── PredecessorStillConnectedError 406 after a takeover, before the old socket is reaped
        ├── SlowClientError              407 slow client
        ├── InsufficientSubscriptionError 409 insufficient subscription
        ├── InvalidActionError           410 invalid subscribe action for this feed
        ├── MsgpackOnlyError             412 option messages are only available in MsgPack format
        ├── WildcardNotAllowedError      413 star subscription is not allowed for option quotes
        └── InternalServerError          500 internal error

Every error says whether it is ``fatal``: a fatal error ends the lifecycle in ``stopped`` and is
never retried, a transient one leads to ``backoff`` or ``circuit_open``
(``PredecessorStillConnectedError`` always to ``backoff``, for its own ``retry_after``: the
breaker does not count it). ``SERVER_ERRORS`` is the one table that maps Alpaca codes to classes,
documented messages and that classification; the protocol, the simulator and the state diagram
all read it. It maps 406 to ``ConnectionLimitError``: only the cluster, which knows a takeover
just happened, turns a 406 into ``PredecessorStillConnectedError``.

No message of any class here may contain a secret: errors are built from codes, field names and
redacted fingerprints only.
"""

from __future__ import annotations

from streamfsm.errors._classes import (
    AlreadyAuthenticatedError,
    AuthenticationError,
    AuthTimeoutError,
    BusUnavailableError,
    ChangeIgnoredError,
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLimitError,
    ConnectTimeoutError,
    ControllerStoppedError,
    InsufficientSubscriptionError,
    InternalError,
    InternalServerError,
    InvalidActionError,
    InvalidSymbolError,
    InvalidSyntaxError,
    InvalidTransitionError,
    LocalProtocolError,
    MissingCredentialsError,
    MsgpackOnlyError,
    NotAuthenticatedError,
    RemoteProtocolError,
    ServerError,
    ShutdownTimeoutError,
    SlowClientError,
    StaleConnectionError,
    StreamError,
    SymbolLimitError,
    TransportError,
    WildcardNotAllowedError,
)
from streamfsm.errors._server import SERVER_ERRORS, ServerErrorSpec, server_error
from streamfsm.errors._takeover import PredecessorStillConnectedError

__all__ = [
    "SERVER_ERRORS",
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
    "PredecessorStillConnectedError",
    "RemoteProtocolError",
    "ServerError",
    "ServerErrorSpec",
    "ShutdownTimeoutError",
    "SlowClientError",
    "StaleConnectionError",
    "StreamError",
    "SymbolLimitError",
    "TransportError",
    "WildcardNotAllowedError",
    "server_error",
]

# The classes live in private modules; they are streamfsm.errors' to name (reprs, tracebacks).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
