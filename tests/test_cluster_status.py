"""The holder's status message and a member's filter of the relayed union (sans-I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streamfsm._core.subscriptions import Subscription
from streamfsm.cluster.status import (
    HolderStatus,
    MemberFilter,
    decode_status,
    encode_status,
    uncovered,
)
from streamfsm.models import News, Quote, Trade

T0 = datetime(2026, 1, 2, tzinfo=UTC)


def quote(symbol: str) -> Quote:
    return Quote(symbol=symbol, timestamp=T0, bid_price=1, bid_size=1, ask_price=2, ask_size=1)


def trade(symbol: str) -> Trade:
    return Trade(symbol=symbol, timestamp=T0, price=1, size=1)


def news(*symbols: str) -> News:
    return News(id=1, headline="h", created_at=T0, updated_at=T0, symbols=list(symbols))


def test_a_status_survives_its_encoding() -> None:
    """encode_status and decode_status are inverse, fatal error included."""
    status = HolderStatus(
        epoch=7,
        member="n1",
        state="stopped",
        confirmed=Subscription(quotes={"AAPL"}, trades={"MSFT"}),
        refused=Subscription(quotes={"GOOG"}),
        members=("n1", "n2"),
        error_code=402,
        error_message="auth failed",
    )
    assert decode_status(encode_status(status)) == status


@pytest.mark.parametrize(
    "payload", [b"", b"[]", b'{"epoch": 1}', b'{"epoch": "x", "member": 1}', b"\xff"]
)
def test_a_malformed_status_is_a_value_error(payload: bytes) -> None:
    """Anything that is not a status raises ValueError, never something else."""
    with pytest.raises(ValueError, match=r"status|Expecting|JSON|codec|char"):
        decode_status(payload)


def test_a_status_settles_a_set_only_when_every_pair_is_served_or_refused() -> None:
    """settles() needs the connection subscribed and no pair of the set left unanswered."""
    status = HolderStatus(
        epoch=1,
        member="n1",
        state="subscribed",
        confirmed=Subscription(quotes={"AAPL"}),
        refused=Subscription(quotes={"GOOG"}),
    )
    assert status.settles(Subscription(quotes={"AAPL", "GOOG"}))
    assert not status.settles(Subscription(quotes={"AAPL", "MSFT"}))
    assert not HolderStatus(epoch=1, member="n1", state="backoff").settles(
        Subscription(quotes={"AAPL"})
    )


def test_a_wildcard_serves_its_whole_channel() -> None:
    """uncovered() counts a ``*`` as serving every symbol of its channel, and only that one."""
    wanted = Subscription(quotes={"AAPL"}, trades={"AAPL"})
    assert uncovered(wanted, Subscription(quotes={"*"})) == Subscription(trades={"AAPL"})


def test_the_filter_keeps_only_the_members_own_symbols() -> None:
    """Structs of other members' symbols are dropped, order is kept, trades ride on trades."""
    keep = MemberFilter(Subscription(quotes={"AAPL"}, trades={"MSFT"})).keep
    frame: list[Any] = [quote("AAPL"), quote("TSLA"), trade("MSFT"), trade("AAPL"), quote("AAPL")]
    assert keep(frame) == [frame[0], frame[2], frame[4]]


def test_the_filter_reads_raw_dicts_and_news_symbols() -> None:
    """Raw dicts by their ``T`` and ``S``; news when any of its symbols is wanted, or ``*``."""
    keep = MemberFilter(Subscription(quotes={"AAPL"}, news={"TSLA"})).keep
    raw = [{"T": "q", "S": "AAPL"}, {"T": "q", "S": "MSFT"}, {"T": "n", "symbols": ["TSLA"]}]
    assert keep(raw) == [raw[0], raw[2]]
    assert keep([news("MSFT", "TSLA"), news("MSFT")]) == [news("MSFT", "TSLA")]
    everything = MemberFilter(Subscription(news={"*"}))
    assert everything.keep([news("X")]) == [news("X")]
    assert MemberFilter(Subscription(quotes={"*"}, news={"*"})).keep([news()]) == [news()]
