"""An Alpaca market-data stream simulator with fault injection, served on loopback.

The simulator is a real ``websockets`` server that speaks Alpaca's stock stream protocol as
alpaca-py's ``StockDataStream`` expects it, written independently of streamfsm's own client
codec so that each checks the other. It serves ``ws://127.0.0.1:PORT/v2/{feed}``::

    async with Simulator(SimConfig(rate=100, seed=7)) as sim:
        url = sim.url("iex")          # hand this to StreamConfig(url=...) or url_override=
        await sim.drop()              # reset every connection
        await sim.wait_for_connections(2, authenticated=True)

    with SimulatorThread(SimConfig()) as sim:     # from synchronous code and tests
        sim.close_connections(1011, "maintenance")

    send_fault("ws://127.0.0.1:PORT", "mute", seconds=5)   # from another process

Modules: :mod:`~streamfsm.sim.config` (``SimConfig``), :mod:`~streamfsm.sim.server`
(``Simulator``), :mod:`~streamfsm.sim.thread` (``SimulatorThread``),
:mod:`~streamfsm.sim.session` (one connection; the protocol assumptions are listed there),
:mod:`~streamfsm.sim.faults` (the fault table), :mod:`~streamfsm.sim.feed` (the seeded random
walk), :mod:`~streamfsm.sim.wire` and :mod:`~streamfsm.sim.requests` (the wire format, pure),
:mod:`~streamfsm.sim.control` (the cross-process client), :mod:`~streamfsm.sim.command` (CLI).

Secrets: accepted secrets are kept as SHA-256 digests, and logs and snapshots show key
fingerprints only. Idle connections cost no CPU: every wait is on an event or a timer.
"""

from __future__ import annotations

from streamfsm.sim.config import ALPACA_REAP_DELAY, DEMO_KEY_ID, DEMO_SECRET, Replay, SimConfig
from streamfsm.sim.control import ControlError, query_stats, send_fault
from streamfsm.sim.faults import Fault, MalformedKind, RefuseMode, UnknownConnectionError
from streamfsm.sim.requests import SubscriptionSet
from streamfsm.sim.server import Simulator
from streamfsm.sim.stats import ConnectionInfo, SimStats
from streamfsm.sim.thread import SimulatorThread

__all__ = [
    "ALPACA_REAP_DELAY",
    "DEMO_KEY_ID",
    "DEMO_SECRET",
    "ConnectionInfo",
    "ControlError",
    "Fault",
    "MalformedKind",
    "RefuseMode",
    "Replay",
    "SimConfig",
    "SimStats",
    "Simulator",
    "SimulatorThread",
    "SubscriptionSet",
    "UnknownConnectionError",
    "query_stats",
    "send_fault",
]
