"""The simulator speaks Alpaca's stream protocol and injects faults, seen from a plain client.

Every test drives a real loopback server with the ``websockets`` asyncio client inside
``asyncio.run``; waits are bounded and event-driven (frames, or the simulator's ``wait_for``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import connect as sync_connect

from streamfsm.config import Feed
from streamfsm.errors import SERVER_ERRORS, ConfigurationError, LocalProtocolError
from streamfsm.logs import capture_events
from streamfsm.sim import (
    DEMO_KEY_ID,
    DEMO_SECRET,
    ControlError,
    Replay,
    SimConfig,
    Simulator,
    SimulatorThread,
    UnknownConnectionError,
    query_stats,
    send_fault,
)
from streamfsm.sim import command as sim_command
from streamfsm.sim.feed import MarketFeed
from streamfsm.sim.requests import Action, SubscriptionChange, SubscriptionSet
from streamfsm.sim.wire import rfc3339

#: Upper bound of any single wait in these tests; loopback answers in milliseconds.
TIMEOUT = 5.0
#: Bound of a whole test body.
TEST_TIMEOUT = 20.0
POLICY_VIOLATION = 1008
DATA_TYPES = frozenset({"q", "t", "b"})

T = TypeVar("T")


pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` in a fresh loop, bounded, and check that it leaves no task behind."""

    async def guarded() -> T:
        result = await asyncio.wait_for(main(), TEST_TIMEOUT)
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        assert not leftovers, f"tasks left behind: {leftovers}"
        return result

    return asyncio.run(guarded())


class Client:
    """A minimal Alpaca stream client for the tests, on the websockets asyncio client."""

    def __init__(self, ws: ClientConnection, *, msgpack_frames: bool) -> None:
        self.ws = ws
        self.msgpack_frames = msgpack_frames

    async def recv_raw(self) -> bytes | str:
        return await asyncio.wait_for(self.ws.recv(), TIMEOUT)

    async def recv(self) -> Any:
        frame = await self.recv_raw()
        if self.msgpack_frames:
            assert isinstance(frame, bytes), "msgpack sessions get binary frames"
            return msgpack.unpackb(frame)
        assert isinstance(frame, str), "JSON sessions get text frames"
        return json.loads(frame)

    async def recv_control(self) -> dict[str, Any]:
        """The next control message, skipping data frames."""
        while True:
            messages = await self.recv()
            if messages[0]["T"] not in DATA_TYPES:
                assert len(messages) == 1, "control messages travel alone"
                message: dict[str, Any] = messages[0]
                return message

    async def recv_data(self, count: int) -> list[dict[str, Any]]:
        """At least ``count`` data messages; fails on any control message."""
        received: list[dict[str, Any]] = []
        while len(received) < count:
            messages = await self.recv()
            assert all(message["T"] in DATA_TYPES for message in messages), messages
            received.extend(messages)
        return received

    async def send(self, message: dict[str, Any]) -> None:
        if self.msgpack_frames:
            await self.ws.send(msgpack.packb(message))
        else:
            await self.ws.send(json.dumps(message))

    async def auth(self, key: str = DEMO_KEY_ID, secret: str = DEMO_SECRET) -> dict[str, Any]:
        await self.send({"action": "auth", "key": key, "secret": secret})
        return await self.recv_control()

    async def subscribe(self, **channels: list[str]) -> dict[str, Any]:
        await self.send({"action": "subscribe", **channels})
        return await self.recv_control()

    async def unsubscribe(self, **channels: list[str]) -> dict[str, Any]:
        await self.send({"action": "unsubscribe", **channels})
        return await self.recv_control()


@asynccontextmanager
async def client(
    url: str,
    *,
    msgpack_frames: bool = False,
    auth: bool = True,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Client]:
    """Connect, read ``connected``, optionally authenticate; close on exit."""
    extra = dict(headers or {})
    if msgpack_frames:
        extra["Content-Type"] = "application/msgpack"
    # max_queue=None: a test that stops reading a flood must still see the server's close frame.
    async with connect(url, additional_headers=extra, open_timeout=TIMEOUT, max_queue=None) as ws:
        session = Client(ws, msgpack_frames=msgpack_frames)
        assert await session.recv_control() == {"T": "success", "msg": "connected"}
        if auth:
            assert await session.auth() == {"T": "success", "msg": "authenticated"}
        yield session


def error(code: int) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": SERVER_ERRORS[code].message}


def full_ack(**channels: list[str]) -> dict[str, Any]:
    ack: dict[str, Any] = {"T": "subscription"}
    for name in ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds"):
        ack[name] = sorted(channels.get(name, []))
    ack["corrections"] = ack["cancelErrors"] = ack["trades"]
    return ack


