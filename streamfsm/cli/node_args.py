"""The command line of ``streamfsm node``: its flags, their checks and their defaults.

:func:`add_parser` registers ``node`` on the ``streamfsm`` command. The flags ``run`` has
(``--symbols``, ``--feed``, ``--url``, ``--log-level``, ``--log-json``, ``--metrics-port``,
``--metrics-host``) mean the same here; the cluster's own are ``--nats``, ``--name``,
``--member``, ``--lease-ttl``, ``--summary-every`` and ``--stdin-commands``. Values are checked
while parsing, so a bad one ends with the usage line and exit status 2.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from streamfsm.cli.live_args import FEEDS, add_operations_arguments, symbol_list
from streamfsm.cluster.config import ClusterConfig
from streamfsm.config import Feed

__all__ = ["DEFAULT_SUMMARY_EVERY", "add_parser"]

#: Seconds between two ``figures`` lines: often enough to watch a failover, few enough to read.
DEFAULT_SUMMARY_EVERY: Final = 1.0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _summary_seconds(text: str) -> float:
    """Seconds between figures lines; 0 turns them off."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (0: no figures), got {text!r}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``node`` on the ``streamfsm`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "node",
        help="run one member of a cluster that shares one Alpaca connection over NATS",
        description=(
            "Join a cluster on NATS: the members with the same --name, key and feed share one "
            "Alpaca connection, held by one of them and relayed on the bus. Prints one line per "
            "event (joined, lease, role, state, data, gap, figures, stopped) until SIGINT or "
            "SIGTERM, then closes Alpaca first, releases the lease and exits 0. Credentials come "
            "from APCA_API_KEY_ID and APCA_API_SECRET_KEY."
        ),
    )
    defaults = ClusterConfig()
    parser.add_argument(
        "--nats", required=True, metavar="URL", help="the NATS server, e.g. nats://127.0.0.1:4222"
    )
    parser.add_argument(
        "--name", required=True, help="the cluster's name (letters, digits, '-' and '_')"
    )
    parser.add_argument(
        "--symbols", type=symbol_list, required=True, help="quotes of these, e.g. AAPL,MSFT"
    )
    parser.add_argument(
        "--member", default=None, help="this member's name in the cluster (default: generated)"
    )
    parser.add_argument(
        "--lease-ttl",
        type=_positive_seconds,
        default=defaults.lease_ttl,
        metavar="SECONDS",
        help="the lease's time to live; every member of a cluster must use the same "
        "(default %(default)s)",
    )
    parser.add_argument("--feed", choices=FEEDS, default=Feed.IEX.value, help="default: iex")
    parser.add_argument(
        "--url",
        default=None,
        help="endpoint instead of Alpaca's, e.g. the simulator's ws://127.0.0.1:8765/v2/iex "
        "(ws:// only to loopback)",
    )
    parser.add_argument(
        "--summary-every",
        type=_summary_seconds,
        default=DEFAULT_SUMMARY_EVERY,
        metavar="SECONDS",
        help="seconds between figures lines (default %(default)s; 0: none)",
    )
    parser.add_argument(
        "--stdin-commands",
        action="store_true",
        help="read 'subscribe AAPL,MSFT' and 'unsubscribe AAPL' lines from standard input and "
        "change this member's quotes accordingly (for scripts)",
    )
    add_operations_arguments(parser)
    return parser
