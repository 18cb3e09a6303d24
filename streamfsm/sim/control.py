"""A synchronous client for a simulator's ``/control`` socket, usable from any process.

    send_fault("ws://127.0.0.1:8765", "close", code=1011, reason="maintenance")
    query_stats("ws://127.0.0.1:8765/v2/iex")["auth_attempts"]

Any URL of the simulator works: only its scheme, host and port are used. Only loopback hosts
are accepted. Do not call these from the simulator's own event loop: they block.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
from websockets.sync.client import connect

from streamfsm.errors import ConfigurationError, LocalProtocolError
from streamfsm.sim.server import CONTROL_PATH

__all__ = ["ControlError", "control_url", "query_stats", "send_fault"]

#: A control round trip on loopback takes milliseconds; close handshakes of faults up to ~1 s.
CONTROL_TIMEOUT: Final = 5.0


class ControlError(LocalProtocolError):
    """The simulator refused a control command (unknown fault, bad parameter, unknown id)."""


def control_url(url: str) -> str:
    """The control socket URL of the simulator serving ``url``.

    Raises:
        ConfigurationError: when ``url`` is not a ``ws://`` URL of a loopback address.
    """
    parts = urlsplit(url)
    try:
        loopback = parts.hostname is not None and ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "ws" or not loopback or parts.port is None:
        raise ConfigurationError("url", "ws://<loopback address>:<port>", url)
    return f"ws://{parts.netloc}{CONTROL_PATH}"


def _command(url: str, message: dict[str, Any], timeout: float) -> Any:
    # No keepalive pings: a one-shot command needs none, and no keepalive thread outlives it.
    with connect(
        control_url(url),
        open_timeout=timeout,
        close_timeout=timeout,
        compression=None,
        ping_interval=None,
    ) as ws:
        ws.send(msgspec.json.encode(message).decode())
        reply = msgspec.json.decode(ws.recv(timeout))
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else reply
        raise ControlError(f"simulator refused the command: {error}")
    return reply.get("result")


def send_fault(url: str, fault: str, *, timeout: float = CONTROL_TIMEOUT, **params: Any) -> Any:
    """Inject ``fault`` with ``params`` into the simulator at ``url`` and wait for its reply.

    Args:
        url: any URL of the simulator (``ws://127.0.0.1:PORT``, ``.../v2/iex``).
        fault: a fault name (see :class:`streamfsm.sim.Fault`).
        timeout: seconds for connecting and for the reply.
        params: the fault's parameters, JSON-encodable.

    Returns:
        The ids of the connections acted on, or None for server-wide faults.

    Raises:
        ConfigurationError: for a URL that is not loopback ``ws://``.
        ControlError: when the simulator refused the command.
        OSError, TimeoutError, websockets.exceptions.WebSocketException: when the simulator
            cannot be reached or does not answer in time.
    """
    return _command(url, {"fault": fault, **params}, timeout)


def query_stats(url: str, *, timeout: float = CONTROL_TIMEOUT) -> dict[str, Any]:
    """The simulator's statistics as JSON (the fields of :class:`streamfsm.sim.SimStats`).

    Raises:
        The same errors as :func:`send_fault`.
    """
    result: dict[str, Any] = _command(url, {"query": "stats"}, timeout)
    return result
