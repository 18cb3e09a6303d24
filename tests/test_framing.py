"""Bus framing and the follower's sequencer: stale tenures dropped, gaps and handovers found."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfsm.cluster.framing import BusSequencer, Verdict, decode_frame, encode_frame


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary())
def test_frames_round_trip(epoch: int, seq: int, frame: bytes) -> None:
    """A relayed frame decodes to its epoch, sequence and untouched bytes."""
    assert decode_frame(encode_frame(epoch, seq, frame)) == (epoch, seq, frame)


def test_a_payload_without_header_is_refused() -> None:
    """A truncated payload raises instead of being read as a frame."""
    with pytest.raises(ValueError, match="no header"):
        decode_frame(b"short")


def test_in_order_frames_are_delivered_and_a_jump_is_a_gap() -> None:
    """Consecutive sequences deliver; a jump reports a bus gap with the count missed."""
    sequencer = BusSequencer()
    assert sequencer.accept(5, 1) is Verdict.FIRST
    assert sequencer.accept(5, 2) is Verdict.DELIVER
    assert sequencer.accept(5, 5) is Verdict.GAP
    assert sequencer.missing == 2
    assert sequencer.accept(5, 5) is Verdict.STALE


def test_a_new_tenure_is_a_handover_and_the_old_one_is_dropped_after() -> None:
    """The first frame of a newer epoch is a handover; late frames of the old epoch are stale."""
    sequencer = BusSequencer()
    sequencer.accept(5, 1)
    assert sequencer.accept(9, 1) is Verdict.HANDOVER
    assert sequencer.accept(5, 2) is Verdict.STALE
    assert (sequencer.handovers, sequencer.stale) == (1, 1)


def test_a_fenced_holders_late_frames_are_dropped_once_the_new_lease_is_seen() -> None:
    """After the lease shows a newer tenure, the old holder's frames are stale at once."""
    sequencer = BusSequencer()
    sequencer.accept(5, 1)
    sequencer.raise_floor(9)
    assert sequencer.accept(5, 2) is Verdict.STALE


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 20)), max_size=60))
def test_delivered_frames_never_go_back(frames: list[tuple[int, int]]) -> None:
    """Whatever arrives, delivered (epoch, seq) pairs strictly increase."""
    sequencer = BusSequencer()
    delivered: list[tuple[int, int]] = []
    for epoch, seq in frames:
        if sequencer.accept(epoch, seq) is not Verdict.STALE:
            delivered.append((epoch, seq))
    assert delivered == sorted(set(delivered))
