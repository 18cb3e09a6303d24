"""One data connection of the simulator: the Alpaca server protocol and the data pump.

Theory of operation. A session runs two tasks until its TCP connection is gone:

* the reader sends ``connected``, authenticates from the handshake headers if they are present,
  then answers client messages one at a time (auth, subscribe, unsubscribe, errors); until auth
  succeeds every read carries the auth deadline;
* the pump sleeps on an event until there is something to send (subscribed data pairs, a rate
  above 0, no mute, or a replay), then sends frames paced by the rate.

Ordering: ``websockets`` writes a frame to the transport synchronously inside ``send``, before
any suspension. The reader switches the pump's pairs and writes the ack with no ``await`` in
between, so every data frame written after an ack reflects the acked set, and none precedes the
first ack.

Mute holds back everything the session would send by itself (acks, errors, data) while the
library keeps answering pings. Injected frames (``malformed``, ``error``) are sent even when muted:
a test asked for them explicitly.

After an error the session keeps the connection open (400, 401, 403, 405, 410, 413, injected
errors) or closes it with 1008 policy violation (every failed auth: 402, 406, 409, an injected
``fail_auth`` code; 404 auth timeout; and 412 when a JSON client reaches the msgpack-only option
stream, right after the welcome). Alpaca's documentation does not say which it does.

Every market's path is served by the same session: the market of the path's feed decides the
channels, the symbol grammar, the encodings, the schema of the data and which channels count
against the symbol limit. The first order book a connection gets for a symbol after subscribing
it is a snapshot with the reset flag, later ones change one level.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from streamfsm.config import Encoding, Feed
from streamfsm.logs import StreamLogger
from streamfsm.markets import MARKETS, Market, market_of_feed
from streamfsm.sim import wire
from streamfsm.sim.config import Replay, fingerprint
from streamfsm.sim.faults import MalformedKind, malformed_frame, reset
from streamfsm.sim.feed import TradeFixes
from streamfsm.sim.requests import (
    Action,
    AuthRequest,
    Rejected,
    SubscriptionChange,
    SubscriptionSet,
    parse_request,
)
from streamfsm.sim.stats import ConnectionInfo

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from streamfsm.sim.hub import Hub

__all__ = ["Session"]

KEY_HEADER: Final = "APCA-API-KEY-ID"
SECRET_HEADER: Final = "APCA-API-SECRET-KEY"
INVALID_SYNTAX: Final = 400
NOT_AUTHENTICATED: Final = 401
ALREADY_AUTHENTICATED: Final = 403
AUTH_TIMEOUT: Final = 404
SYMBOL_LIMIT: Final = 405
#: "option messages are only available in MsgPack format" (Alpaca's option stream).
MSGPACK_ONLY: Final = 412
#: Wire names of the order book channel and of the trades channel.
ORDERBOOKS: Final = "orderbooks"
TRADES: Final = "trades"

_log = StreamLogger("streamfsm.sim", component="sim")


class Session:
    """The server side of one market-data WebSocket connection (any market's path).

    Attributes:
        id: the simulator's connection id.
        feed: the feed of the URL path.
        spec: the feed's market: its channels, symbols, encodings and limits.
        encoding: the frame encoding negotiated by ``Content-Type``.
        key_id: the authenticated key id (not a secret); None until auth succeeds.
    """

    def __init__(self, hub: Hub, ws: ServerConnection, connection_id: int, feed: Feed) -> None:
        self.hub = hub
        self.ws = ws
        self.id = connection_id
        self.feed = feed
        self.spec = MARKETS[market_of_feed(feed)]
        request = ws.request
        headers = request.headers if request is not None else None
        self.encoding = wire.encoding_for(headers.get("Content-Type") if headers else None)
        self._text = self.encoding is Encoding.JSON
        self._stamp = wire.stamp_for(self.encoding)
        self.key_id: str | None = None
        self.subscriptions = SubscriptionSet()
        self._pairs: tuple[tuple[str, str], ...] = ()
        #: Order books whose snapshot this connection has sent since it subscribed them.
        self._books: set[str] = set()
        self._fixes = TradeFixes(hub.market, hub.config.corrections_every)
        self._cursor = 0
        self._acks = 0
        self._messages_sent = 0
        self._replay: Replay | None = hub.replay
        self._replayed = 0
        self._unmuted = asyncio.Event()
        self._unmuted.set()
        self._unmute_timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._open = True
        self._log = _log.bind(connection_id=connection_id, feed=feed.value)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the connection until its TCP connection is gone."""
        self.hub.opened(self)
        self._log.debug("sim_connection_opened", encoding=self.encoding.value)
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(self._read(), name=f"sim-read-{self.id}")
                pump = group.create_task(self._pump(), name=f"sim-pump-{self.id}")
                await self.ws.wait_closed()
                reader.cancel()
                pump.cancel()
        finally:
            self._open = False
            if self._unmute_timer is not None:
                self._unmute_timer.cancel()
            self.hub.closed(self)
            self._log.debug(
                "sim_connection_closed", code=self.ws.close_code, reason=self.ws.close_reason
            )

    def info(self) -> ConnectionInfo:
        """A snapshot of this connection."""
        return ConnectionInfo(
            id=self.id,
            feed=self.feed,
            encoding=self.encoding,
            key=fingerprint(self.key_id) if self.key_id is not None else None,
            subscriptions=self.subscriptions,
            acks=self._acks,
            messages_sent=self._messages_sent,
            muted=not self._unmuted.is_set(),
            open=self._open,
            close_code=None
            if self._open or self.ws.close_code is None
            else int(self.ws.close_code),
            close_reason="" if self._open else (self.ws.close_reason or ""),
        )

    @property
    def is_open(self) -> bool:
        """True until the TCP connection is gone."""
        return self._open

    # ------------------------------------------------------------ the reader

    async def _read(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.hub.config.auth_timeout
        try:
            await self._send_control(wire.connected())
            if self.encoding not in self.spec.encodings:
                await self._fail(MSGPACK_ONLY)
                return
            request = self.ws.request
            headers = request.headers if request is not None else None
            if (
                headers is not None
                and (KEY_HEADER in headers or SECRET_HEADER in headers)
                and not await self._authenticate(
                    headers.get(KEY_HEADER, ""), headers.get(SECRET_HEADER, "")
                )
            ):
                return
            while True:
                if self.key_id is None:
                    try:
                        async with asyncio.timeout_at(deadline):
                            frame = await self.ws.recv()
                    except TimeoutError:
                        await self._fail(AUTH_TIMEOUT)
                        return
                else:
                    frame = await self.ws.recv()
                if not await self._handle(frame):
                    return
        except ConnectionClosed:
            return

    async def _handle(self, frame: bytes | str) -> bool:
        """Answer one client frame; False when the connection is being closed."""
        try:
            request = parse_request(wire.decode(frame), self.spec)
        except wire.DecodeError:
            await self._reply_error(INVALID_SYNTAX)
            return True
        except Rejected as rejected:
            self._log.debug("sim_request_rejected", code=rejected.code, detail=rejected.detail)
            await self._reply_error(rejected.code)
            return True
        if isinstance(request, AuthRequest):
            if self.key_id is not None:
                await self._reply_error(ALREADY_AUTHENTICATED)
                return True
            return await self._authenticate(request.key, request.secret)
        if self.key_id is None:
            await self._reply_error(NOT_AUTHENTICATED)
            return True
        await self._change(request)
        return True

    async def _authenticate(self, key_id: str, secret: str) -> bool:
        self.hub.auth_attempted()
        if self.hub.auth_delay > 0:
            await asyncio.sleep(self.hub.auth_delay)
        code = self.hub.authorize(key_id, secret, self.feed)
        if code is not None:
            self._log.info("sim_auth_rejected", code=code, key=fingerprint(key_id))
            await self._fail(code)
            return False
        self.key_id = key_id
        self.hub.changed()
        await self._send_control(wire.authenticated())
        return True

    async def _change(self, change: SubscriptionChange) -> None:
        updated = self.subscriptions.apply(change)
        limit = self.hub.config.symbol_limit
        if (
            change.action is Action.SUBSCRIBE
            and limit is not None
            and updated.limited_count(self.spec) > limit
        ):
            await self._reply_error(SYMBOL_LIMIT)
            return
        await self._unmuted.wait()
        # No await between switching the pairs and writing the ack: see the module docstring.
        self.subscriptions = updated
        self._pairs = updated.pairs(self.hub.config.universe_for(self.spec.market))
        self._books &= {symbol for channel, symbol in self._pairs if channel == ORDERBOOKS}
        self._cursor = 0
        self._acks += 1
        await self.ws.send(wire.encode(updated.ack(self.spec), self.encoding), text=self._text)
        self._wake.set()
        self.hub.changed()

    async def _fail(self, code: int) -> None:
        """Send error ``code``, then close the connection (policy violation)."""
        await self._reply_error(code)
        await self.ws.close(CloseCode.POLICY_VIOLATION, wire.error_message(code))

    async def _reply_error(self, code: int) -> None:
        await self._send_control(wire.error(code, wire.error_message(code)))
        self.hub.error_sent(code)

    async def _send_control(self, frame: list[dict[str, Any]]) -> None:
        await self._unmuted.wait()
        await self.ws.send(wire.encode(frame, self.encoding), text=self._text)

    # ------------------------------------------------------------ the pump

    def _ready(self) -> bool:
        if not self._unmuted.is_set() or self._acks == 0:
            return False
        if self._replay is not None:
            return self._replayed < len(self._replay.frames) * self._replay.repeat
        return bool(self._pairs) and self.hub.rate != 0

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        previous_due: float | None = None
        try:
            while True:
                self._wake.clear()
                if not self._ready():
                    previous_due = None
                    await self._wake.wait()
                    continue
                if self._replay is not None:
                    await self._send_replayed(self._replay)
                    await asyncio.sleep(0)  # let the reader and other connections run
                    continue
                rate = self.hub.rate
                interval = None if rate is None else self.hub.config.batch / rate
                now = loop.time()
                due = now
                if interval is not None and previous_due is not None:
                    due = previous_due + interval
                    if due > now:
                        await self._sleep(due - now)
                        continue
                    # Behind schedule: catch up by at most one frame, never in a burst.
                    due = max(due, now - interval)
                await self._send_data()
                previous_due = due
                if interval is None:
                    await asyncio.sleep(0)  # as fast as the client reads, but yield each frame
        except ConnectionClosed:
            return

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the session's state changes."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return

    async def _send_data(self) -> None:
        now_ns = time.time_ns()
        pairs = self._pairs
        market = self.hub.market
        messages = []
        for offset in range(self.hub.config.batch):
            channel, symbol = pairs[self._cursor % len(pairs)]
            self._cursor += 1
            snapshot = channel == ORDERBOOKS and symbol not in self._books
            if snapshot:
                self._books.add(symbol)
            message = market.message(
                channel, symbol, self.feed, now_ns + offset, self._stamp, snapshot=snapshot
            )
            messages.append(message)
            if channel == TRADES and self.spec.market is Market.STOCKS:
                messages.extend(self._fixes.after(message, self._stamp, now_ns + offset))
        await self.ws.send(wire.encode(messages, self.encoding), text=self._text)
        self._messages_sent += len(messages)
        self.hub.data_sent(messages)

    async def _send_replayed(self, replay: Replay) -> None:
        frame = replay.frames[self._replayed % len(replay.frames)]
        self._replayed += 1
        await self.ws.send(frame)
        completed = self._replayed == len(replay.frames) * replay.repeat
        self.hub.replay_frame_sent(completed=completed)

    # ------------------------------------------------------------ faults

    async def drop(self) -> None:
        """Reset the TCP connection and wait until it is gone."""
        reset(self.ws.transport)
        await self.ws.wait_closed()

    async def close(self, code: int, reason: str) -> None:
        """Run the close handshake (bounded by the close timeout)."""
        await self.ws.close(code, reason)

    def mute(self, seconds: float | None) -> None:
        """Hold everything back, for ``seconds`` or until :meth:`unmute`."""
        if self._unmute_timer is not None:
            self._unmute_timer.cancel()
            self._unmute_timer = None
        self._unmuted.clear()
        if seconds is not None:
            self._unmute_timer = asyncio.get_running_loop().call_later(seconds, self.unmute)
        self.hub.changed()

    def unmute(self) -> None:
        """End a mute; held-back replies go out first."""
        if self._unmute_timer is not None:
            self._unmute_timer.cancel()
            self._unmute_timer = None
        self._unmuted.set()
        self._wake.set()
        self.hub.changed()

    def wake(self) -> None:
        """Make the pump re-read the rate."""
        self._wake.set()

    async def send_malformed(self, kind: MalformedKind) -> None:
        """Send one malformed frame, about a subscribed symbol when there is one."""
        symbols = [symbol for channel, symbol in self._pairs if channel == "quotes"]
        symbols += [symbol for _, symbol in self._pairs]
        symbol = symbols[0] if symbols else self.hub.config.universe[0]
        payload, text = malformed_frame(kind, self.encoding, symbol, time.time_ns())
        await self.ws.send(payload, text=text)

    async def send_error(self, code: int, message: str) -> None:
        """Send an error message ``{"T": "error", ...}`` without closing."""
        await self.ws.send(wire.encode(wire.error(code, message), self.encoding), text=self._text)
        self.hub.error_sent(code)
