"""streamfsm: an explicit, audited state machine for Alpaca's real-time market-data WebSocket."""

from __future__ import annotations

from streamfsm import errors
from streamfsm._core.machine import State
from streamfsm.cluster.config import ClusterConfig
from streamfsm.config import (
    BackoffPolicy,
    BreakerPolicy,
    Encoding,
    Feed,
    Jitter,
    ModelMode,
    OverflowPolicy,
    StalePolicy,
    StreamConfig,
)
from streamfsm.controller import Health, StreamController
from streamfsm.credentials import Credentials

__all__ = [
    "BackoffPolicy",
    "BreakerPolicy",
    "ClusterConfig",
    "Credentials",
    "Encoding",
    "Feed",
    "Health",
    "Jitter",
    "ModelMode",
    "OverflowPolicy",
    "StalePolicy",
    "State",
    "StreamConfig",
    "StreamController",
    "__version__",
    "errors",
]

#: The package version; pyproject.toml reads it from here (hatch's version source).
__version__ = "0.2.0.dev0"
