"""The bus's framing: each Alpaca frame relayed whole, behind the tenure's epoch and a sequence.

A relayed frame is ``epoch`` and ``seq`` (two unsigned 64-bit big-endian integers) followed by the
frame's bytes exactly as Alpaca sent them, so followers decode with the same decoder as a direct
session and the holder never re-encodes. ``seq`` starts at 1 for each tenure and grows by one per
frame. A 16-byte prefix costs less per message than NATS headers, which nats-py parses in Python.

:class:`BusSequencer` is a follower's bookkeeping, sans-I/O: it drops frames of an older tenure
(a fenced holder's late frames) and turns a jump in ``seq`` or a new epoch into a gap verdict.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

__all__ = ["HEADER", "BusSequencer", "Verdict", "decode_frame", "encode_frame"]

#: epoch, seq: two unsigned 64-bit integers, network byte order.
HEADER: Final = struct.Struct("!QQ")


def encode_frame(epoch: int, seq: int, frame: bytes) -> bytes:
    """The bus payload of one relayed frame."""
    return HEADER.pack(epoch, seq) + frame


def decode_frame(payload: bytes) -> tuple[int, int, bytes]:
    """``(epoch, seq, frame)`` from a bus payload.

    Raises:
        ValueError: when the payload is shorter than the header.
    """
    if len(payload) < HEADER.size:
        raise ValueError(f"bus payload of {len(payload)} bytes has no header")
    epoch, seq = HEADER.unpack_from(payload)
    return epoch, seq, payload[HEADER.size :]


class Verdict(enum.Enum):
    """What a follower does with one relayed frame."""

    #: The next frame of the tenure being followed: deliver it.
    DELIVER = "deliver"
    #: The first frame this follower sees at all: deliver it, nothing was lost before.
    FIRST = "first"
    #: Frames of this tenure were lost before this one: report a bus gap, then deliver.
    GAP = "bus_gap"
    #: A newer tenure's frame: report a handover gap, then deliver.
    HANDOVER = "handover"
    #: An older tenure's frame or a repeat: drop it.
    STALE = "stale"


class BusSequencer:
    """A follower's view of the relay: the tenure it follows and the next sequence it expects."""

    def __init__(self) -> None:
        self.epoch = 0
        self.floor = 0
        self.next_seq = 1
        self.stale = 0
        self.gaps = 0
        self.handovers = 0
        self.missing = 0

    def raise_floor(self, epoch: int) -> None:
        """A tenure ``epoch`` began (seen on the lease): frames of older tenures are stale."""
        self.floor = max(self.floor, epoch)

    def accept(self, epoch: int, seq: int) -> Verdict:
        """The verdict for the frame ``(epoch, seq)``; counts what it implies."""
        if epoch < self.epoch or epoch < self.floor:
            self.stale += 1
            return Verdict.STALE
        if epoch > self.epoch:
            first = self.epoch == 0
            self.epoch = epoch
            self.next_seq = seq + 1
            if first:
                return Verdict.FIRST
            self.handovers += 1
            return Verdict.HANDOVER
        expected = self.next_seq
        if seq == expected:
            self.next_seq = seq + 1
            return Verdict.DELIVER
        if seq < expected:
            self.stale += 1
            return Verdict.STALE
        self.gaps += 1
        self.missing += seq - expected
        self.next_seq = seq + 1
        return Verdict.GAP
