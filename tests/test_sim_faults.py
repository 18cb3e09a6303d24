"""The simulator injects faults (drop, close, mute, refuse, auth failures, malformed frames,
errors) and replays frames, seen from a plain client on loopback.
"""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest
from simclient import (
    POLICY_VIOLATION,
    TIMEOUT,
    client,
    closed_code,
    error,
    first_id,
    run,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from streamfsm.errors import ConfigurationError
from streamfsm.sim import (
    Replay,
    SimConfig,
    Simulator,
    UnknownConnectionError,
)

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


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