def first_id(sim: Simulator) -> int:
    """The id of the first remembered connection."""
    return sim.connections()[0].id


async def closed_code(session: Client) -> int | None:
    """Wait until the server closes the connection; return the close code received."""
    with contextlib.suppress(ConnectionClosed):
        while True:  # bounded: recv_raw times out if the server never closes
            await session.recv_raw()
    await session.ws.wait_closed()
    return session.ws.close_code


# ---------------------------------------------------------------- handshake and auth


def test_handshake_sends_connected_then_authenticated_on_auth_message() -> None:
    """A client gets ``connected``, then ``authenticated`` in reply to a valid auth message."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url()):
            (info,) = sim.connections()
            assert info.authenticated
            assert info.key == "..." + DEMO_KEY_ID[-4:]
            assert sim.stats().auth_attempts == sim.stats().auth_successes == 1

    run(main)


def test_header_auth_replies_authenticated_right_after_connected() -> None:
    """Credentials in the handshake headers authenticate without an auth message."""

    async def main() -> None:
        headers = {"APCA-API-KEY-ID": DEMO_KEY_ID, "APCA-API-SECRET-KEY": DEMO_SECRET}
        async with (
            Simulator(SimConfig()) as sim,
            client(sim.url(), auth=False, headers=headers) as session,
        ):
            assert await session.recv_control() == {"T": "success", "msg": "authenticated"}
            assert (await session.subscribe(quotes=["AAPL"]))["quotes"] == ["AAPL"]

    run(main)


def test_bad_header_credentials_get_402_and_close() -> None:
    """Wrong header credentials get 402 and a policy-violation close."""

    async def main() -> None:
        headers = {"APCA-API-KEY-ID": DEMO_KEY_ID, "APCA-API-SECRET-KEY": "wrong"}
        async with (
            Simulator(SimConfig()) as sim,
            client(sim.url(), auth=False, headers=headers) as session,
        ):
            assert await session.recv_control() == error(402)
            assert await closed_code(session) == POLICY_VIOLATION

    run(main)


def test_msgpack_content_type_gives_binary_frames_with_timestamp_extension() -> None:
    """``Content-Type: application/msgpack`` gives msgpack frames whose ``t`` is a Timestamp."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(rate=None)) as sim,
            client(sim.url(), msgpack_frames=True) as session,
        ):
            await session.subscribe(quotes=["AAPL"], trades=["AAPL"], bars=["AAPL"])
            messages = await session.recv_data(6)
            assert all(isinstance(message["t"], msgpack.Timestamp) for message in messages)
            assert sim.connections()[0].encoding.value == "msgpack"

    run(main)


def test_json_frames_carry_rfc3339_nanosecond_timestamps() -> None:
    """Without msgpack, frames are JSON text with RFC 3339 timestamps to the nanosecond."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=None)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL"])
            (message,) = await session.recv_data(1)
            stamp = message["t"]
            assert stamp.endswith("Z")
            assert len(stamp.split(".")[1]) == len("123456789Z")

    run(main)
    assert rfc3339(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"


def test_client_messages_are_accepted_in_either_encoding() -> None:
    """A JSON session may send msgpack and a msgpack session may send JSON text."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            async with client(sim.url(), auth=False) as session:
                await session.ws.send(
                    msgpack.packb({"action": "auth", "key": DEMO_KEY_ID, "secret": DEMO_SECRET})
                )
                assert await session.recv_control() == {"T": "success", "msg": "authenticated"}
            await sim.wait_for(lambda stats: not stats.slots_held)
            async with client(sim.url(), auth=False, msgpack_frames=True) as session:
                await session.ws.send(
                    json.dumps({"action": "auth", "key": DEMO_KEY_ID, "secret": DEMO_SECRET})
                )
                assert await session.recv_control() == {"T": "success", "msg": "authenticated"}

    run(main)


# ---------------------------------------------------------------- error codes


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc1 garbage",
        "[1, 2",
        json.dumps(["not", "an", "object"]),
        json.dumps({"action": "dance"}),
        json.dumps({"key": DEMO_KEY_ID}),
        json.dumps({"action": "auth", "key": 1, "secret": 2}),
    ],
    ids=["garbage", "bad-json", "array", "unknown-action", "no-action", "non-string-auth"],
)
def test_malformed_client_messages_get_400_and_the_connection_stays_open(
    frame: bytes | str,
) -> None:
    """Unparseable or meaningless messages get 400 invalid syntax; the session goes on."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url(), auth=False) as session:
            await session.ws.send(frame)
            assert await session.recv_control() == error(400)
            assert await session.auth() == {"T": "success", "msg": "authenticated"}

    run(main)


@pytest.mark.parametrize(
    "change",
    [
        {"quotes": ["aapl"]},
        {"quotes": "AAPL"},
        {"trades": [7]},
        {"quotes": [""]},
        {"weather": ["AAPL"]},
    ],
    ids=["lower-case", "not-a-list", "not-a-string", "empty", "unknown-key"],
)
def test_invalid_symbols_or_keys_get_400_and_leave_the_set_unchanged(
    change: dict[str, Any],
) -> None:
    """A subscription with an invalid symbol or key is rejected whole with 400."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=0)) as sim, client(sim.url()) as session:
            await session.subscribe(trades=["MSFT"])
            assert await session.subscribe(**change) == error(400)
            assert (await session.subscribe(bars=["SPY"])) == full_ack(
                trades=["MSFT"], bars=["SPY"]
            )

    run(main)


