"""The state one simulator shares between its connections: keys, slots, faults, counters.

Only the simulator's event loop touches a hub, so nothing here is locked. Waiters are futures
resolved from :meth:`Hub.changed`, which every state change calls: nothing polls.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from streamfsm.config import Feed
from streamfsm.markets import Market, market_of_feed
from streamfsm.sim.config import Replay, SimConfig, fingerprint, secret_digest
from streamfsm.sim.faults import RefuseMode
from streamfsm.sim.feed import MarketFeed
from streamfsm.sim.stats import ConnectionInfo, SimStats

if TYPE_CHECKING:
    from streamfsm.sim.session import Session

__all__ = ["Hub", "Predicate"]

#: Closed connections remembered in snapshots; older ones are forgotten so a long-running
#: simulator does not grow without bound.
CLOSED_CONNECTIONS_KEPT: Final = 1000
#: Alpaca codes for auth outcomes.
AUTH_FAILED: Final = 402
CONNECTION_LIMIT: Final = 406
INSUFFICIENT_SUBSCRIPTION: Final = 409

#: A condition on a snapshot, for :meth:`Hub.wait_for`.
Predicate = Callable[[SimStats], bool]


class Hub:
    """Shared state of one simulator. Created and used on the simulator's event loop only."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.market = MarketFeed(config.seed)
        #: Current data rate; ``rate`` fault changes it.
        self.rate: float | None = config.rate
        #: Replay given to connections opened from now on.
        self.replay: Replay | None = config.replay
        #: Seconds every auth reply is held back (``delay_auth`` fault).
        self.auth_delay = 0.0
        self.sessions: dict[int, Session] = {}
        self._closed: collections.deque[ConnectionInfo] = collections.deque(
            maxlen=CLOSED_CONNECTIONS_KEPT
        )
        self._ids = itertools.count(1)
        self._refuse_until: float | None = None
        self._refuse_mode = RefuseMode.HTTP_503
        self._fail_auth_remaining = 0
        self._fail_auth_code = CONNECTION_LIMIT
        #: Slots held per (key id, market): Alpaca limits connections per endpoint.
        self._slots: collections.Counter[tuple[str, Market]] = collections.Counter()
        self._reaps: dict[int, asyncio.TimerHandle] = {}
        self._reap_tokens = itertools.count()
        self._attempts = 0
        self._refused = 0
        self._auth_attempts = 0
        self._auth_successes = 0
        self._errors: collections.Counter[int] = collections.Counter()
        self._messages: collections.Counter[str] = collections.Counter()
        self._frames = 0
        self._replays = 0
        self._waiters: list[tuple[Predicate, asyncio.Future[SimStats]]] = []

    # ------------------------------------------------------------ connections

    def next_id(self) -> int:
        """A fresh connection id."""
        return next(self._ids)

    def attempted(self, *, refused: bool) -> None:
        """Count one upgrade request on a data path."""
        self._attempts += 1
        if refused:
            self._refused += 1
        self.changed()

    def opened(self, session: Session) -> None:
        """Register an accepted data connection."""
        self.sessions[session.id] = session
        self.changed()

    def closed(self, session: Session) -> None:
        """Unregister a finished connection and start reaping its key's slot."""
        self.sessions.pop(session.id, None)
        self._closed.append(session.info())
        if session.key_id is not None:
            self._release((session.key_id, session.spec.market))
        self.changed()

    # ------------------------------------------------------------ refusal

    def refuse(self, until: float, mode: RefuseMode) -> None:
        """Refuse new data connections until the loop time ``until`` (``inf``: until accept)."""
        self._refuse_until = until
        self._refuse_mode = mode

    def accept(self) -> None:
        """Stop refusing."""
        self._refuse_until = None

    def refusal(self) -> RefuseMode | None:
        """How to refuse a connection arriving now, or None to accept it."""
        if self._refuse_until is None:
            return None
        if asyncio.get_running_loop().time() >= self._refuse_until:
            self._refuse_until = None
            return None
        return self._refuse_mode

    # ------------------------------------------------------------ auth

    def fail_auth(self, count: int, code: int) -> None:
        """Answer the next ``count`` auths with valid credentials with error ``code``."""
        self._fail_auth_remaining = count
        self._fail_auth_code = code

    def auth_attempted(self) -> None:
        """Count one auth attempt, whatever its outcome."""
        self._auth_attempts += 1
        self.changed()

    def authorize(self, key_id: str, secret: str, feed: Feed) -> int | None:
        """Check an auth and take a connection slot for the key on ``feed``'s market.

        Checks, in order: the credentials (402), an injected failure (``fail_auth``), the
        entitlement to ``feed`` (409), the key's connection limit (406). The limit holds per
        market stream, as Alpaca's holds per endpoint: a stock and a crypto connection of one key
        do not compete.

        Returns:
            None when the auth succeeds (the slot is now held), else the error code to send.
        """
        digest = self.config.credentials.get(key_id)
        if digest is None or not hmac.compare_digest(digest, secret_digest(secret)):
            return AUTH_FAILED
        if self._fail_auth_remaining > 0:
            self._fail_auth_remaining -= 1
            return self._fail_auth_code
        if feed not in self.config.feeds_for(key_id):
            return INSUFFICIENT_SUBSCRIPTION
        slot = (key_id, market_of_feed(feed))
        if self._slots[slot] >= self.config.connection_limit:
            return CONNECTION_LIMIT
        self._slots[slot] += 1
        self._auth_successes += 1
        return None

    def _release(self, key_id: tuple[str, Market]) -> None:
        delay = self.config.reap_delay
        if delay <= 0:
            self._reaped(key_id, None)
            return
        token = next(self._reap_tokens)
        self._reaps[token] = asyncio.get_running_loop().call_later(
            delay, self._reaped, key_id, token
        )

    def _reaped(self, key_id: tuple[str, Market], token: int | None) -> None:
        if token is not None:
            self._reaps.pop(token, None)
        self._slots[key_id] -= 1
        if self._slots[key_id] <= 0:
            del self._slots[key_id]
        self.changed()

    # ------------------------------------------------------------ traffic

    def error_sent(self, code: int) -> None:
        """Count one error message sent."""
        self._errors[code] += 1
        self.changed()

    def data_sent(self, messages: Iterable[Mapping[str, Any]]) -> None:
        """Count one data frame and its messages per symbol (a news article: its symbols)."""
        self._frames += 1
        for message in messages:
            symbol = message.get("S")
            self._messages.update((symbol,) if symbol is not None else message["symbols"])
        if self._waiters:
            self.changed()

    def replay_frame_sent(self, *, completed: bool) -> None:
        """Count one replayed frame, and a finished replay."""
        self._frames += 1
        if completed:
            self._replays += 1
        if self._waiters or completed:
            self.changed()

    # ------------------------------------------------------------ snapshots and waits

    def stats(self) -> SimStats:
        """A snapshot of everything above."""
        infos = {info.id: info for info in self._closed}
        infos.update((session.id, session.info()) for session in self.sessions.values())
        return SimStats(
            connection_attempts=self._attempts,
            connections_refused=self._refused,
            connections=tuple(infos[key] for key in sorted(infos)),
            auth_attempts=self._auth_attempts,
            auth_successes=self._auth_successes,
            errors_sent=self._errors,
            messages_sent=self._messages,
            frames_sent=self._frames,
            replays_completed=self._replays,
            slots_held=self._slots_by_key(),
            rate=self.rate,
        )

    def _slots_by_key(self) -> dict[str, int]:
        held: collections.Counter[str] = collections.Counter()
        for (key_id, _market), count in self._slots.items():
            held[fingerprint(key_id)] += count
        return dict(held)

    def changed(self) -> None:
        """Re-evaluate the waiters' predicates against a fresh snapshot."""
        if not self._waiters:
            return
        snapshot = self.stats()
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                if predicate(snapshot):
                    future.set_result(snapshot)
            except Exception as exc:  # noqa: BLE001 - a failing predicate fails its own waiter
                future.set_exception(exc)

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float,  # noqa: ASYNC109 - a bounded wait is the contract: tests never hang
    ) -> SimStats:
        """Wait until ``predicate(stats())`` holds; return that snapshot.

        Raises:
            TimeoutError: when it does not hold within ``timeout`` seconds.
        """
        snapshot = self.stats()
        if predicate(snapshot):
            return snapshot
        future: asyncio.Future[SimStats] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(f"simulator condition not met within {timeout:g} s") from None
        finally:
            self._waiters.remove(entry)

    def shutdown(self) -> None:
        """Cancel the reaping timers; the slots they would free go with the simulator."""
        for handle in self._reaps.values():
            handle.cancel()
        self._reaps.clear()
