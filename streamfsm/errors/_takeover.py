"""The takeover form of a 406 (import it from :mod:`streamfsm.errors`).

Kept apart from the other classes because only cluster mode builds it, from a plain
:class:`~streamfsm.errors.ConnectionLimitError`, when it knows a takeover just happened.
"""

from __future__ import annotations

import math
from typing import Final

from streamfsm.errors._classes import ConnectionLimitError

__all__ = ["MAX_RETRY_AFTER", "PredecessorStillConnectedError"]

#: The longest cool-down a ``PredecessorStillConnectedError`` may ask for: the cap every other
#: configurable delay of streamfsm has (``StreamConfig`` validates its seconds against it too).
#: Anything longer is a unit mistake (milliseconds for seconds), not a reap window.
MAX_RETRY_AFTER: Final = 7 * 24 * 3600.0


class PredecessorStillConnectedError(ConnectionLimitError):
    """406 right after a cluster takeover: the previous holder's socket is not reaped yet.

    Alpaca keeps a crashed holder's connection for up to about 90 s, so the new holder's first
    attempts are refused with 406 although no one else holds the slot for long. Transient; the
    next attempt waits exactly ``retry_after`` seconds, and the breaker does not count it, since
    the refusal says nothing about the health of Alpaca or of this process.

    Built from the plain 406 by whoever knows a takeover just happened (see :meth:`after`);
    the message and the server code are the server's, the original error is the ``__cause__``.

    Attributes:
        retry_after: seconds to wait before the next attempt; finite, > 0 and at most a week.

    Raises:
        ValueError: from the constructor, when ``retry_after`` is not a finite number of
            seconds in (0, one week].
    """

    def __init__(
        self, message: str | None = None, *, retry_after: float, code: int | None = None
    ) -> None:
        if (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or not math.isfinite(retry_after)
            or not 0 < retry_after <= MAX_RETRY_AFTER
        ):
            raise ValueError(
                "retry_after: expected finite seconds in (0, "
                f"{MAX_RETRY_AFTER:g}], got {retry_after!r}"
            )
        self.retry_after = float(retry_after)
        super().__init__(message, code=code)

    def __str__(self) -> str:
        return (
            f"{super().__str__()} (the previous holder's connection is not reaped yet; "
            f"next attempt in {self.retry_after:g} s)"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_predecessor, (self.message, self.retry_after, self.server_code))

    @classmethod
    def after(
        cls, error: ConnectionLimitError, *, retry_after: float
    ) -> PredecessorStillConnectedError:
        """The takeover form of ``error``: same message and code, ``error`` as its cause.

        Raises:
            ValueError: when ``retry_after`` is out of bounds (see the class).
        """
        converted = cls(error.message, retry_after=retry_after, code=error.server_code)
        converted.__cause__ = error
        return converted


def _rebuild_predecessor(
    message: str, retry_after: float, code: int
) -> PredecessorStillConnectedError:
    """Unpickle: the keyword-only ``retry_after`` is not among ``Exception.args``."""
    return PredecessorStillConnectedError(message, retry_after=retry_after, code=code)