def test_subscribe_before_auth_gets_401() -> None:
    """Subscribing or unsubscribing before auth gets 401 not authenticated."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url(), auth=False) as session:
            assert await session.subscribe(quotes=["AAPL"]) == error(401)
            assert await session.unsubscribe(quotes=["AAPL"]) == error(401)
            assert await session.auth() == {"T": "success", "msg": "authenticated"}

    run(main)


def test_bad_credentials_get_402_then_close() -> None:
    """A wrong secret or unknown key gets 402 auth failed and a 1008 close."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            for key, secret in ((DEMO_KEY_ID, "wrong"), ("PKUNKNOWN", DEMO_SECRET)):
                async with client(sim.url(), auth=False) as session:
                    assert await session.auth(key, secret) == error(402)
                    assert await closed_code(session) == POLICY_VIOLATION
            stats = sim.stats()
            assert stats.errors_sent[402] == 2
            assert stats.auth_successes == 0
            assert all(not info.authenticated for info in stats.connections)

    run(main)


def test_second_auth_gets_403_and_the_session_goes_on() -> None:
    """Authenticating twice gets 403 already authenticated; the connection stays usable."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url()) as session:
            assert await session.auth() == error(403)
            assert (await session.subscribe(quotes=["AAPL"]))["T"] == "subscription"

    run(main)


def test_no_auth_within_the_deadline_gets_404_then_close() -> None:
    """A connection that does not authenticate within auth_timeout gets 404 and is closed."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(auth_timeout=0.2)) as sim,
            client(sim.url(), auth=False) as session,
        ):
            started = asyncio.get_running_loop().time()
            await session.ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
            assert await session.recv_control() == error(401)
            assert await session.recv_control() == error(404)
            assert asyncio.get_running_loop().time() - started >= 0.15
            assert await closed_code(session) == POLICY_VIOLATION

    run(main)


def test_symbol_limit_gets_405_and_keeps_the_previous_set() -> None:
    """Going over the trade+quote limit gets 405; the set stays as it was; bars do not count."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(symbol_limit=3, rate=0)) as sim,
            client(sim.url()) as session,
        ):
            await session.subscribe(quotes=["AAPL", "MSFT"], trades=["AAPL"])
            assert await session.subscribe(trades=["SPY"]) == error(405)
            ack = await session.subscribe(bars=["SPY", "QQQ", "TSLA", "NVDA"])
            assert ack == full_ack(
                quotes=["AAPL", "MSFT"], trades=["AAPL"], bars=["SPY", "QQQ", "TSLA", "NVDA"]
            )

    run(main)


def test_second_connection_of_a_key_gets_406_until_the_slot_is_reaped() -> None:
    """One connection per key: a second gets 406; the slot frees reap_delay after a close."""

    async def main() -> None:
        async with Simulator(SimConfig(reap_delay=0.2)) as sim:
            async with client(sim.url()), client(sim.url(), auth=False) as second:
                assert await second.auth() == error(406)
                assert await closed_code(second) == POLICY_VIOLATION
            # The first connection closed, but its slot is held for the reaping delay.
            assert sim.stats().slots_held == {"..." + DEMO_KEY_ID[-4:]: 1}
            async with client(sim.url(), auth=False) as third:
                assert await third.auth() == error(406)
            await sim.wait_for(lambda stats: not stats.slots_held, timeout=TIMEOUT)
            async with client(sim.url()):
                assert sim.stats().errors_sent[406] == 2

    run(main)


def test_connection_limit_is_configurable() -> None:
    """connection_limit=2 lets a key hold two authenticated connections."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(connection_limit=2)) as sim,
            client(sim.url()),
            client(sim.url()),
        ):
            assert len(sim.stats().open_connections) == 2

    run(main)


