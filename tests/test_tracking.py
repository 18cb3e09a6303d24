"""The per-frame tracker: counts, arrival times, the frame's type, and gap reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streamfsm._core.core import ChannelActivity
from streamfsm._core.subscriptions import Subscription
from streamfsm._core.tracking import DataTracker, GapReport
from streamfsm.models import Quote, Trade

T0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)
LOST = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def quote(symbol: str, second: int) -> Quote:
    return Quote(
        symbol=symbol,
        timestamp=T0 + timedelta(seconds=second),
        bid_price=1.0,
        bid_size=1.0,
        ask_price=1.1,
        ask_size=1.0,
    )


def trade(symbol: str, second: int) -> Trade:
    return Trade(symbol=symbol, timestamp=T0 + timedelta(seconds=second), price=1.0, size=1.0)


def make() -> tuple[DataTracker, list[GapReport]]:
    reports: list[GapReport] = []
    return DataTracker(ChannelActivity(), reports.append), reports


def test_a_frame_of_one_type_is_counted_whole_and_its_type_returned() -> None:
    """One type per frame: counted by channel, stamped, and the type handed to the dispatcher."""
    tracker, _ = make()
    assert tracker.observe([quote("A", 1), quote("B", 2)], 5.0) is Quote
    assert tracker.counts["quotes"] == 2
    assert tracker.activity.last_seen == {"quotes": 5.0}
    assert tracker.activity.received


def test_a_mixed_frame_is_counted_per_channel_and_has_no_single_type() -> None:
    """A mixed frame: every channel it touches is counted and stamped; no single type."""
    tracker, _ = make()
    assert tracker.observe([quote("A", 1), trade("A", 2), quote("B", 3)], 7.0) is None
    assert tracker.counts["quotes"] == 2
    assert tracker.counts["trades"] == 1
    assert tracker.activity.last_seen == {"quotes": 7.0, "trades": 7.0}


def test_a_gap_spans_from_the_channels_last_message_to_the_pairs_first_after() -> None:
    """After an outage each pair reports the channel's last time before and its own first after."""
    tracker, reports = make()
    tracker.observe([quote("A", 1), quote("B", 2)], 1.0)
    tracker.observe([quote("A", 3)], 2.0)
    tracker.open_gaps(Subscription(quotes=["A", "B"], trades=["A"]), LOST, epoch=4)
    assert tracker.open_gap_count == 3
    tracker.observe([quote("B", 60)], 3.0)
    tracker.observe([quote("A", 61), quote("B", 62)], 4.0)
    by_pair: dict[tuple[str, str], Any] = {(r.channel, r.symbol): r for r in reports}
    assert set(by_pair) == {("quotes", "A"), ("quotes", "B")}
    assert by_pair["quotes", "B"].last_seen_before == T0 + timedelta(seconds=3)
    assert by_pair["quotes", "B"].first_seen_after == T0 + timedelta(seconds=60)
    assert by_pair["quotes", "A"].first_seen_after == T0 + timedelta(seconds=61)
    assert by_pair["quotes", "A"].epoch == 4
    assert tracker.open_gap_count == 1  # trades of A: nothing seen before, nothing after yet
    tracker.observe([trade("A", 70)], 5.0)
    assert reports[-1].last_seen_before is None
    assert tracker.open_gap_count == 0


def test_forgotten_pairs_report_no_gap() -> None:
    """An unsubscribed pair's gap is dropped: no report when its data comes back."""
    tracker, reports = make()
    tracker.observe([quote("A", 1)], 1.0)
    tracker.open_gaps(Subscription(quotes=["A"]), LOST)
    tracker.forget([("quotes", "A")])
    tracker.observe([quote("A", 5)], 2.0)
    assert reports == []
    assert tracker.open_gap_count == 0
