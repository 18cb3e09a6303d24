"""The simulator speaks Alpaca's stream protocol: handshake, auth, error codes, subscriptions, data.

Every test drives a real loopback server with the ``websockets`` asyncio client inside
``asyncio.run``; waits are bounded and event-driven (frames, or the simulator's ``wait_for``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simclient import (
    POLICY_VIOLATION,
    TIMEOUT,
    client,
    closed_code,
    error,
    full_ack,
    run,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from streamfsm.config import Feed
from streamfsm.markets import MARKETS, Market
from streamfsm.sim import (
    DEMO_KEY_ID,
    DEMO_SECRET,
    SimConfig,
    Simulator,
)
from streamfsm.sim.feed import MarketFeed
from streamfsm.sim.requests import Action, SubscriptionChange, SubscriptionSet
from streamfsm.sim.wire import rfc3339

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


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
    """Only Alpaca's data paths and /control upgrade; other paths get HTTP 404."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            for path in ("/v2/crypto", "/v1beta3/crypto/iex", "/v1beta1/sip", "/v2/news", "/"):
                with pytest.raises(InvalidStatus) as raised:
                    async with connect(sim.base_url + path, open_timeout=TIMEOUT):
                        pass
                assert raised.value.response.status_code == 404
            assert sim.stats().connection_attempts == 0  # only valid data paths count

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
    stocks = MARKETS[Market.STOCKS]
    assert current.limited_count(stocks) == len(model["trades"]) + len(model["quotes"])


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
