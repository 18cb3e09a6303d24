"""The interest book: a reference-counted union, differences only, refusals routed back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm.cluster.interest import (
    InterestBook,
    UnionChange,
    decode_interest,
    encode_interest,
)

UNIVERSE = ("AAPL", "MSFT", "SPY", "TSLA")
MEMBERS = ("a", "b", "c", "d", "e")
symbols = st.frozensets(st.sampled_from(UNIVERSE), max_size=3)
subscriptions = st.builds(Subscription, trades=symbols, quotes=symbols, bars=symbols)
operations = st.lists(
    st.tuples(st.sampled_from(MEMBERS), st.one_of(st.none(), subscriptions)), max_size=40
)


@given(operations)
def test_alpaca_always_holds_exactly_the_union(
    steps: list[tuple[str, Subscription | None]],
) -> None:
    """Applying only the differences keeps Alpaca's set equal to the union of live interest."""
    book = InterestBook()
    alpaca = EMPTY
    live: dict[str, Subscription] = {}
    for member, desired in steps:
        change = book.remove(member) if desired is None else book.set(member, desired)
        assert not (change.added & alpaca), "subscribed a pair Alpaca already had"
        assert (change.removed & alpaca) == change.removed, "unsubscribed a pair it lacked"
        alpaca = (alpaca | change.added) - change.removed
        if desired:
            live[member] = desired
        else:
            live.pop(member, None)
        expected = EMPTY
        for wanted in live.values():
            expected = expected | wanted
        assert alpaca == expected == book.union
        assert book.members == tuple(sorted(live))


def test_a_shared_symbol_stays_until_its_last_member_leaves() -> None:
    """Two members want SPY: the first leaving changes nothing, the second unsubscribes."""
    book = InterestBook()
    spy = Subscription(quotes={"SPY"})
    assert book.set("a", spy) == UnionChange(added=spy)
    assert not book.set("b", spy)
    assert not book.remove("a")
    assert book.remove("b") == UnionChange(removed=spy)


def test_a_refusal_goes_to_the_members_that_asked() -> None:
    """A 405 on the union names, per member, only the refused pairs it wanted."""
    book = InterestBook()
    book.set("a", Subscription(quotes={"SPY", "AAPL"}))
    book.set("b", Subscription(quotes={"MSFT"}))
    book.set("c", Subscription(trades={"SPY"}))
    refused = Subscription(quotes={"SPY", "MSFT"})
    assert book.wanted_by(refused) == {
        "a": Subscription(quotes={"SPY"}),
        "b": Subscription(quotes={"MSFT"}),
    }


@given(subscriptions)
def test_interest_round_trips(desired: Subscription) -> None:
    """What a member publishes decodes to the same subscription."""
    assert decode_interest(encode_interest(desired)) == desired
