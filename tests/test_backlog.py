"""The backlog's accounting and conflation, checked on random feeds (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamfsm._core.backlog import Backlog, Notice
from streamfsm.config import OverflowPolicy
from streamfsm.models import Quote, Trade

T0 = datetime(2026, 1, 2, tzinfo=UTC)
SYMBOLS = ("A", "B", "C")


def quote(symbol: str, seq: int) -> Quote:
    return Quote(
        symbol=symbol, timestamp=T0, bid_price=1, bid_size=1, ask_price=2, ask_size=1, seq=seq
    )


def trade(symbol: str, seq: int) -> Trade:
    return Trade(symbol=symbol, timestamp=T0, price=1, size=1, seq=seq)


messages = st.tuples(st.booleans(), st.sampled_from(SYMBOLS))
#: A step: a frame to append (with seconds elapsed) or a take.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), st.lists(messages, min_size=1, max_size=6), st.floats(0, 0.3)),
        st.tuples(st.just("take"), st.just([]), st.just(0.0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps,
    policy=st.sampled_from(list(OverflowPolicy)),
    bound=st.integers(1, 12),
    max_age=st.none() | st.floats(0.1, 1.0),
)
def test_every_message_is_delivered_or_counted_once_in_order(
    steps: list[tuple[str, list[tuple[bool, str]], float]],
    policy: OverflowPolicy,
    bound: int,
    max_age: float | None,
) -> None:
    """Delivered + dropped + waiting = appended; bounds hold; per-channel order is kept."""
    backlog = Backlog(policy, bound, 1 << 30, max_age)
    now, seq, appended = 0.0, 0, 0
    delivered: list[Any] = []
    newest_quote: dict[str, int] = {}
    for action, frame, elapsed in steps:
        now += elapsed
        if action == "take":
            item = backlog.take(now)
            assert not isinstance(item, Notice)
            if item is not None:
                taken, received_at = item
                assert None not in taken
                if max_age is not None:
                    assert now - received_at <= max_age
                if policy is OverflowPolicy.CONFLATE:
                    # No delivered quote has a newer quote of its symbol still waiting.
                    for message in taken:
                        if isinstance(message, Quote):
                            assert newest_quote[message.symbol] == message.seq
                delivered += taken
            continue
        batch: list[Any] = []
        for is_quote, symbol in frame:
            seq += 1
            batch.append(quote(symbol, seq) if is_quote else trade(symbol, seq))
            if is_quote:
                newest_quote[symbol] = seq
        appended += len(batch)
        backlog.append(batch, now, now)
        assert backlog.pending <= bound
        assert len(delivered) + backlog.dropped + backlog.pending == appended
    for symbol in SYMBOLS:
        for kind in (Quote, Trade):
            seqs = [m.seq for m in delivered if isinstance(m, kind) and m.symbol == symbol]
            assert seqs == sorted(seqs)


def test_conflation_keeps_one_waiting_quote_per_symbol() -> None:
    """Conflate: however many quotes arrive while the consumer is busy, one per symbol waits."""
    backlog = Backlog(OverflowPolicy.CONFLATE, 1000, 1 << 30, None)
    for seq in range(100):
        backlog.append([quote(SYMBOLS[seq % 3], seq), trade("A", seq)], 0.0, 0.0)
    assert backlog.pending == 3 + 100
    assert backlog.superseded == 97
    first = backlog.take(0.0)
    assert isinstance(first, tuple)
    assert [type(message) for message in first[0]] == [Trade]  # its quote was superseded
