"""Per-frame bookkeeping on the hot path: counts, arrival times, and gaps.

:class:`DataTracker` is written by the socket reader once per decoded frame and read by the
watchdog and ``health()``. For a frame of one message type (as Alpaca sends them) its work does
not depend on the frame's length: one type scan in C, a count, a time and the frame's last
message, per channel. Nothing here logs, allocates per message or touches the state machine.

A gap opens for every desired (channel, symbol) pair when a session is lost. It remembers the
exchange time of the last message received on that channel before the outage: the stream was
complete for every subscribed symbol of the channel up to then, whether the symbol itself last
ticked then or earlier. The gap closes with a :class:`GapReport` at the pair's first message
after the reconnect, so a pricing service knows exactly which window to refresh.
"""

from __future__ import annotations

import collections
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
#: Gap reports kept for ``health()``.
RECENT_GAPS: Final = 100


@attrs.frozen(kw_only=True)
class GapReport:
    """A window in which no data arrived for one symbol on one channel.

    Attributes:
        symbol: the symbol.
        channel: ``quotes``, ``trades`` or ``bars``.
        last_seen_before: exchange time of the last message received on the channel before the
            outage (None if none arrived): the stream was complete for the pair up to then.
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
    """Counts, arrival times and last messages per channel, updated once per frame."""

    def __init__(self, activity: ChannelActivity, on_gap: Callable[[GapReport], None]) -> None:
        self.activity = activity
        self._on_gap = on_gap
        self.counts: dict[str, int] = dict.fromkeys((*CHANNELS, "statuses"), 0)
        #: The last message received on each channel (its exchange time bounds the gaps).
        self.last_message: dict[str, Any] = {}
        self.malformed_frames = 0
        self.skipped_messages = 0
        self.recent_gaps: collections.deque[GapReport] = collections.deque(maxlen=RECENT_GAPS)
        #: Gap reports closed so far (``recent_gaps`` keeps only the latest).
        self.gaps_reported = 0
        self._open: dict[tuple[str, str], tuple[datetime | None, datetime, int]] = {}
        #: Channels with at least one open gap: only their frames are searched for symbols.
        self._open_channels: dict[str, int] = {}

    def observe(self, data: list[Any], now: float) -> type | None:
        """Record one frame's market data received at monotonic time ``now``.

        Args:
            data: the frame's market data, in order; not empty.
            now: the frame's arrival time.

        Returns:
            The type of every message of the frame when it holds one type, else None: the
            dispatcher then skips its per-message type dispatch.
        """
        self.activity.received = True
        self.activity.last_data = now
        kinds = set(map(type, data))
        if len(kinds) == 1:
            kind = kinds.pop()
            channel = CHANNEL_OF[kind]
            self.counts[channel] += len(data)
            self.activity.last_seen[channel] = now
            self.last_message[channel] = data[-1]
            if self._open and channel in self._open_channels:
                self._close_gaps(data)
            return kind
        self._observe_mixed(data, now)
        return None

    def _observe_mixed(self, data: list[Any], now: float) -> None:
        counts, last_seen, last_message = self.counts, self.activity.last_seen, self.last_message
        for message in data:
            channel = CHANNEL_OF[type(message)]
            counts[channel] += 1
            last_seen[channel] = now
            last_message[channel] = message
        if self._open:
            self._close_gaps(data)

    def open_gaps(self, desired: Subscription, lost_at: datetime, epoch: int = 0) -> None:
        """The session of ``epoch`` was lost: every desired pair has a gap until its next message.

        A pair whose gap is already open (an outage within an outage) keeps the first one.
        """
        for channel in CHANNELS:
            last = self.last_message.get(channel)
            for symbol in desired.channel(channel):
                if (channel, symbol) not in self._open:
                    self._open[channel, symbol] = (
                        last.timestamp if last is not None else None,
                        lost_at,
                        epoch,
                    )
                    self._open_channels[channel] = self._open_channels.get(channel, 0) + 1

    def forget(self, symbols: Iterable[tuple[str, str]]) -> None:
        """Unsubscribed pairs have no gap to report."""
        for key in symbols:
            if self._open.pop(key, None) is not None:
                self._one_closed(key[0])

    @property
    def open_gap_count(self) -> int:
        """Pairs still waiting for their first message after an outage."""
        return len(self._open)

    def _one_closed(self, channel: str) -> None:
        left = self._open_channels[channel] - 1
        if left:
            self._open_channels[channel] = left
        else:
            del self._open_channels[channel]

    def _close_gaps(self, data: list[Any]) -> None:
        channel_of = CHANNEL_OF
        for message in data:
            key = (channel_of[type(message)], message.symbol)
            opened = self._open.pop(key, None)
            if opened is not None:
                self._one_closed(key[0])
                report = GapReport(
                    symbol=message.symbol,
                    channel=key[0],
                    last_seen_before=opened[0],
                    first_seen_after=message.timestamp,
                    lost_at=opened[1],
                    epoch=opened[2],
                )
                self.recent_gaps.append(report)
                self.gaps_reported += 1
                self._on_gap(report)