def test_sip_without_entitlement_gets_409_and_entitlements_are_per_key() -> None:
    """The sip feed answers auth with 409 unless the key is entitled to it."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url(Feed.SIP), auth=False) as session:
            assert await session.auth() == error(409)
            assert await closed_code(session) == POLICY_VIOLATION
        config = SimConfig(entitlements={DEMO_KEY_ID: ["iex", "sip"]})
        async with Simulator(config) as sim, client(sim.url("sip")) as session:
            assert (await session.subscribe(quotes=["AAPL"]))["quotes"] == ["AAPL"]

    run(main)


@pytest.mark.parametrize("channel", ["orderbooks", "news"])
def test_channels_of_other_streams_get_410(channel: str) -> None:
    """Subscribing to a channel the stock feed does not offer gets 410; the set is kept."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=0)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL"])
            assert await session.subscribe(**{channel: ["AAPL"]}) == error(410)
            assert await session.subscribe(trades=["AAPL"]) == full_ack(
                quotes=["AAPL"], trades=["AAPL"]
            )

    run(main)


def test_unknown_paths_get_http_404() -> None:
    """Only /v2/{feed} and /control upgrade; other paths get HTTP 404."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            for path in ("/v2/crypto", "/v1beta3/crypto/us", "/"):
                with pytest.raises(InvalidStatus) as raised:
                    async with connect(sim.base_url + path, open_timeout=TIMEOUT):
                        pass
                assert raised.value.response.status_code == 404
            assert sim.stats().connection_attempts == 0  # only valid /v2/{feed} paths count

    run(main)


# ---------------------------------------------------------------- subscriptions and data


def test_acks_always_carry_the_entire_set() -> None:
    """Subscribe adds, unsubscribe removes, and every ack lists the whole current set."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=0)) as sim, client(sim.url()) as session:
            assert await session.subscribe(quotes=["AAPL"], trades=["MSFT"]) == full_ack(
                quotes=["AAPL"], trades=["MSFT"]
            )
            assert await session.subscribe(quotes=["SPY"], bars=["*"]) == full_ack(
                quotes=["AAPL", "SPY"], trades=["MSFT"], bars=["*"]
            )
            assert await session.unsubscribe(quotes=["AAPL"], trades=["MSFT"]) == full_ack(
                quotes=["SPY"], bars=["*"]
            )
            assert await session.unsubscribe(quotes=["NOPE"]) == full_ack(
                quotes=["SPY"], bars=["*"]
            )
            assert sim.connections()[0].subscriptions == SubscriptionSet(quotes={"SPY"}, bars={"*"})

    run(main)


def test_a_subscribe_fragmented_over_frames_is_reassembled() -> None:
    """A msgpack subscribe split into 32 KiB fragments, as alpaca-py sends it, is understood."""
    symbols = [f"S{index:05d}" for index in range(12_000)]

    async def main() -> None:
        async with (
            Simulator(SimConfig(symbol_limit=None, rate=0)) as sim,
            client(sim.url(), msgpack_frames=True) as session,
        ):
            payload = msgpack.packb({"action": "subscribe", "quotes": symbols})
            fragment = 32_768
            assert len(payload) > 2 * fragment
            await session.ws.send(
                payload[start : start + fragment] for start in range(0, len(payload), fragment)
            )
            ack = await session.recv_control()
            assert ack["quotes"] == symbols

    run(main)


def test_data_flows_only_for_subscribed_pairs_and_only_after_the_ack() -> None:
    """The ack precedes all data; data covers exactly the subscribed (channel, symbol) pairs."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=None)) as sim, client(sim.url()) as session:
            assert (await session.subscribe(trades=["AAPL"], quotes=["MSFT"]))["T"] == (
                "subscription"
            )
            pairs = {(m["T"], m["S"]) for m in await session.recv_data(40)}
            assert pairs == {("t", "AAPL"), ("q", "MSFT")}
            await session.send({"action": "unsubscribe", "quotes": ["MSFT"]})
            while (await session.recv())[0]["T"] != "subscription":
                pass
            later = {(m["T"], m["S"]) for m in await session.recv_data(20)}
            assert later == {("t", "AAPL")}
            assert set(sim.stats().messages_sent) == {"AAPL", "MSFT"}

    run(main)


def test_wildcard_streams_the_whole_universe() -> None:
    """``*`` subscribes every symbol of the universe; the ack shows ``*``."""

    async def main() -> None:
        config = SimConfig(rate=None, universe=("AAA", "BBB", "CCC"))
        async with Simulator(config) as sim, client(sim.url()) as session:
            assert (await session.subscribe(quotes=["*"]))["quotes"] == ["*"]
            symbols = {message["S"] for message in await session.recv_data(9)}
            assert symbols == {"AAA", "BBB", "CCC"}

    run(main)


def test_messages_are_batched_per_frame() -> None:
    """``batch=5`` puts five data messages in every frame."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=None, batch=5)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL", "MSFT"])
            for _ in range(4):
                frame = await session.recv()
                assert len(frame) == 5
            assert sim.stats().frames_sent * 5 == sum(sim.stats().messages_sent.values())

    run(main)


