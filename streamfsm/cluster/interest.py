"""Interest: what every live process of a cluster wants, and the union the holder subscribes.

Each process publishes its desired :class:`~streamfsm._core.subscriptions.Subscription` with a
heartbeat; the store forgets it when its TTL ends. The holder keeps an :class:`InterestBook`:
a reference count per (channel, symbol), so the union changes only when the first process wants
a pair or the last one lets it go, and Alpaca is sent only that difference, never an
unsubscribe-all. When Alpaca refuses part of the union (405), :meth:`InterestBook.wanted_by`
says whose symbols were refused.
"""

from __future__ import annotations

import json

import attrs

from streamfsm._core.subscriptions import CHANNELS, EMPTY, Subscription

__all__ = ["InterestBook", "UnionChange", "decode_interest", "encode_interest"]

_Pair = tuple[str, str]


@attrs.frozen
class UnionChange:
    """How the union moved: pairs to subscribe and pairs to unsubscribe."""

    added: Subscription = EMPTY
    removed: Subscription = EMPTY

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def _pairs(subscription: Subscription) -> set[_Pair]:
    return {(channel, symbol) for channel in CHANNELS for symbol in subscription.channel(channel)}


def _subscription(pairs: set[_Pair]) -> Subscription:
    return Subscription(**{channel: {s for c, s in pairs if c == channel} for channel in CHANNELS})


class InterestBook:
    """Reference-counted union of the members' desired sets."""

    def __init__(self) -> None:
        self._members: dict[str, Subscription] = {}
        self._counts: dict[_Pair, int] = {}

    @property
    def members(self) -> tuple[str, ...]:
        """The members with published interest, sorted."""
        return tuple(sorted(self._members))

    @property
    def union(self) -> Subscription:
        """Every pair at least one member wants."""
        return _subscription(set(self._counts))

    def interest_of(self, member: str) -> Subscription:
        """What ``member`` published (empty when unknown)."""
        return self._members.get(member, EMPTY)

    def set(self, member: str, desired: Subscription) -> UnionChange:
        """``member`` now wants ``desired`` (its whole set); the change of the union."""
        before = _pairs(self._members.get(member, EMPTY))
        after = _pairs(desired)
        if desired:
            self._members[member] = desired
        else:
            self._members.pop(member, None)
        added = {pair for pair in after - before if self._increment(pair)}
        removed = {pair for pair in before - after if self._decrement(pair)}
        return UnionChange(_subscription(added), _subscription(removed))

    def remove(self, member: str) -> UnionChange:
        """``member`` left or its interest expired."""
        return self.set(member, EMPTY)

    def wanted_by(self, refused: Subscription) -> dict[str, Subscription]:
        """For each member, the part of ``refused`` it asked for (members with none left out)."""
        result: dict[str, Subscription] = {}
        for member, desired in sorted(self._members.items()):
            mine = desired & refused
            if mine:
                result[member] = mine
        return result

    def _increment(self, pair: _Pair) -> bool:
        """Count one more member wanting ``pair``; True if it is new to the union."""
        count = self._counts.get(pair, 0) + 1
        self._counts[pair] = count
        return count == 1

    def _decrement(self, pair: _Pair) -> bool:
        """Count one member fewer; True if nobody wants ``pair`` any more."""
        count = self._counts[pair] - 1
        if count:
            self._counts[pair] = count
            return False
        del self._counts[pair]
        return True


def encode_interest(desired: Subscription) -> bytes:
    """A published interest: the subscription's wire form as compact JSON."""
    return json.dumps(desired.to_wire(), separators=(",", ":"), sort_keys=True).encode()


def decode_interest(payload: bytes) -> Subscription:
    """The subscription a member published.

    Raises:
        InvalidSymbolError: when a symbol is not valid.
        ValueError: when the payload is not JSON.
        TypeError: when it is JSON but not an object.
    """
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise TypeError("interest must be a JSON object")
    return Subscription.from_wire(data)
