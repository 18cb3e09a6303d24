"""Logging through the standard library, with secrets removed before any handler sees an event.

Every streamfsm event is a ``logging.LogRecord`` on the ``streamfsm`` logger or a child of it
(``streamfsm.sim``, ``streamfsm.pricing``), so the application's ``logging`` configuration
decides what is shown and where. Like every library, streamfsm attaches only a ``NullHandler``:
an application that configures nothing sees nothing, on standard output or anywhere else.

Each record's message is the event name followed by ``key=value`` fields; the record also
carries ``record.event`` (the snake_case name), ``record.fields`` (a dict, already redacted) and
``record.correlation_id``, for structured formatters such as :class:`JsonFormatter`.

Levels: WARNING for outages (a lost or stale connection, a failed attempt, an open breaker),
ERROR for fatal stops and defects, INFO for the rest of the lifecycle, DEBUG for per-attempt
detail. Every event first passes :func:`redact_secrets`: values under secret-looking keys are
replaced, and the secret of every live :class:`~streamfsm.Credentials` is masked wherever it
appears.
"""

from __future__ import annotations

import contextlib
import datetime
import json as jsonlib
import logging
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Final, Protocol, TextIO

__all__ = [
    "FRAME_LOGGERS",
    "LOGGER_NAME",
    "REDACTED",
    "ConsoleFormatter",
    "JsonFormatter",
    "StreamLogger",
    "capture_events",
    "configure_logging",
    "logging_to",
    "pin_library_loggers",
    "redact_secrets",
    "register_secret",
    "transition_level",
]

#: The logger every streamfsm event goes to (or to a child of it).
LOGGER_NAME: Final = "streamfsm"
#: The loggers streamfsm hands to websockets (client and simulator) and picows. They log frames
#: at DEBUG, the auth frame with its secret included; they are pinned above DEBUG.
FRAME_LOGGERS: Final = ("streamfsm.websockets", "streamfsm.sim.websockets", "streamfsm.picows")
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
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


class _SecretHolder(Protocol):
    def get(self) -> str: ...


# Secrets of live credentials only: when a Credentials object is garbage-collected, nothing can
# send (and so leak) its secret any more, and its entry leaves with it. Keyed by id() so equal
# credentials built twice each keep their own entry.
_secrets: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_secrets_lock = threading.Lock()


def register_secret(holder: _SecretHolder) -> None:
    """Mask ``holder.get()`` in every streamfsm log event for as long as ``holder`` lives.

    :class:`~streamfsm.Credentials` registers its secret holder when it is built.
    """
    with _secrets_lock:
        _secrets[id(holder)] = holder


def _live_secrets() -> frozenset[str]:
    with _secrets_lock:
        return frozenset(holder.get() for holder in _secrets.values())


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
    """Mask secret keys and the secret of every live credential in ``event_dict``.

    It has the signature of a structlog processor, so an application that logs through structlog
    may put it in its own chain; streamfsm applies it to every event of its own.
    """
    secrets = _live_secrets()
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _mask(event_dict[key], secrets)
    return event_dict