def test_seq_rises_per_channel_and_symbol_across_connections() -> None:
    """``_seq`` counts up by one per (channel, symbol) and keeps rising after a reconnect."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=None)) as sim:
            async with client(sim.url()) as session:
                await session.subscribe(quotes=["AAPL"], trades=["AAPL"])
                first = await session.recv_data(20)
            await sim.wait_for(lambda stats: not stats.open_connections)
            async with client(sim.url()) as session:
                await session.subscribe(quotes=["AAPL"])
                second = await session.recv_data(5)
        for kind in ("q", "t"):
            seqs = [message["_seq"] for message in first if message["T"] == kind]
            assert seqs == list(range(1, len(seqs) + 1))
        last_quote = max(message["_seq"] for message in first if message["T"] == "q")
        assert second[0]["_seq"] > last_quote

    run(main)


def test_the_feed_is_deterministic_per_seed() -> None:
    """The same seed gives the same prices; another seed gives others."""

    async def prices(seed: int) -> list[float]:
        async with Simulator(SimConfig(rate=None, seed=seed)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL"])
            return [message["bp"] for message in await session.recv_data(10)]

    async def main() -> None:
        first, again, other = await prices(1), await prices(1), await prices(2)
        assert first == again
        assert first != other

    run(main)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    symbol=st.sampled_from(["AAPL", "FAKEPACA", "BRK.B"]),
    steps=st.integers(min_value=1, max_value=200),
)
def test_generated_messages_are_well_formed(seed: int, symbol: str, steps: int) -> None:
    """Quotes have bid < ask in cents; trades print inside the spread; bars are consistent."""
    feed = MarketFeed(seed)
    for step in range(steps):
        quote = feed.message("quotes", symbol, Feed.IEX, step, rfc3339)
        assert 0 < quote["bp"] < quote["ap"]
        assert round(quote["bp"], 2) == quote["bp"]
        assert round(quote["ap"], 2) == quote["ap"]
        assert quote["bx"] == quote["ax"] == "V"
        trade = feed.message("trades", symbol, Feed.SIP, step, rfc3339)
        assert round(trade["p"], 2) == trade["p"]
        assert trade["s"] > 0
    bar = feed.message("bars", symbol, Feed.IEX, 0, rfc3339)
    assert bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"]
    assert bar["l"] <= bar["vw"] <= bar["h"]
    assert feed.last_seq("quotes", symbol) == steps


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Action)),
            st.sampled_from(["trades", "quotes", "bars"]),
            st.lists(st.sampled_from(["AAPL", "MSFT", "SPY", "*"]), max_size=3),
        ),
        max_size=12,
    )
)
def test_subscription_set_matches_a_set_model(
    changes: list[tuple[Action, str, list[str]]],
) -> None:
    """Applying changes equals plain set union and difference per channel."""
    current = SubscriptionSet()
    model: dict[str, set[str]] = {"trades": set(), "quotes": set(), "bars": set()}
    for action, channel, symbols in changes:
        current = current.apply(SubscriptionChange(action, {channel: tuple(symbols)}))
        if action is Action.SUBSCRIBE:
            model[channel] |= set(symbols)
        else:
            model[channel] -= set(symbols)
        for name, expected in model.items():
            assert current.channel(name) == expected
    assert current.limited_count() == len(model["trades"]) + len(model["quotes"])


def test_rate_zero_is_quiet_until_the_rate_changes() -> None:
    """rate=0 sends no data; set_rate starts the flow on open connections."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=0)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL"])
            assert sim.stats().frames_sent == 0
            await sim.set_rate(1000)
            assert len(await session.recv_data(3)) >= 3
            assert sim.stats().rate == 1000

    run(main)


