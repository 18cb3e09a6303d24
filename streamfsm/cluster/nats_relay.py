"""The relay on NATS core pub/sub: the holder publishes Alpaca frames, every process follows.

:class:`RelayPublisher` sends each frame Alpaca delivered, whole, behind its tenure's epoch and
sequence, and only while the lease allows (``may_publish`` reads the monotonic clock per frame):
a fenced or paused ex-holder publishes nothing. :class:`RelaySubscriber` runs a
:class:`~streamfsm.cluster.framing.BusSequencer` over what arrives, drops older tenures, and
reports a sequence jump or a new tenure before handing the frame on.

Core NATS is at-most-once: a follower that falls behind by more than ``pending_limit`` messages is
cut off by its client library (a slow consumer), which the sequencer sees as a gap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from streamfsm.cluster.framing import BusSequencer, Verdict, decode_frame, encode_frame
from streamfsm.logs import StreamLogger

__all__ = [
    "BARRIER_TIMEOUT",
    "DEFAULT_PENDING_LIMIT",
    "RelayPublisher",
    "RelaySubscriber",
    "frames_subject",
    "settle",
]

#: Relayed frames a follower's client buffers before it drops (a slow consumer); at Alpaca's
#: frame rates this is tens of seconds of backlog, far more than the dispatcher's own bound.
DEFAULT_PENDING_LIMIT: Final = 65_536


#: How long :func:`settle` waits for the server's answer, seconds (nats-py's flush default).
BARRIER_TIMEOUT: Final = 10.0


async def settle(client: Client, patience: float = BARRIER_TIMEOUT) -> None:
    """Return once the server has processed every command ``client`` queued before the call.

    nats-py's ``flush()`` cannot promise that: it writes its PING straight to the socket while
    earlier commands (a SUB, say) may still wait in the client's buffer for its flusher task, so
    its PONG can come back before the server has seen them (observed under load: a subscription
    missed the frames published right after ``subscribe(); flush()`` returned). A request goes
    through the same buffer as every other command, in order; the server answers one nobody
    listens to with "no responders" only after processing everything queued before it.

    Raises:
        nats.errors.Error or TimeoutError: when the server does not answer within ``patience``.
    """
    try:
        await client.request(f"_streamfsm.barrier.{client.new_inbox()}", b"", timeout=patience)
    except nats.errors.NoRespondersError:
        return


def frames_subject(cluster: str, scope: str) -> str:
    """The subject the holder of ``scope`` (account and feed) relays on."""
    return f"streamfsm.{cluster}.{scope}.frames"


class RelayPublisher:
    """The holder's side: one tenure's frames onto the bus.

    Args:
        client: a connected NATS client.
        subject: the frames subject.
        epoch: the tenure (the lease's create revision).
        may_publish: the lease's check, read before every frame.
    """

    def __init__(
        self, client: Client, subject: str, epoch: int, may_publish: Callable[[], bool]
    ) -> None:
        self._client = client
        self._subject = subject
        self.epoch = epoch
        self._may_publish = may_publish
        self.seq = 0
        self.published = 0
        self.refused = 0

    async def publish(self, frame: bytes | str) -> bool:
        """Relay one frame; False (and nothing sent) when the lease no longer allows it."""
        if not self._may_publish():
            self.refused += 1
            return False
        self.seq += 1
        data = frame.encode() if isinstance(frame, str) else frame
        await self._client.publish(self._subject, encode_frame(self.epoch, self.seq, data))
        self.published += 1
        return True


class RelaySubscriber:
    """A follower's side: frames in order, with gaps and handovers reported first.

    Args:
        client: a connected NATS client.
        subject: the frames subject.
        on_frame: called with each frame's bytes, in order.
        on_gap: called with the verdict (``GAP`` or ``HANDOVER``) and the epoch it concerns,
            before the frame that revealed it.
        log: the logger.
        pending_limit: messages buffered before the client drops (a slow consumer).
    """

    def __init__(
        self,
        client: Client,
        subject: str,
        *,
        on_frame: Callable[[bytes], None],
        on_gap: Callable[[Verdict, int], None],
        log: StreamLogger,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> None:
        self._client = client
        self._subject = subject
        self._on_frame = on_frame
        self._on_gap = on_gap
        self._log = log
        self._pending_limit = pending_limit
        self.sequencer = BusSequencer()
        self.received = 0
        self.malformed = 0
        self._subscription: NatsSubscription | None = None

    async def start(self) -> None:
        """Subscribe, and return once the server has registered the subscription."""
        self._subscription = await self._client.subscribe(
            self._subject, cb=self._handle, pending_msgs_limit=self._pending_limit
        )
        await settle(self._client)

    async def stop(self) -> None:
        """Unsubscribe; idempotent."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.unsubscribe()

    async def _handle(self, message: Msg) -> None:
        self.received += 1
        try:
            epoch, seq, frame = decode_frame(message.data)
        except ValueError as error:
            self.malformed += 1
            self._log.warning("bus_frame_malformed", error=str(error))
            return
        verdict = self.sequencer.accept(epoch, seq)
        if verdict is Verdict.STALE:
            return
        if verdict is Verdict.GAP or verdict is Verdict.HANDOVER:
            self._log.info("bus_gap", reason=verdict.value, epoch=epoch, seq=seq)
            self._on_gap(verdict, epoch)
        self._on_frame(frame)
