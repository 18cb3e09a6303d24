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
from streamfsm.models import (
    Bar,
    DailyBar,
    Luld,
    News,
    Orderbook,
    Quote,
    Trade,
    TradeCancel,
    TradeCorrection,
    TradingStatus,
    UpdatedBar,
)

__all__ = [
    "CHANNEL_OF",
    "CHANNEL_OF_TAG",
    "GAP_BUS",
    "GAP_CONNECTION_LOST",
    "GAP_HANDOVER",
    "DataTracker",
    "GapReport",
]

#: The reasons a gap opens (:attr:`GapReport.reason`).
GAP_CONNECTION_LOST: Final = "connection_lost"
GAP_BUS: Final = "bus_gap"
GAP_HANDOVER: Final = "handover"

#: The channel each fast model type arrives on; corrections and cancels come with ``trades``
#: but are counted apart, so the last trade of the channel is a trade.
CHANNEL_OF: Final[dict[type, str]] = {
    Quote: "quotes",
    Trade: "trades",
    Bar: "bars",
    UpdatedBar: "updated_bars",
    DailyBar: "daily_bars",
    TradingStatus: "statuses",
    Luld: "lulds",
    TradeCorrection: "corrections",
    TradeCancel: "cancel_errors",
    Orderbook: "orderbooks",
    News: "news",
}
#: The same by wire tag, for the raw mode's dicts.
CHANNEL_OF_TAG: Final[dict[str, str]] = {
    "q": "quotes",
    "t": "trades",
    "b": "bars",
    "u": "updated_bars",
    "d": "daily_bars",
    "s": "statuses",
    "l": "lulds",
    "c": "corrections",
    "x": "cancel_errors",
    "o": "orderbooks",
    "n": "news",
}
#: Everything the tracker counts: the channels, and the two kinds that ride on ``trades``.
_COUNTED: Final = (*CHANNELS, "corrections", "cancel_errors")
#: The key a news article without symbols is filed under (a ``*`` subscription's gap).
_ANY_SYMBOL: Final = "*"
#: Gap reports kept for ``health()``.
RECENT_GAPS: Final = 100


@attrs.frozen(kw_only=True)
class GapReport:
    """A window in which no data arrived for one symbol on one channel.

    Attributes:
        symbol: the symbol.
        channel: the subscription channel (``quotes``, ``trades``, ``orderbooks``, ``news``...).
        last_seen_before: exchange time of the last message received on the channel before the
            outage (None if none arrived): the stream was complete for the pair up to then.
        first_seen_after: exchange time of the first message after the reconnect.
        lost_at: wall-clock UTC time the connection was lost.
        epoch: the connection epoch that was lost (its journal records carry the same); in
            cluster mode, for a bus gap or a handover, the relay's tenure (the lease epoch).
        reason: why data stopped: ``connection_lost`` (this process's session ended),
            ``bus_gap`` (relayed frames were lost on the cluster bus) or ``handover`` (the
            cluster's connection changed hands).
    """

    symbol: str
    channel: str
    last_seen_before: datetime | None
    first_seen_after: datetime
    lost_at: datetime
    epoch: int = 0
    reason: str = "connection_lost"