def test_a_set_rate_paces_the_frames() -> None:
    """At 100 messages per second, 10 messages take about 0.1 s, not an instant."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=100)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL"])
            await session.recv_data(1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await session.recv_data(10)
            assert loop.time() - started >= 0.08

    run(main)


# ---------------------------------------------------------------- faults


def test_drop_resets_the_connection_without_a_close_frame() -> None:
    """``drop`` aborts the TCP connection: the client sees no close frame (1006)."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url()) as session:
            assert await sim.drop() == (1,)
            with pytest.raises(ConnectionClosed):
                await session.recv_raw()
            assert session.ws.close_code == 1006
            # The client can see the reset before the server's handler has recorded it.
            stats = await sim.wait_for(lambda stats: not stats.connections[0].open)
            (info,) = stats.connections
            assert info.close_code == 1006

    run(main)


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going away"), (1011, "oops")])
def test_close_uses_the_chosen_code_and_reason(code: int, reason: str) -> None:
    """``close_connections`` runs the close handshake with the chosen code and reason."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url()) as session:
            await sim.close_connections(code, reason)
            assert await closed_code(session) == code
            assert session.ws.close_reason == reason
            # The client can see the close before the server's handler has recorded it.
            stats = await sim.wait_for(lambda stats: not stats.connections[0].open)
            assert stats.connections[0].close_code == code

    run(main)


def test_faults_reject_bad_parameters() -> None:
    """Reserved close codes, unknown kinds and unknown connection ids raise typed errors."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            with pytest.raises(ConfigurationError, match="code"):
                await sim.close_connections(1006)
            with pytest.raises(ConfigurationError, match="kind"):
                await sim.send_malformed("zigzag")
            with pytest.raises(ConfigurationError, match="seconds"):
                await sim.mute(-1)
            with pytest.raises(UnknownConnectionError):
                await sim.drop(connection_id=42)
            with pytest.raises(ConfigurationError, match="fault"):
                await sim.inject("explode")
            with pytest.raises(ConfigurationError, match="params"):
                await sim.inject("drop", force=True)

    run(main)


def test_faults_target_one_connection_by_id() -> None:
    """A fault with a connection id acts on that connection only."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(connection_limit=2)) as sim,
            client(sim.url()) as first,
            client(sim.url()) as second,
        ):
            assert await sim.drop(connection_id=first_id(sim)) == (1,)
            with pytest.raises(ConnectionClosed):
                await first.recv_raw()
            await second.send({"action": "subscribe", "quotes": ["AAPL"]})
            assert (await second.recv_control())["T"] == "subscription"
            assert [info.open for info in sim.connections()] == [False, True]

    run(main)


def test_mute_holds_everything_back_but_answers_pings() -> None:
    """A muted connection stays open and answers pings, but acks and data wait for unmute."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=None)) as sim, client(sim.url()) as session:
            await sim.mute()
            await session.send({"action": "subscribe", "quotes": ["AAPL"]})
            pong = await session.ws.ping()
            await asyncio.wait_for(pong, TIMEOUT)
            assert sim.connections()[0].muted
            assert sim.stats().frames_sent == 0
            await sim.unmute()
            assert (await session.recv_control())["quotes"] == ["AAPL"]
            assert len(await session.recv_data(5)) >= 5

    run(main)


def test_a_timed_mute_ends_by_itself() -> None:
    """``mute(seconds)`` lifts itself after the duration, and data flows again."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=None)) as sim, client(sim.url()) as session:
            await session.subscribe(quotes=["AAPL"])
            await sim.mute(seconds=0.1)
            await sim.wait_for(lambda stats: not stats.connections[0].muted)
            sent = sim.connections()[0].messages_sent
            received = 0
            while received <= sent:
                received += len(await session.recv_data(1))

    run(main)


def test_refuse_answers_503_until_accept() -> None:
    """``refuse`` turns upgrades away with HTTP 503 and counts them; ``accept`` ends it."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            await sim.refuse()
            with pytest.raises(InvalidStatus) as raised:
                async with connect(sim.url(), open_timeout=TIMEOUT):
                    pass
            assert raised.value.response.status_code == 503
            await sim.accept()
            async with client(sim.url()):
                stats = sim.stats()
                assert (stats.connection_attempts, stats.connections_refused) == (2, 1)

    run(main)


def test_refuse_with_reset_closes_tcp_before_any_response() -> None:
    """``refuse(mode="reset")`` resets the TCP connection during the HTTP upgrade."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            await sim.refuse(seconds=60, mode="reset")
            with pytest.raises((InvalidMessage, OSError)):
                async with connect(sim.url(), open_timeout=TIMEOUT):
                    pass
            assert sim.stats().connections_refused == 1
            assert sim.connections() == ()

    run(main)


def test_fail_auth_answers_the_next_auths_with_406() -> None:
    """``fail_auth(count=2)`` fails two valid auths with 406 (and closes), then auth works."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            await sim.fail_auth(count=2)
            for _ in range(2):
                async with client(sim.url(), auth=False) as session:
                    assert await session.auth() == error(406)
                    assert await closed_code(session) == POLICY_VIOLATION
            async with client(sim.url()):
                assert sim.stats().auth_successes == 1

    run(main)


