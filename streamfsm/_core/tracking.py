"""Per-message bookkeeping on the hot path: counts, latest message per symbol, and gaps.

:class:`DataTracker` is written by the socket reader for every decoded frame and read by the
watchdog, ``health()`` and the pricing service. Its per-message work is a few dictionary writes;
nothing here logs, allocates per message or touches the state machine.

A gap opens for every desired (channel, symbol) pair when a session is lost, remembering the
exchange timestamp of the last message seen before; it closes with a :class:`GapReport` at the
first message after the reconnect, so a pricing service knows exactly which window to refresh.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

import attrs

from streamfsm._core.core import ChannelActivity
from streamfsm._core.subscriptions import CHANNELS, Subscription
from streamfsm.models import Bar, DailyBar, Quote, Trade, TradingStatus, UpdatedBar

__all__ = ["CHANNEL_OF", "DataTracker", "GapReport"]

#: The channel each fast model type arrives on.
CHANNEL_OF: Final[dict[type, str]] = {
    Quote: "quotes",
    Trade: "trades",
    Bar: "bars",
    UpdatedBar: "bars",
    DailyBar: "bars",
    TradingStatus: "statuses",
}
_symbol_of: Final = operator.attrgetter("symbol")
#: Gap reports kept for ``health()``.
RECENT_GAPS: Final = 100


@attrs.frozen(kw_only=True)
class GapReport:
    """A window in which no data arrived for one symbol on one channel.

    Attributes:
        symbol: the symbol.
        channel: ``quotes``, ``trades`` or ``bars``.
        last_seen_before: exchange time of the last message before the outage (None if none).
        first_seen_after: exchange time of the first message after the reconnect.
        lost_at: wall-clock UTC time the connection was lost.
        epoch: the connection epoch that was lost (its journal records carry the same).
    """

    symbol: str
    channel: str
    last_seen_before: datetime | None
    first_seen_after: datetime
    lost_at: datetime
    epoch: int = 0


class DataTracker:
    """Counts and latest messages, updated once per frame by the socket reader."""

    def __init__(self, activity: ChannelActivity, on_gap: Callable[[GapReport], None]) -> None:
        self.activity = activity
        self._on_gap = on_gap
        self.latest: dict[str, dict[str, Any]] = {
            channel: {} for channel in (*CHANNELS, "statuses")
        }
        self._latest_of_type = {kind: self.latest[channel] for kind, channel in CHANNEL_OF.items()}
        self.counts: dict[str, int] = dict.fromkeys((*CHANNELS, "statuses"), 0)
        self.malformed_frames = 0
        self.skipped_messages = 0
        self.recent_gaps: collections.deque[GapReport] = collections.deque(maxlen=RECENT_GAPS)
        self._open: dict[tuple[str, str], tuple[datetime | None, datetime, int]] = {}

    def observe(self, data: list[Any], now: float) -> None:
        """Record one frame's market data received at monotonic time ``now``.

        Per message this is one dictionary write (the latest message of its symbol), done by C
        loops when the frame holds one message type, as Alpaca's frames usually do.
        """
        self.activity.received = True
        self.activity.last_data = now
        last_seen = self.activity.last_seen
        counts = self.counts
        kinds = set(map(type, data))
        if len(kinds) == 1:
            # The usual frame holds one message type: let C loops do the per-message work.
            kind = kinds.pop()
            self._latest_of_type[kind].update(zip(map(_symbol_of, data), data, strict=True))
            channel = CHANNEL_OF[kind]
            counts[channel] += len(data)
            last_seen[channel] = now
        else:
            latest_of = self._latest_of_type
            for message in data:
                kind = type(message)
                latest_of[kind][message.symbol] = message
                counts[CHANNEL_OF[kind]] += 1
            for kind in kinds:
                last_seen[CHANNEL_OF[kind]] = now
        if self._open:
            self._close_gaps(data)

    def open_gaps(self, desired: Subscription, lost_at: datetime, epoch: int = 0) -> None:
        """The session of ``epoch`` was lost: every desired pair has a gap until its next message.

        A pair whose gap is already open (an outage within an outage) keeps the first one.
        """
        for channel in CHANNELS:
            seen = self.latest[channel]
            for symbol in desired.channel(channel):
                if (channel, symbol) not in self._open:
                    last = seen.get(symbol)
                    self._open[channel, symbol] = (
                        last.timestamp if last is not None else None,
                        lost_at,
                        epoch,
                    )

    def forget(self, symbols: Iterable[tuple[str, str]]) -> None:
        """Unsubscribed pairs have no gap to report."""
        for key in symbols:
            self._open.pop(key, None)

    @property
    def open_gap_count(self) -> int:
        """Pairs still waiting for their first message after an outage."""
        return len(self._open)

    def _close_gaps(self, data: list[Any]) -> None:
        channel_of = CHANNEL_OF
        for message in data:
            key = (channel_of[type(message)], message.symbol)
            opened = self._open.pop(key, None)
            if opened is not None:
                report = GapReport(
                    symbol=message.symbol,
                    channel=key[0],
                    last_seen_before=opened[0],
                    first_seen_after=message.timestamp,
                    lost_at=opened[1],
                    epoch=opened[2],
                )
                self.recent_gaps.append(report)
                self._on_gap(report)