class DataTracker:
    """Counts, arrival times and last messages per channel, updated once per frame."""

    def __init__(self, activity: ChannelActivity, on_gap: Callable[[GapReport], None]) -> None:
        self.activity = activity
        self._on_gap = on_gap
        self.counts: dict[str, int] = dict.fromkeys(_COUNTED, 0)
        #: The last message received on each channel (its exchange time bounds the gaps).
        self.last_message: dict[str, Any] = {}
        self.malformed_frames = 0
        self.skipped_messages = 0
        self.recent_gaps: collections.deque[GapReport] = collections.deque(maxlen=RECENT_GAPS)
        #: Gap reports closed so far (``recent_gaps`` keeps only the latest).
        self.gaps_reported = 0
        self._open: dict[tuple[str, str], tuple[datetime | None, datetime, int, str]] = {}
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
        if dict in kinds or News in kinds:
            if kinds == {dict}:
                self._observe_raw(data, now)
            else:
                self._observe_each(data, now)
            return None
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

    def _observe_raw(self, data: list[dict[str, Any]], now: float) -> None:
        """Raw dicts: a frame of one tag (as Alpaca sends them) costs one pass over the tags."""
        tags = {message["T"] for message in data}
        if len(tags) != 1 or "n" in tags:
            self._observe_each(data, now)
            return
        channel = CHANNEL_OF_TAG[tags.pop()]
        self.counts[channel] += len(data)
        self.activity.last_seen[channel] = now
        self.last_message[channel] = data[-1]
        if self._open and channel in self._open_channels:
            for message in data:
                self._close((channel, message["S"]), message["S"], message)

    def _observe_each(self, data: list[Any], now: float) -> None:
        """The general path: raw dicts (channel by ``T``) and news (about each of its symbols)."""
        counts, last_seen, last_message = self.counts, self.activity.last_seen, self.last_message
        for message in data:
            channel, symbols = _channel_and_symbols(message)
            counts[channel] += 1
            last_seen[channel] = now
            last_message[channel] = message
            if self._open and channel in self._open_channels:
                for symbol in (*symbols, _ANY_SYMBOL) if channel == "news" else symbols:
                    self._close((channel, symbol), symbol, message)

    def open_gaps(
        self,
        desired: Subscription,
        lost_at: datetime,
        epoch: int = 0,
        reason: str = GAP_CONNECTION_LOST,
    ) -> None:
        """The session of ``epoch`` was lost: every desired pair has a gap until its next message.

        A pair whose gap is already open (an outage within an outage) keeps the first one.
        """
        for channel in CHANNELS:
            last = self.last_message.get(channel)
            for symbol in desired.channel(channel):
                if (channel, symbol) not in self._open:
                    self._open[channel, symbol] = (
                        _timestamp(last) if last is not None else None,
                        lost_at,
                        epoch,
                        reason,
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
            self._close((channel_of[type(message)], message.symbol), message.symbol, message)

    def _close(self, key: tuple[str, str], symbol: str, message: Any) -> None:
        opened = self._open.pop(key, None)
        if opened is None:
            return
        self._one_closed(key[0])
        report = GapReport(
            symbol=symbol,
            channel=key[0],
            last_seen_before=opened[0],
            first_seen_after=_timestamp(message),
            lost_at=opened[1],
            epoch=opened[2],
            reason=opened[3],
        )
        self.recent_gaps.append(report)
        self.gaps_reported += 1
        self._on_gap(report)


def _channel_and_symbols(message: Any) -> tuple[str, tuple[str, ...]]:
    """The channel of a struct or raw dict, and the symbols it is about."""
    if type(message) is dict:
        channel = CHANNEL_OF_TAG[message["T"]]
        if channel == "news":
            return channel, tuple(message.get("symbols") or (_ANY_SYMBOL,))
        return channel, (message["S"],)
    if type(message) is News:
        return "news", tuple(message.symbols) or (_ANY_SYMBOL,)
    return CHANNEL_OF[type(message)], (message.symbol,)


def _timestamp(message: Any) -> datetime:
    """The exchange time of a struct or raw dict (a news article: its ``updated_at``).

    Raises:
        TypeError: when a raw dict carries no readable time.
    """
    if type(message) is News:
        return message.updated_at
    if type(message) is not dict:
        stamp: datetime = message.timestamp
        return stamp
    value = message.get("updated_at") if message["T"] == "n" else message.get("t")
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    to_datetime = getattr(value, "to_datetime", None)
    if to_datetime is None:
        raise TypeError(f"no timestamp in {message!r}")
    result: datetime = to_datetime()
    return result