def test_delay_auth_holds_the_reply_back() -> None:
    """``delay_auth(seconds)`` delays the auth reply by at least that long."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url(), auth=False) as session:
            await sim.delay_auth(0.2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await session.auth() == {"T": "success", "msg": "authenticated"}
            assert loop.time() - started >= 0.2

    run(main)


@pytest.mark.parametrize("msgpack_frames", [False, True], ids=["json", "msgpack"])
@pytest.mark.parametrize(
    "kind", ["garbage", "truncated", "bare_object", "unknown_type", "missing_fields"]
)
def test_malformed_frames_are_broken_as_named(kind: str, msgpack_frames: bool) -> None:
    """Each malformed kind produces the broken frame it names, in the session's encoding."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(rate=0)) as sim,
            client(sim.url(), msgpack_frames=msgpack_frames) as session,
        ):
            await session.subscribe(quotes=["MSFT"])
            await sim.send_malformed(kind)
            frame = await session.recv_raw()
            assert isinstance(frame, bytes if msgpack_frames else str)
            if kind in ("garbage", "truncated"):
                # msgpack: FormatError (no text) or "incomplete input"; json: JSONDecodeError.
                undecodable = r"^$|incomplete input" if msgpack_frames else r"char \d+"
                with pytest.raises(ValueError, match=undecodable):
                    msgpack.unpackb(frame) if msgpack_frames else json.loads(frame)
                return
            decoded = msgpack.unpackb(frame) if msgpack_frames else json.loads(frame)
            if kind == "bare_object":
                assert isinstance(decoded, dict)
                assert decoded["S"] == "MSFT"
            elif kind == "unknown_type":
                assert decoded[0]["T"] == "zz"
            else:
                assert decoded == [{"T": "q", "S": "MSFT"}]

    run(main)


def test_send_error_reaches_every_connection_without_closing() -> None:
    """``send_error`` sends an error message to all connections; they stay open."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(connection_limit=2, rate=0)) as sim,
            client(sim.url()) as first,
            client(sim.url()) as second,
        ):
            assert await sim.send_error(407) == (1, 2)
            for session in (first, second):
                assert await session.recv_control() == error(407)
                assert (await session.subscribe(quotes=["AAPL"]))["T"] == "subscription"
            await sim.send_error(599, "custom", connection_id=2)
            assert await second.recv_control() == {"T": "error", "code": 599, "msg": "custom"}
            assert sim.stats().errors_sent == {407: 2, 599: 1}

    run(main)


# ---------------------------------------------------------------- replay


def test_replay_sends_the_given_frames_repeat_times_after_the_subscription() -> None:
    """With a replay, a subscribed client gets exactly the given frames, ``repeat`` times."""
    frames = (msgpack.packb([{"T": "q", "S": "AAPL", "n": 1}]), msgpack.packb([{"T": "x"}]))

    async def main() -> None:
        config = SimConfig(replay=Replay(frames=frames, repeat=3))
        async with Simulator(config) as sim, client(sim.url(), msgpack_frames=True) as session:
            await session.subscribe(quotes=["AAPL"])
            received = [await session.recv_raw() for _ in range(6)]
            assert received == list(frames) * 3
            stats = await sim.wait_for(lambda stats: stats.replays_completed == 1)
            assert stats.frames_sent == 6

    run(main)


# ---------------------------------------------------------------- control, CLI, configuration


def test_control_endpoint_applies_faults_and_answers_queries() -> None:
    """The /control socket takes JSON faults and queries and answers ok or an error."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url()) as session:
            async with connect(sim.control_url) as control:

                async def ask(message: dict[str, Any]) -> Any:
                    await control.send(json.dumps(message))
                    return json.loads(await asyncio.wait_for(control.recv(), TIMEOUT))

                assert (await ask({"query": "stats"}))["result"]["auth_successes"] == 1
                assert (await ask({"fault": "explode"}))["ok"] is False
                assert (await ask({"fault": "mute", "connection_id": 9}))["ok"] is False
                reply = await ask({"fault": "close", "code": 1011, "reason": "maintenance"})
                assert reply == {"ok": True, "result": [1]}
            assert await closed_code(session) == 1011
            assert sim.stats().connection_attempts == 1  # control sockets are not counted

    run(main)


def test_send_fault_controls_a_simulator_in_another_thread() -> None:
    """``send_fault`` and ``query_stats`` work from sync code against a SimulatorThread."""
    with SimulatorThread(SimConfig()) as sim, sync_connect(sim.url()) as ws:
        assert json.loads(ws.recv(TIMEOUT)) == [{"T": "success", "msg": "connected"}]
        ws.send(json.dumps({"action": "auth", "key": DEMO_KEY_ID, "secret": DEMO_SECRET}))
        ws.recv(TIMEOUT)
        assert query_stats(sim.url())["auth_successes"] == 1
        with pytest.raises(ControlError, match="fault"):
            send_fault(sim.base_url, "explode")
        assert send_fault(sim.url(), "drop") == [1]
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
        sim.wait_for(lambda stats: not stats.open_connections)