def _logfmt(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return jsonlib.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class _Message:
    """A record's message, rendered only if a handler formats it: ``event key=value ...``."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: Mapping[str, Any]) -> None:
        self.event = event
        self.fields = fields

    def __str__(self) -> str:
        pairs = " ".join(f"{key}={_logfmt(value)}" for key, value in self.fields.items())
        return f"{self.event} {pairs}" if pairs else self.event


class StreamLogger:
    """A bound logger: redacted ``event key=value`` records on a stdlib logger.

    Args:
        name: the stdlib logger, ``streamfsm`` or a child of it.
        context: fields added to every event (``correlation_id``, ``component``, ...).
    """

    __slots__ = ("_context", "_logger")

    def __init__(self, name: str = LOGGER_NAME, /, **context: Any) -> None:
        self._logger = logging.getLogger(name)
        self._context = context

    def bind(self, **context: Any) -> StreamLogger:
        """A new logger, on the same stdlib logger, with ``context`` added to every event."""
        return StreamLogger(self._logger.name, **{**self._context, **context})

    def log(self, level: int, event: str, **fields: Any) -> None:
        """Log ``event`` at the stdlib ``level``, if the logger is enabled for it."""
        if not self._logger.isEnabledFor(level):
            return
        event_dict = dict(redact_secrets(None, "", {**self._context, **fields}))
        extra = {
            "event": event,
            "fields": event_dict,
            "correlation_id": event_dict.get("correlation_id"),
        }
        self._logger.log(level, "%s", _Message(event, event_dict), extra=extra)

    def debug(self, event: str, **fields: Any) -> None:
        """Log ``event`` at DEBUG."""
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log ``event`` at INFO."""
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log ``event`` at WARNING."""
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR."""
        self.log(logging.ERROR, event, **fields)


#: Triggers that mean the connection was lost: the start of an outage.
_OUTAGE_TRIGGERS: Final = frozenset({"connection_lost", "data_stale", "attempt_failed"})


def transition_level(dst: str, trigger: str, error: str | None) -> int:
    """The level of a ``state_changed`` event: how much an operator needs to see it.

    ERROR for a stop caused by an error (fatal), WARNING for outages (a lost or stale session,
    a failed attempt, the breaker opening), INFO for everything else.
    """
    if dst == "stopped" and error is not None:
        return logging.ERROR
    if trigger in _OUTAGE_TRIGGERS or dst == "circuit_open":
        return logging.WARNING
    return logging.INFO


# ---------------------------------------------------------------- formatters


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, Mapping) else {}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp``, ``level``, ``logger``, ``event`` and the fields.

    Records that did not come from streamfsm get their message as ``event``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (values that JSON cannot hold are shown as strings)."""
        line: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        line.update(_fields_of(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return jsonlib.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    """``timestamp level event key=value ...`` for a terminal or a log file read by people."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one human-readable line."""
        text = f"{_timestamp(record)} {record.levelname.lower():<7} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


# ---------------------------------------------------------------- configuration


def pin_library_loggers() -> None:
    """Keep frames and per-trigger noise out of the logs; only what the guarantees need.

    The frame loggers streamfsm owns (:data:`FRAME_LOGGERS`) are pinned at INFO and refuse
    DEBUG records even if a level is set on them later: websockets logs every frame there, the
    auth frame with its secret included. ``transitions`` logs at INFO on every trigger (noise,
    and 4-5x slower triggers); its logger is set to WARNING only when the application has not
    set a level on it itself.
    """
    for name in FRAME_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not any(isinstance(item, _NoFrames) for item in logger.filters):
            logger.addFilter(_NoFrames())
    machine = logging.getLogger("transitions")
    if machine.level == logging.NOTSET:
        machine.setLevel(logging.WARNING)


class _NoFrames(logging.Filter):
    """Drops DEBUG records, where websockets logs frame contents."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


class _OwnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs; a later call replaces it."""


def configure_logging(
    level: int = logging.INFO, *, json: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Show streamfsm's events: a handler on the ``streamfsm`` logger, at ``level``.

    The command line uses it; applications that configure ``logging`` themselves do not need it.
    A second call replaces the handler of the first. Other loggers are left alone.

    Args:
        level: the lowest stdlib level shown.
        json: JSON lines (:class:`JsonFormatter`) instead of :class:`ConsoleFormatter`.
        stream: where to write; standard error when None.

    Returns:
        The installed handler (remove it from ``logging.getLogger("streamfsm")`` to undo).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _OwnHandler):
            logger.removeHandler(handler)
    installed = _OwnHandler(stream if stream is not None else sys.stderr)
    installed.setFormatter(JsonFormatter() if json else ConsoleFormatter())
    logger.addHandler(installed)
    logger.setLevel(level)
    pin_library_loggers()
    return installed


@contextlib.contextmanager
def logging_to(
    stream: TextIO, level: int = logging.INFO, *, json: bool = False
) -> Iterator[logging.Handler]:
    """:func:`configure_logging` for the block only: the handler and the level are undone after."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = logger.level
    handler = configure_logging(level, json=json, stream=stream)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


@contextlib.contextmanager
def capture_events(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """Collect streamfsm's events as dicts (``event``, ``log_level``, ``logger`` and the fields).

    For tests: the ``streamfsm`` logger is set to ``level`` while the block runs and restored
    after. Records that are not streamfsm events (a library's own messages) are left out.
    """
    events: list[dict[str, Any]] = []
    logger = logging.getLogger(LOGGER_NAME)

    class _Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = getattr(record, "event", None)
            if event is not None:
                events.append(
                    {
                        "event": event,
                        "log_level": record.levelname.lower(),
                        "logger": record.name,
                        **_fields_of(record),
                    }
                )

    collector = _Collector(level)
    saved = logger.level
    logger.addHandler(collector)
    logger.setLevel(level)
    try:
        yield events
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved)
