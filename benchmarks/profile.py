"""Where streamfsm fast's time per message goes: a cProfile of one replay run, grouped by part.

The controller runs in this process's own event loop (``async with``), so one profiler sees the
socket reader, the decode, the tracker, the dispatcher and the callback. cProfile adds a fixed
cost to every Python call, so parts made of many small Python calls read larger than they are;
the shares are a map of where to look, the throughput table is the measurement.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from typing import Any, Final

from benchmarks.clients import Counter, credentials, lossless, run_timeout
from benchmarks.server import SYMBOLS
from streamfsm.controller import StreamController

__all__ = ["profile_fast", "profile_reading"]

#: (part, substrings of "file:function" that belong to it), first match wins.
PARTS: Final = (
    ("user callback", ("clients.py:on_message",)),
    ("msgspec decode", ("msgspec", "protocol.py:decode")),
    ("inflate", ("zlib", "decompress")),
    ("websockets framing and receive", ("websockets",)),
    ("picows", ("picows",)),
    ("streamfsm tracker", ("tracking.py",)),
    ("streamfsm dispatcher", ("dispatch.py", "backlog.py")),
    ("streamfsm session and transport", ("session.py", "transport.py")),
    ("event loop and sockets", ("asyncio", "selectors", "socket", "epoll", "recv")),
)
TOP_FUNCTIONS: Final = 12


def _part(key: tuple[str, int, str]) -> str:
    filename, _line, function = key
    label = f"{filename}:{function}"
    for part, needles in PARTS:
        if any(needle in label for needle in needles):
            return part
    return "other"


async def _run(url: str, messages: int, mode: str) -> Counter:
    counter = Counter(messages)
    controller = StreamController(
        credentials(),
        lossless(url, messages),
        on_quote=counter.on_message,
        models=mode,
        symbols=SYMBOLS,
    )
    async with controller:
        await asyncio.wait_for(asyncio.to_thread(counter.done.wait), run_timeout(messages))
    return counter


def profile_fast(url: str, messages: int, mode: str = "fast") -> dict[str, Any]:
    """Profile one streamfsm run of ``messages`` quotes; shares of time by part, top functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        counter = asyncio.run(_run(url, messages, mode))
    finally:
        profiler.disable()
    counter.sample()  # raises when the run did not complete
    stats = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    parts: dict[str, float] = {}
    functions: list[tuple[float, str]] = []
    total = 0.0
    for key, (_calls, _primitive, tottime, _cumtime, _callers) in table.items():
        total += tottime
        part = _part(key)
        parts[part] = parts.get(part, 0.0) + tottime
        functions.append((tottime, f"{key[0].rsplit('/', 1)[-1]}:{key[1]}({key[2]})"))
    functions.sort(reverse=True)
    return {
        "mode": mode,
        "messages": messages,
        "total_s": total,
        "parts": {
            part: {"share": seconds / total, "us_per_message": seconds / messages * 1e6}
            for part, seconds in sorted(parts.items(), key=lambda item: -item[1])
        },
        "top": [
            {"function": name, "share": seconds / total}
            for seconds, name in functions[:TOP_FUNCTIONS]
        ],
    }


def profile_reading(profile: dict[str, Any]) -> str:
    """One paragraph on where the time goes, from :func:`profile_fast`'s result."""
    parts = ", ".join(
        f"{part} {figures['share']:.0%}" for part, figures in profile["parts"].items()
    )
    top = ", ".join(f"`{row['function']}` {row['share']:.0%}" for row in profile["top"][:6])
    return (
        f"Where streamfsm {profile['mode']}'s time goes (cProfile of one replay run of "
        f"{profile['messages']:,} quotes, own time by part; the profiler's per-call cost "
        f"inflates the parts made of many Python calls): {parts}. The largest single "
        f"functions: {top}."
    )
