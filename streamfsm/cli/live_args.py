"""The command line of ``streamfsm run``: its flags, their checks and their defaults.

:func:`add_parser` registers ``run`` on the ``streamfsm`` command; each flag's value is checked
while parsing, so :mod:`streamfsm.cli.live` only ever sees symbols, seconds and ports that make
sense, and argparse reports a bad one with the usage line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from streamfsm._validate import require_seconds
from streamfsm.config import Feed
from streamfsm.credentials import KEY_ID_VARIABLE, SECRET_VARIABLE, Credentials
from streamfsm.errors import ConfigurationError, MissingCredentialsError

__all__ = ["FEEDS", "LOG_LEVELS", "METRICS_HOST", "add_parser", "port_number", "symbol_list"]

#: Metrics stay on this host unless the operator binds them elsewhere.
METRICS_HOST: Final = "127.0.0.1"
MAX_PORT: Final = 65535
#: Feeds a command-line user picks from (``test`` and ``delayed_sip`` need no flag here).
FEEDS: Final = (Feed.IEX.value, Feed.SIP.value)
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _seconds(text: str) -> float:
    try:
        return require_seconds("--max-age", float(text))
    except (ValueError, ConfigurationError) as exc:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from exc


def symbol_list(text: str) -> tuple[str, ...]:
    """Comma-separated symbols, upper-cased, duplicates dropped, order kept."""
    symbols = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",")))
    if not symbols or not all(symbols):
        raise argparse.ArgumentTypeError(f"expected comma-separated symbols, got {text!r}")
    return symbols


def port_number(text: str) -> int:
    """A TCP port number, 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"expected a port number 0..{MAX_PORT}, got {text!r}")
    return port


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on the ``streamfsm`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="stream live quotes from Alpaca (needs APCA_API_KEY_ID and APCA_API_SECRET_KEY)",
        description=(
            "Stream live quotes from Alpaca for a few symbols until Ctrl-C, with the "
            "connection's state; credentials come from APCA_API_KEY_ID and APCA_API_SECRET_KEY."
        ),
    )
    parser.add_argument(
        "--symbols", type=symbol_list, required=True, help="comma-separated, e.g. AAPL,MSFT"
    )
    parser.add_argument("--feed", choices=FEEDS, default=Feed.IEX.value, help="default: iex")
    parser.add_argument(
        "--journal", type=Path, default=None, help="append every transition to this JSON Lines file"
    )
    parser.add_argument(
        "--max-age",
        type=_seconds,
        default=None,
        help="a quote older than this many seconds is shown stale",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain lines even when the output is a terminal"
    )
    parser.add_argument(
        "--url",
        default=None,
        help="endpoint instead of Alpaca's, e.g. the simulator's ws://127.0.0.1:8765/v2/iex "
        "(ws:// only to loopback)",
    )
    add_operations_arguments(parser)
    return parser


def add_operations_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every long-running command shares: log level and format, the metrics port."""
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="streamfsm events shown on standard error (default: warning; debug shows each "
        "attempt's cause)",
    )
    parser.add_argument(
        "--log-json", action="store_true", help="events as JSON lines instead of text"
    )
    parser.add_argument(
        "--metrics-port",
        type=port_number,
        default=None,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on this port (0: any free port; needs the "
        "metrics extra)",
    )
    parser.add_argument(
        "--metrics-host",
        default=METRICS_HOST,
        metavar="HOST",
        help=f"address for --metrics-port (default {METRICS_HOST}: this host only)",
    )


def environment_credentials(prog: str) -> Credentials | None:
    """The credentials in the environment, or None after a one-line usage error on stderr
    (a variable missing or blank, or a key id or secret that could never authenticate)."""
    try:
        return Credentials.from_env()
    except MissingCredentialsError as exc:
        sys.stderr.write(
            f"{prog}: set {KEY_ID_VARIABLE} and {SECRET_VARIABLE} to your Alpaca key id and "
            f"secret ({exc.variable} is missing or blank)\n"
        )
    except ConfigurationError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
    return None