def sim_parser() -> argparse.ArgumentParser:
    """The ``streamfsm`` parser with only the ``sim`` command registered."""
    parser = argparse.ArgumentParser(prog="streamfsm")
    sim_command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_simulator_thread_closes_every_connection_and_joins_on_stop() -> None:
    """Stopping a SimulatorThread closes connections with 1001 and keeps the final stats."""
    sim = SimulatorThread(SimConfig(), name="sim-under-test").start()
    with sync_connect(sim.url()) as ws:
        ws.recv(TIMEOUT)
        sim.stop()
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert "sim-under-test" not in {thread.name for thread in threading.enumerate()}
    (info,) = sim.stats().connections
    assert (info.open, info.close_code) == (False, 1001)
    with pytest.raises(LocalProtocolError):
        sim.drop()


def test_cli_fault_action_reaches_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    """``streamfsm sim fault --url URL rate rate=0`` applies the fault and prints the result."""
    with capture_events(), SimulatorThread(SimConfig()) as sim:
        args = sim_parser().parse_args(["sim", "fault", "--url", sim.base_url, "rate", "rate=0"])
        assert sim_command.run(args) == 0
        assert sim.stats().rate == 0
        args = sim_parser().parse_args(["sim", "fault", "--url", sim.base_url, "mute", "x=1"])
        assert sim_command.run(args) == 1
        args = sim_parser().parse_args(["sim", "stats", "--url", sim.url()])
        assert sim_command.run(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.split("\n", 1)[1])["rate"] == 0
    assert "params" in err


def test_cli_serves_until_sigint_and_prints_the_url_first() -> None:
    """``streamfsm sim`` prints its URL first and exits 0 on SIGINT."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    entry = (
        "import argparse, sys\n"
        "from streamfsm.sim import command\n"
        "parser = argparse.ArgumentParser()\n"
        "command.add_parser(parser.add_subparsers(dest='command'))\n"
        "sys.exit(command.run(parser.parse_args(sys.argv[1:])))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", entry, "sim", "--port", "0", "--rate", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")
        assert url.endswith("/v2/iex")
        assert query_stats(url)["connection_attempts"] == 0
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def test_only_loopback_hosts_are_served_or_controlled() -> None:
    """A non-loopback host is refused with a ConfigurationError (a ValueError) naming host."""
    for host in ("0.0.0.0", "192.168.1.10", "example.com", "localhost"):
        with pytest.raises(ConfigurationError, match="host") as raised:
            SimConfig(host=host)
        assert isinstance(raised.value, ValueError)
    with pytest.raises(ConfigurationError, match="url"):
        send_fault("ws://10.0.0.1:8765", "drop")

    async def main() -> None:
        async with Simulator(SimConfig(host="::1")) as sim:
            assert sim.url("test").startswith("ws://[::1]:")
            async with client(sim.url("test")):
                pass

    run(main)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", -1),
        ("port", 70_000),
        ("batch", 0),
        ("rate", -5),
        ("symbol_limit", 0),
        ("auth_timeout", 0),
        ("reap_delay", -1),
        ("universe", ()),
        ("universe", ("aapl",)),
        ("entitled_feeds", ["crypto"]),
        ("compression", "yes"),
    ],
)
def test_invalid_configuration_names_the_field(field: str, value: object) -> None:
    """Every invalid configuration value raises a ConfigurationError naming its field."""
    with pytest.raises(ConfigurationError) as raised:
        SimConfig(**{field: value})  # type: ignore[arg-type]
    assert raised.value.field == field


def test_secrets_appear_in_no_repr_snapshot_or_log() -> None:
    """The configuration, snapshots and logs show fingerprints, never a secret."""
    secret = "s3cr3t-value-under-test"
    config = SimConfig(credentials={"PKTESTKEY0001": secret})
    assert secret not in repr(config)
    assert "PKTESTKEY0001" not in repr(config)

    async def main() -> str:
        async with Simulator(config) as sim:
            async with client(sim.url(), auth=False) as session:
                assert await session.auth("PKTESTKEY0001", secret) == {
                    "T": "success",
                    "msg": "authenticated",
                }
            async with client(sim.url(), auth=False) as session:
                await session.auth("PKTESTKEY0001", secret + "-wrong")
                await closed_code(session)
            return repr(sim.stats()) + json.dumps(sim.stats().to_json())

    with capture_events() as logs:
        shown = run(main)
    assert secret not in shown
    assert "...0001" in shown
    assert logs, "the simulator logs its events"
    assert secret not in repr(logs)
