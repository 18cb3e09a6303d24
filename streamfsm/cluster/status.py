"""What the holder tells every member about the shared connection, and each member's filter.

The holder publishes a :class:`HolderStatus` on every change of its Alpaca connection and with a
heartbeat: its tenure, the connection's state, what Alpaca confirmed and what it refused (405).
A member's bus session reads it to know when its own set is served (``subscribed``), refused,
or lost to a fatal error. :class:`MemberFilter` keeps, of the relayed union, only the messages
of the member's own symbols. Both are sans-I/O.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from streamfsm._core.subscriptions import CHANNELS, EMPTY, Subscription
from streamfsm._core.tracking import CHANNEL_OF, CHANNEL_OF_TAG
from streamfsm.markets import WILDCARD
from streamfsm.models import News

__all__ = ["HolderStatus", "MemberFilter", "decode_status", "encode_status", "uncovered"]

#: Messages that ride on another channel's subscription (corrections and cancels on trades).
_SUBSCRIBED_AS = {"corrections": "trades", "cancel_errors": "trades"}


def uncovered(wanted: Subscription, served: Subscription) -> Subscription:
    """The pairs of ``wanted`` that ``served`` does not include (a ``*`` serves its channel)."""
    return Subscription(
        **{
            channel: frozenset()
            if WILDCARD in served.channel(channel)
            else wanted.channel(channel) - served.channel(channel)
            for channel in CHANNELS
        }
    )


@attrs.frozen(kw_only=True)
class HolderStatus:
    """The holder's shared connection, as it last described it.

    Attributes:
        epoch: the holder's tenure (the lease epoch); a newer tenure supersedes an older one.
        member: the holder's member name.
        state: the connection machine's state on the holder (``subscribed`` when serving).
        confirmed: what Alpaca acknowledged, the union of every member's served interest.
        refused: pairs members want that Alpaca refused (405); they are not requested again
            while anyone still wants them.
        members: the members whose interest the holder sees, sorted.
        error_code: the Alpaca code of the fatal error that stopped the connection, if any.
        error_message: that error's message.
    """

    epoch: int
    member: str
    state: str
    confirmed: Subscription = EMPTY
    refused: Subscription = EMPTY
    members: tuple[str, ...] = ()
    error_code: int | None = None
    error_message: str | None = None

    @property
    def serving(self) -> bool:
        """True while the holder's connection is subscribed."""
        return self.state == "subscribed"

    def settles(self, wanted: Subscription) -> bool:
        """True when every pair of ``wanted`` is either served or refused."""
        return self.serving and not uncovered(wanted, self.confirmed | self.refused)


def encode_status(status: HolderStatus) -> bytes:
    """A status message: compact JSON."""
    data: dict[str, Any] = {
        "epoch": status.epoch,
        "member": status.member,
        "state": status.state,
        "confirmed": status.confirmed.to_wire(),
        "refused": status.refused.to_wire(),
        "members": list(status.members),
        "error_code": status.error_code,
        "error_message": status.error_message,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def decode_status(payload: bytes) -> HolderStatus:
    """The status a holder published.

    Raises:
        ValueError: when the payload is not a status (bad JSON, missing or mistyped fields,
            an invalid symbol).
    """
    try:
        data = json.loads(payload)
        code = data["error_code"]
        message = data["error_message"]
        return HolderStatus(
            epoch=int(data["epoch"]),
            member=str(data["member"]),
            state=str(data["state"]),
            confirmed=Subscription.from_wire(data["confirmed"]),
            refused=Subscription.from_wire(data["refused"]),
            members=tuple(str(member) for member in data["members"]),
            error_code=None if code is None else int(code),
            error_message=None if message is None else str(message),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a holder status: {exc}") from exc


class MemberFilter:
    """Keeps the relayed messages of one member's own symbols.

    The holder relays the union of every member's interest; a member hands its callbacks only
    what it subscribed, exactly as a connection of its own would. A channel the member wants
    whole (``*``) is passed without a look. (The served union is not consulted: a symbol
    another member just added can arrive before the status that announces it.)
    """

    def __init__(self, wanted: Subscription) -> None:
        self._allowed: dict[str, frozenset[str] | None] = {}
        for channel in CHANNELS:
            mine = wanted.channel(channel)
            self._allowed[channel] = None if WILDCARD in mine else mine
        for kind, carrier in _SUBSCRIBED_AS.items():
            self._allowed[kind] = self._allowed[carrier]
        #: True when nothing needs a look: every channel passes whole.
        self.passes_all = all(allowed is None for allowed in self._allowed.values())

    def keep(self, data: list[Any]) -> list[Any]:
        """The messages of ``data`` this member subscribed, in order."""
        if self.passes_all:
            return data
        return [message for message in data if self._wanted(message)]

    def _wanted(self, message: Any) -> bool:
        if type(message) is dict:
            channel = CHANNEL_OF_TAG[message["T"]]
            symbols = message.get("symbols") if channel == "news" else (message["S"],)
        elif type(message) is News:
            channel, symbols = "news", message.symbols
        else:
            channel, symbols = CHANNEL_OF[type(message)], (message.symbol,)
        allowed = self._allowed[channel]
        return allowed is None or any(symbol in allowed for symbol in symbols or ())
