"""Delivery lag: how long market data waited between arriving and reaching the callbacks.

A :class:`LagHistogram` counts one observation per delivered frame into fixed buckets, so the
hot path pays one bisect and two additions per frame, and a metrics scrape reads a consistent
enough :class:`LagSnapshot` from another thread (each counter only grows).
"""

from __future__ import annotations

import bisect
from typing import Final

import attrs

__all__ = ["DEFAULT_LAG_BUCKETS", "LagHistogram", "LagSnapshot"]

#: Upper bounds in seconds: 100 µs is a callback keeping up on loopback, seconds are a backlog.
DEFAULT_LAG_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@attrs.frozen
class LagSnapshot:
    """The lag histogram at one moment.

    Attributes:
        bounds: the buckets' upper bounds, seconds, ascending (``+Inf`` is implied).
        counts: observations per bucket, not cumulative; one more entry than ``bounds`` (the
            last counts observations above every bound).
        total: the sum of every observation, seconds.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        """How many frames were observed."""
        return sum(self.counts)


class LagHistogram:
    """Fixed-bucket counts of delivery lags; written by one thread, read by any."""

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_LAG_BUCKETS) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one frame delivered ``seconds`` after it arrived."""
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self._total += seconds

    def snapshot(self) -> LagSnapshot:
        """The counts so far."""
        return LagSnapshot(self._bounds, tuple(self._counts), self._total)
