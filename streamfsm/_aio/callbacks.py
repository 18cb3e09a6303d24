"""One user callback as the dispatcher calls it: the callback and its converter, an awaitable it
returned that is still to be awaited, and the rate-limited log line when it raises.

:mod:`streamfsm._aio.dispatch` decides when and in what order callbacks run; this module holds
what one call needs, so a callback's failure is reported the same way wherever it happens.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final

from streamfsm.logs import StreamLogger

__all__ = ["LOGGED_FAILURES", "LOG_EVERY", "Delivery", "Pending", "log_callback_failure"]

#: How many callback failures are logged in full before only every n-th one is.
LOGGED_FAILURES: Final = 20
#: After LOGGED_FAILURES, log one failure in this many.
LOG_EVERY: Final = 1000


class Delivery:
    """One user callback and how to call it.

    Args:
        name: the callback's role, for logs (``on_quote``...).
        callback: a function, coroutine function or callable object.
        convert: turns a fast struct into what the callback expects; None hands it as it is.
    """

    __slots__ = ("callback", "convert", "name")

    def __init__(
        self,
        name: str,
        callback: Callable[[Any], object],
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.callback = callback
        self.convert = convert


class Pending:
    """An awaitable a callback returned, waiting for the consumer task to await it."""

    __slots__ = ("awaitable", "delivery", "message")

    def __init__(self, awaitable: Awaitable[object], delivery: Delivery, message: object) -> None:
        self.awaitable = awaitable
        self.delivery = delivery
        self.message = message

    def cancel(self) -> None:
        """Never await it: close a coroutine so that it does not warn."""
        if inspect.iscoroutine(self.awaitable):
            self.awaitable.close()


def log_callback_failure(
    log: StreamLogger, name: str, message: Any, exc: Exception, failures: int
) -> None:
    """Log the ``failures``-th callback failure: the first LOGGED_FAILURES in full, then one in
    LOG_EVERY, so a callback that fails on every message cannot flood the log."""
    if failures <= LOGGED_FAILURES or failures % LOG_EVERY == 0:
        log.error(
            "callback_failed",
            callback=name,
            symbol=getattr(message, "symbol", None),
            error_type=type(exc).__name__,
            error=str(exc),
            failures=failures,
        )
