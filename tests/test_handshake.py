"""The session protocol without sockets: frames and time in, events and frames out."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from streamfsm._core.handshake import (
    ChangeAcked,
    ChangeRefused,
    FrameSkipped,
    HandshakeDone,
    Phase,
    ServerWarning,
    SessionFailed,
    SessionProtocol,
)
from streamfsm._core.subscriptions import EMPTY, Subscription
from streamfsm.config import Encoding, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    AuthenticationError,
    ConnectTimeoutError,
    LocalProtocolError,
    RemoteProtocolError,
    SlowClientError,
    SymbolLimitError,
)
from streamfsm.models import Quote

CONFIG = StreamConfig(
    encoding=Encoding.JSON, connect_timeout=2.0, auth_timeout=3.0, subscribe_timeout=4.0
)
CREDENTIALS = Credentials("PKTEST00000000001234", "sEcReT-0123456789-do-not-leak")
AAPL = Subscription(quotes={"AAPL"})
CONNECTED = [{"T": "success", "msg": "connected"}]
AUTHENTICATED = [{"T": "success", "msg": "authenticated"}]


def frame(messages: list[dict[str, Any]]) -> str:
    """Server messages as one JSON frame."""
    return json.dumps(messages)


def ack(quotes: list[str]) -> list[dict[str, Any]]:
    return [{"T": "subscription", "trades": [], "quotes": quotes, "bars": []}]


def error(code: int, msg: str = "") -> list[dict[str, Any]]:
    return [{"T": "error", "code": code, "msg": msg}]


def quote(symbol: str) -> dict[str, Any]:
    return {
        "T": "q",
        "S": symbol,
        "bx": "O",
        "bp": 1.0,
        "bs": 1,
        "ax": "R",
        "ap": 2.0,
        "as": 1,
        "c": ["R"],
        "z": "A",
        "t": dt.datetime(2024, 7, 24, tzinfo=dt.UTC).isoformat(),
    }


def actions(protocol: SessionProtocol) -> list[str]:
    """The ``action`` of every message the protocol wants sent, in order."""
    return [json.loads("".join(map(str, m)))["action"] for m in protocol.data_to_send()]


def streaming(subscription: Subscription = AAPL) -> SessionProtocol:
    protocol = SessionProtocol(CREDENTIALS, subscription, CONFIG, now=0.0)
    protocol.receive_frame(frame(CONNECTED), 0.1)
    protocol.receive_frame(frame(AUTHENTICATED), 0.2)
    protocol.receive_frame(frame(ack(["AAPL"])), 0.3)
    protocol.data_to_send()
    assert protocol.events_received() == [HandshakeDone(AAPL)]
    return protocol


def test_the_handshake_sends_auth_after_welcome_and_subscribe_after_auth() -> None:
    """Welcome -> auth message; authenticated -> subscribe message; ack -> ready, no deadline."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=10.0)
    assert (protocol.phase, protocol.deadline) == (Phase.WELCOME, 12.0)
    assert protocol.data_to_send() == []
    protocol.receive_frame(frame(CONNECTED), 10.5)
    assert actions(protocol) == ["auth"]
    assert (protocol.phase, protocol.deadline) == (Phase.AUTH, 13.5)
    protocol.receive_frame(frame(AUTHENTICATED), 11.0)
    assert actions(protocol) == ["subscribe"]
    assert (protocol.phase, protocol.deadline) == (Phase.SUBSCRIBE, 15.0)
    assert protocol.events_received() == []
    protocol.receive_frame(frame(ack(["AAPL"])), 11.5)
    assert protocol.events_received() == [HandshakeDone(AAPL)]
    assert (protocol.phase, protocol.deadline) == (Phase.STREAMING, None)


def test_without_symbols_the_session_is_ready_right_after_auth() -> None:
    """Nothing to subscribe: ready with an empty acknowledgement, no subscribe message."""
    protocol = SessionProtocol(CREDENTIALS, EMPTY, CONFIG, now=0.0)
    protocol.receive_frame(frame(CONNECTED), 0.0)
    protocol.receive_frame(frame(AUTHENTICATED), 0.0)
    assert actions(protocol) == ["auth"]
    assert protocol.events_received() == [HandshakeDone(EMPTY)]


