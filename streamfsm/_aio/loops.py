"""Which event loop the sync controller's own loop thread runs: asyncio's, or uvloop's.

uvloop (``streamfsm[fast]``) runs the loop's machinery in C: the socket reads that feed the
picows transport and the task switches of the engine cost less per frame. It is chosen by
``StreamConfig(loop="uvloop")``. The async API never changes the caller's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streamfsm.config import EventLoop, StreamConfig

__all__ = ["LoopFactory", "loop_factory", "uses_uvloop"]

#: Makes the loop a new loop thread runs; None means asyncio's default.
LoopFactory = Callable[[], asyncio.AbstractEventLoop] | None


def uses_uvloop(config: StreamConfig) -> bool:
    """True when ``config`` has the sync controller run uvloop.

    Assumes ``config.loop`` was validated: ``uvloop`` is only accepted when it is installed.
    """
    return config.loop is EventLoop.UVLOOP


def loop_factory(config: StreamConfig) -> LoopFactory:
    """The factory of the loop ``config`` chooses, for :class:`asyncio.Runner`; None for asyncio.

    Raises:
        ImportError: when uvloop is chosen but cannot be imported after all.
    """
    if not uses_uvloop(config):
        return None
    import uvloop  # only with streamfsm[fast]

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
