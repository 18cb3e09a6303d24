"""The session: it only pumps frames and a deadline through the protocol, and reports values.

The transport is a fake here (frames from a queue, sent messages recorded), so each test says
exactly what the server sent; tests/test_controller_integration.py runs the real socket.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from streamfsm._aio import session as session_module
from streamfsm._aio.dispatch import Delivery, Dispatcher
from streamfsm._aio.session import Session
from streamfsm._core.commands import (
    ChangeAcknowledged,
    Input,
    OpenSession,
    SessionEnded,
    SessionReady,
)
from streamfsm._core.policies import ChannelActivity
from streamfsm._core.subscriptions import Subscription
from streamfsm._core.tracking import DataTracker
from streamfsm.config import Encoding, OverflowPolicy, StreamConfig
from streamfsm.credentials import Credentials
from streamfsm.errors import ConnectionClosedError, ConnectTimeoutError, InternalError, StreamError
from streamfsm.logs import StreamLogger
from streamfsm.models import Quote

WAIT = 5.0
AAPL = Subscription(quotes={"AAPL"})
CONFIG = StreamConfig(encoding=Encoding.JSON, auth_timeout=0.5, subscribe_timeout=WAIT)
CREDENTIALS = Credentials("PKTEST00000000001234", "sEcReT-0123456789-do-not-leak")
CLOSED = object()


class FakeTransport:
    """Frames from a queue; what is sent is kept; closing is recorded."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = False
        #: Set whenever something is sent or reported, so a test can wait on it.
        self.progress = asyncio.Event()

    def server(self, *messages: dict[str, Any]) -> None:
        self.incoming.put_nowait(json.dumps(list(messages)))

    async def recv(self) -> str:
        frame = await self.incoming.get()
        if frame is CLOSED:
            raise ConnectionClosedError(1000, "bye")
        return str(frame)

    async def send(self, fragments: Any) -> None:
        self.sent.append("".join(fragments))
        self.progress.set()

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> FakeTransport:
    """The transport every session in the test opens."""
    fake = FakeTransport()

    async def open_fake(*_args: object) -> FakeTransport:
        return fake

    monkeypatch.setattr(session_module, "open_transport", open_fake)
    return fake


class Harness:
    """A session with a real tracker and dispatcher, its reports collected."""

    def __init__(self, transport: FakeTransport, subscription: Subscription = AAPL) -> None:
        self.inputs: list[Input] = []
        self.transport = transport
        self.reported: list[StreamError] = []
        self.quotes: list[Quote] = []
        self.tracker = DataTracker(ChannelActivity(), lambda _gap: None)
        log = StreamLogger(correlation_id="session-test")
        self.dispatcher = Dispatcher(
            {Quote: Delivery("on_quote", self.quotes.append)}, 100, OverflowPolicy.CONFLATE, log
        )
        self.session = Session(
            OpenSession(1, "c-1", subscription, 1),
            config=CONFIG,
            credentials=CREDENTIALS,
            send=self.received,
            report=self.reported.append,
            tracker=self.tracker,
            dispatcher=self.dispatcher,
            clock=asyncio.get_running_loop().time,
            log=log,
        )

    def received(self, event: Input) -> None:
        self.inputs.append(event)
        self.transport.progress.set()


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
        "t": "2024-07-24T00:00:00Z",
    }


async def until(transport: FakeTransport, predicate: Any) -> None:
    """Wait, bounded, until ``predicate()`` holds, checking after each send or report."""
    async with asyncio.timeout(WAIT):
        while not predicate():
            transport.progress.clear()
            await transport.progress.wait()


def test_the_handshake_is_pumped_and_ready_is_sent_as_a_value(transport: FakeTransport) -> None:
    """Welcome, auth, subscribe: the session answers each and sends SessionReady, then data."""

    async def main() -> Harness:
        h = Harness(transport)
        task = asyncio.create_task(h.session.run())
        transport.server({"T": "success", "msg": "connected"})
        await until(transport, lambda: len(transport.sent) == 1)
        assert json.loads(transport.sent[0])["action"] == "auth"
        transport.server({"T": "success", "msg": "authenticated"})
        await until(transport, lambda: len(transport.sent) == 2)
        assert json.loads(transport.sent[1])["action"] == "subscribe"
        transport.server({"T": "subscription", "quotes": ["AAPL"], "trades": [], "bars": []})
        transport.server(quote("AAPL"), {"T": "subscription", "quotes": [], "trades": []})
        await until(transport, lambda: len(h.inputs) == 2)
        transport.incoming.put_nowait(CLOSED)
        await asyncio.wait_for(task, WAIT)
        return h

    h = asyncio.run(main())
    assert h.inputs[0] == SessionReady(1, AAPL, None)
    assert h.inputs[1] == ChangeAcknowledged(1, Subscription())
    assert isinstance(h.inputs[2], SessionEnded)
    assert isinstance(h.inputs[2].error, ConnectionClosedError)
    assert [q.symbol for q in h.quotes] == ["AAPL"]
    assert transport.closed


def test_a_phase_past_its_deadline_ends_the_session(transport: FakeTransport) -> None:
    """No 'authenticated' within auth_timeout: SessionEnded with a ConnectTimeoutError."""

    async def main() -> Harness:
        h = Harness(transport)
        transport.server({"T": "success", "msg": "connected"})
        await asyncio.wait_for(h.session.run(), WAIT)
        return h

    h = asyncio.run(main())
    (ended,) = h.inputs
    assert isinstance(ended, SessionEnded)
    assert isinstance(ended.error, ConnectTimeoutError)
    assert "auth" in str(ended.error)
    assert transport.closed


def test_a_defect_becomes_an_internal_error_of_that_session(
    transport: FakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception fails the session with InternalError; the socket is closed."""

    def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(session_module.SessionProtocol, "receive_frame", broken)

    async def main() -> Harness:
        h = Harness(transport)
        transport.server({"T": "success", "msg": "connected"})
        await asyncio.wait_for(h.session.run(), WAIT)
        return h

    h = asyncio.run(main())
    (ended,) = h.inputs
    assert isinstance(ended, SessionEnded)
    assert isinstance(ended.error, InternalError)
    assert "RuntimeError: boom" in str(ended.error)
    assert transport.closed


def test_a_cancelled_session_reports_nothing_and_closes_its_socket(
    transport: FakeTransport,
) -> None:
    """Cancelled by the core (CloseSession): no report, the transport closed."""

    async def main() -> Harness:
        h = Harness(transport)
        task = asyncio.create_task(h.session.run())
        transport.server({"T": "success", "msg": "connected"})
        await until(transport, lambda: len(transport.sent) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return h

    h = asyncio.run(main())
    assert h.inputs == []
    assert transport.closed
