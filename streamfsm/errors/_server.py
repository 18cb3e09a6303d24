"""The one table of Alpaca's error codes: class, documented message and classification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from streamfsm.errors._classes import (
    AlreadyAuthenticatedError,
    AuthenticationError,
    AuthTimeoutError,
    ConnectionLimitError,
    InsufficientSubscriptionError,
    InternalServerError,
    InvalidActionError,
    InvalidSyntaxError,
    MsgpackOnlyError,
    NotAuthenticatedError,
    ServerError,
    SlowClientError,
    SymbolLimitError,
    WildcardNotAllowedError,
)

__all__ = ["SERVER_ERRORS", "ServerErrorSpec", "server_error"]


class ServerErrorSpec:
    """One row of the error table: an Alpaca code, its class and its classification."""

    __slots__ = ("code", "error_class")

    def __init__(self, error_class: type[ServerError]) -> None:
        self.code = error_class.code
        self.error_class = error_class

    @property
    def message(self) -> str:
        """The message Alpaca documents for this code."""
        return self.error_class.documented_message

    @property
    def fatal(self) -> bool:
        """True when the code ends the lifecycle and is never retried."""
        return self.error_class.fatal

    @property
    def rejects_change(self) -> bool:
        """True when, during a live session, the code only rejects one subscription change."""
        return self.error_class.rejects_change


#: Alpaca's documented error codes, in code order. The one source of their classification.
SERVER_ERRORS: Final[Mapping[int, ServerErrorSpec]] = {
    spec.code: spec
    for spec in (
        ServerErrorSpec(cls)
        for cls in (
            InvalidSyntaxError,
            NotAuthenticatedError,
            AuthenticationError,
            AlreadyAuthenticatedError,
            AuthTimeoutError,
            SymbolLimitError,
            ConnectionLimitError,
            SlowClientError,
            InsufficientSubscriptionError,
            InvalidActionError,
            MsgpackOnlyError,
            WildcardNotAllowedError,
            InternalServerError,
        )
    )
}


def server_error(code: int, message: str | None = None) -> ServerError:
    """Build the typed error for an Alpaca error code.

    Args:
        code: the ``code`` field of an error message.
        message: the ``msg`` field; the documented text is used when None.

    Returns:
        An instance of the subclass registered for ``code``, or a plain transient
        ``ServerError`` carrying ``code`` for a code Alpaca has not documented.
    """
    spec = SERVER_ERRORS.get(code)
    if spec is None:
        return ServerError(message, code=code)
    return spec.error_class(message)
