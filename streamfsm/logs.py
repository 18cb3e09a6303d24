"""Structured logging with secrets removed before any processor sees an event.

streamfsm logs through structlog and respects the application's structlog configuration (and
``structlog.testing.capture_logs``). Every event first passes :func:`redact_secrets`, whatever that
configuration is: values under secret-looking keys are replaced, and any registered secret string
found inside another value is masked. Credentials register their secret when they are built.

Events are snake_case names with key-value fields; there is no per-message INFO.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, TextIO

import structlog

__all__ = [
    "REDACTED",
    "StreamLogger",
    "configure_logging",
    "pin_library_loggers",
    "redact_secrets",
    "register_secret",
]

REDACTED: Final = "***"
#: Keys whose values are always masked, compared case-insensitively.
SECRET_KEYS: Final = frozenset(
    {
        "secret",
        "secret_key",
        "api_secret",
        "password",
        "token",
        "authorization",
        "apca-api-secret-key",
        "apca_api_secret_key",
    }
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Mask ``secret`` wherever it appears in a streamfsm log event from now on."""
    with _secrets_lock:
        _secrets.add(secret)


def _mask(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
        for secret in secrets:
            data = data.replace(secret.encode(), REDACTED.encode())
        return data
    if isinstance(value, Mapping):
        return {
            key: REDACTED if str(key).lower() in SECRET_KEYS else _mask(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_mask(item, secrets) for item in value)
    if isinstance(value, BaseException):
        return _mask(f"{type(value).__name__}: {value}", secrets)
    return value


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret keys and every registered secret string.

    Applications that configure structlog may add it to their own chain too; streamfsm applies
    it to its own events before the chain runs in any case.
    """
    with _secrets_lock:
        secrets = frozenset(_secrets)
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _mask(event_dict[key], secrets)
    return event_dict


class StreamLogger:
    """A bound logger whose events are redacted before structlog's configured chain runs.

    It resolves structlog's configuration at every call, so ``capture_logs()`` and an
    application's later ``structlog.configure()`` both apply.
    """

    __slots__ = ("_context",)

    def __init__(self, **context: Any) -> None:
        self._context = context

    def bind(self, **context: Any) -> StreamLogger:
        """A new logger with ``context`` added to every event."""
        return StreamLogger(**{**self._context, **context})

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        event_dict = redact_secrets(None, level, {**self._context, **fields})
        getattr(structlog.get_logger("streamfsm"), level)(event, **event_dict)

    def debug(self, event: str, **fields: Any) -> None:
        """Log ``event`` at DEBUG."""
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log ``event`` at INFO."""
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log ``event`` at WARNING."""
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR."""
        self._emit("error", event, fields)


def pin_library_loggers() -> None:
    """Keep the libraries' stdlib loggers from logging what they must not.

    ``transitions`` logs at INFO on every callback (noise, and 4-5x slower triggers).
    ``websockets`` logs every frame at DEBUG, the auth frame with its secret included, on the
    logger streamfsm hands it (``streamfsm.websockets``); an application that turns on DEBUG
    globally must still never see a frame.
    """
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("streamfsm.websockets").setLevel(logging.INFO)


def configure_logging(
    level: int = logging.INFO, *, json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog for the CLI: console or JSON lines, filtered at ``level``.

    Args:
        level: the lowest stdlib level number to emit.
        json: JSON lines (production) instead of the console renderer (development).
        stream: where to write; standard error when None.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    pin_library_loggers()
