"""The benchmark's simulator process: ``python -m benchmarks.server replay|walk [options]``.

Runs a server in its own process (own core, own GIL) and prints its iex URL as the first line
of stdout. ``replay`` serves pre-encoded, pre-deflated msgpack frames of quotes as fast as the
socket takes them (:mod:`benchmarks.replay`, throughput); ``walk`` serves
:class:`streamfsm.sim.Simulator`'s random walk at a fixed rate (lifecycle figures). Exits on
SIGTERM, SIGINT or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from streamfsm.config import Feed
from streamfsm.sim import SimConfig, Simulator

__all__ = ["QUOTES_PER_FRAME", "SYMBOLS", "build_frames", "main"]

#: The workload's symbols, as the issue asks: four of them.
SYMBOLS: Final = ("AAPL", "MSFT", "NVDA", "SPY")
#: Quotes per replayed frame, as Alpaca batches them.
QUOTES_PER_FRAME: Final = 100
#: Distinct frames built; the replay repeats them. Enough to defeat any trivial caching.
DISTINCT_FRAMES: Final = 50
#: Authenticated connections per key: clients run in turn, but a closing one may linger.
CONNECTION_LIMIT: Final = 64
#: A start price and tick for the synthetic quotes.
BASE_PRICE: Final = 100.0
TICK: Final = 0.01
SPREAD: Final = 0.02
PRICE_LEVELS: Final = 97
#: Fixed start of the synthetic timestamps, so runs are reproducible.
EPOCH: Final = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def build_frames(total_messages: int) -> tuple[tuple[bytes, ...], int]:
    """Pre-encode the quote frames for ``total_messages`` quotes.

    Returns:
        The distinct frames and the repeat count; ``len(frames) * repeat * QUOTES_PER_FRAME``
        is ``total_messages`` rounded up to a whole number of frames.
    """
    total_frames = max(1, -(-total_messages // QUOTES_PER_FRAME))
    distinct = min(DISTINCT_FRAMES, total_frames)
    while total_frames % distinct:
        distinct -= 1
    frames: list[bytes] = []
    sequence = 0
    for _ in range(distinct):
        batch: list[dict[str, Any]] = []
        for _ in range(QUOTES_PER_FRAME):
            symbol = SYMBOLS[sequence % len(SYMBOLS)]
            bid = BASE_PRICE + TICK * (sequence % PRICE_LEVELS)
            batch.append(
                {
                    "T": "q",
                    "S": symbol,
                    "bx": "V",
                    "bp": round(bid, 2),
                    "bs": 1 + sequence % 7,
                    "ax": "V",
                    "ap": round(bid + SPREAD, 2),
                    "as": 1 + sequence % 5,
                    "c": ["R"],
                    "z": "C",
                    "t": EPOCH + timedelta(microseconds=sequence),
                }
            )
            sequence += 1
        frames.append(msgspec.msgpack.encode(batch))
    return tuple(frames), total_frames // distinct


async def _serve(config: SimConfig | None, replay_messages: int = 0) -> None:
    """Serve the walk simulator for ``config``, or the prepared replay when it is None."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    with contextlib.suppress(OSError):  # stdin a pipe: its end means the parent is gone
        loop.add_reader(sys.stdin.fileno(), stop.set)
    # Logs may go to stdout; only the URL may: point fd 1 at stderr, keep the pipe for the URL.
    pipe = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    if config is None:
        from benchmarks.replay import ReplayServer

        replay = ReplayServer(replay_messages)
        pipe.write(f"{await replay.start()}\n")
        pipe.close()
        try:
            await stop.wait()
        finally:
            await replay.close()
        return
    async with Simulator(config) as sim:
        pipe.write(f"{sim.url(Feed.IEX)}\n")
        pipe.close()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Serve until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server")
    parser.add_argument("mode", choices=("replay", "walk"))
    parser.add_argument("--messages", type=int, default=1, help="replay: quotes per connection")
    parser.add_argument("--rate", type=float, default=0.0, help="walk: messages per second")
    parser.add_argument("--batch", type=int, default=1, help="walk: messages per frame")
    args = parser.parse_args(argv)
    common: dict[str, Any] = {
        "symbol_limit": None,
        "connection_limit": CONNECTION_LIMIT,
        "close_timeout": 0.1,
    }
    if args.mode == "replay":
        asyncio.run(_serve(None, args.messages))
        return
    config = SimConfig(rate=args.rate, batch=args.batch, **common)
    asyncio.run(_serve(config))


if __name__ == "__main__":
    main()
