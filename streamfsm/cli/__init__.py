"""The ``streamfsm`` command: ``demo``, ``demo-cluster``, ``run``, ``node``, ``sim``, ``diagram``,
and ``audit``.

Each subcommand lives in its own module, which provides ``add_parser(subparsers)`` and
``run(args) -> int``; this module only wires them together and imports them lazily.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Final

import streamfsm

__all__ = ["main"]

#: Subcommand name -> the module that implements it.
COMMANDS: Final = {
    "demo": "streamfsm.cli.demo.app",
    "run": "streamfsm.cli.live",
    "node": "streamfsm.cli.node",
    "demo-cluster": "streamfsm.cli.cluster_demo.app",
    "sim": "streamfsm.sim.command",
    "diagram": "streamfsm.audit.diagram",
    "audit": "streamfsm.audit.verify",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="streamfsm",
        description="Keep an Alpaca market-data WebSocket alive, correct and auditable.",
    )
    parser.add_argument("--version", action="version", version=f"streamfsm {streamfsm.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    status: int = module.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