@pytest.mark.parametrize(
    ("phase_frames", "phase"),
    [([], "welcome"), ([CONNECTED], "auth"), ([CONNECTED, AUTHENTICATED], "subscribe")],
)
def test_each_phase_times_out_with_its_own_name(
    phase_frames: list[list[dict[str, Any]]], phase: str
) -> None:
    """A phase that does not complete by its deadline fails the session with its name."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=0.0)
    for messages in phase_frames:
        protocol.receive_frame(frame(messages), 0.0)
    assert protocol.deadline is not None
    protocol.timeout(protocol.deadline - 0.001)
    assert not protocol.failed
    protocol.timeout(protocol.deadline)
    (failed,) = protocol.events_received()
    assert isinstance(failed, SessionFailed)
    assert isinstance(failed.error, ConnectTimeoutError)
    assert phase in str(failed.error)
    assert protocol.data_to_send() == []


def test_an_auth_failure_fails_the_session_with_the_fatal_error() -> None:
    """402 during auth: the session fails with AuthenticationError (the core stops on it)."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=0.0)
    protocol.receive_frame(frame(CONNECTED), 0.0)
    protocol.receive_frame(frame(error(402, "auth failed")), 0.0)
    (failed,) = protocol.events_received()
    assert isinstance(failed, SessionFailed)
    assert isinstance(failed.error, AuthenticationError)
    assert failed.error.fatal
    with pytest.raises(LocalProtocolError):
        protocol.receive_frame(frame(AUTHENTICATED), 0.0)


def test_a_symbol_limit_in_the_subscribe_phase_is_a_rejection_not_a_failure() -> None:
    """405 answering the initial subscribe: ready with nothing acknowledged and the rejection."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=0.0)
    protocol.receive_frame(frame(CONNECTED), 0.0)
    protocol.receive_frame(frame(AUTHENTICATED), 0.0)
    protocol.receive_frame(frame(error(405, "symbol limit exceeded")), 0.0)
    (done,) = protocol.events_received()
    assert isinstance(done, HandshakeDone)
    assert done.ack == EMPTY
    assert isinstance(done.rejection, SymbolLimitError)
    assert protocol.phase is Phase.STREAMING


def test_a_malformed_frame_fails_the_handshake_but_is_skipped_while_streaming() -> None:
    """Garbage during auth ends the session; garbage while streaming is reported and skipped."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=0.0)
    protocol.receive_frame("not json", 0.0)
    (failed,) = protocol.events_received()
    assert isinstance(failed, SessionFailed)
    assert isinstance(failed.error, RemoteProtocolError)
    live = streaming()
    assert live.receive_frame("not json", 1.0) == []
    (skipped,) = live.events_received()
    assert isinstance(skipped, FrameSkipped)
    assert isinstance(skipped.error, RemoteProtocolError)
    assert not live.failed


def test_streaming_returns_market_data_and_turns_control_messages_into_events() -> None:
    """Data comes back in order; acks, 405s and 407s become their own events."""
    protocol = streaming()
    data = protocol.receive_frame(frame([quote("AAPL"), quote("MSFT")]), 1.0)
    assert [type(message) for message in data] == [Quote, Quote]
    assert [message.symbol for message in data] == ["AAPL", "MSFT"]
    assert protocol.events_received() == []
    protocol.receive_frame(frame(ack(["AAPL", "MSFT"])), 1.0)
    protocol.receive_frame(frame(error(405, "symbol limit exceeded")), 1.0)
    protocol.receive_frame(frame(error(407, "slow client")), 1.0)
    acked, refused, warned = protocol.events_received()
    assert acked == ChangeAcked(Subscription(quotes={"AAPL", "MSFT"}))
    assert isinstance(refused, ChangeRefused)
    assert isinstance(refused.error, SymbolLimitError)
    assert isinstance(warned, ServerWarning)
    assert isinstance(warned.error, SlowClientError)
    assert not protocol.failed


def test_a_fatal_error_while_streaming_ends_the_session() -> None:
    """409 while streaming fails the session; it reads nothing more."""
    protocol = streaming()
    assert protocol.receive_frame(frame(error(409, "insufficient subscription")), 1.0) == []
    (failed,) = protocol.events_received()
    assert isinstance(failed, SessionFailed)
    assert failed.error.fatal
    assert protocol.failed


def test_changes_are_queued_only_while_streaming() -> None:
    """send_change() before the handshake is a local error; while streaming it queues a frame."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=0.0)
    with pytest.raises(LocalProtocolError):
        protocol.send_change("subscribe", AAPL)
    live = streaming()
    live.send_change("subscribe", Subscription(quotes={"MSFT"}))
    live.send_change("unsubscribe", AAPL)
    assert actions(live) == ["subscribe", "unsubscribe"]


def test_the_auth_message_carries_the_credentials_once() -> None:
    """The auth message holds the key and secret; the subscribe message does not."""
    protocol = SessionProtocol(CREDENTIALS, AAPL, CONFIG, now=0.0)
    protocol.receive_frame(frame(CONNECTED), 0.0)
    (auth,) = protocol.data_to_send()
    assert json.loads("".join(map(str, auth))) == {
        "action": "auth",
        "key": CREDENTIALS.key_id,
        "secret": CREDENTIALS.reveal(),
    }
    protocol.receive_frame(frame(AUTHENTICATED), 0.0)
    (subscribe,) = protocol.data_to_send()
    assert CREDENTIALS.reveal() not in "".join(map(str, subscribe))
