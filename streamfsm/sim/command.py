"""``streamfsm sim``: serve the simulator until interrupted, or control a running one.

    streamfsm sim --port 8765 --rate 200 --batch 10 --seed 7
    streamfsm sim fault --url ws://127.0.0.1:8765 close code=1011 reason=maintenance
    streamfsm sim stats --url ws://127.0.0.1:8765

Serving prints the iex URL as its first line (scripts may read it), then the other URLs, and
exits 0 on SIGINT or SIGTERM after closing every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any, Final

from websockets.exceptions import WebSocketException

from streamfsm.config import Feed
from streamfsm.errors import ConfigurationError
from streamfsm.logs import configure_logging
from streamfsm.sim.config import DEMO_KEY_ID, DEMO_SECRET, SimConfig
from streamfsm.sim.control import ControlError, query_stats, send_fault
from streamfsm.sim.faults import Fault
from streamfsm.sim.server import Simulator

__all__ = ["add_parser", "run"]

#: Exit statuses: success, a refused or failed control command, invalid arguments.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
#: --log-level choices.
_LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: The word that asks for an unthrottled feed instead of a number.
MAX_RATE: Final = "max"

_EPILOG = f"""\
serving:
  streamfsm sim --port 8765 --rate 200 --batch 10 --seed 7
  (accepts key id {DEMO_KEY_ID} with secret {DEMO_SECRET}, or --credentials KEY_ID:SECRET)

controlling a running simulator:
  streamfsm sim fault --url ws://127.0.0.1:8765 drop
  streamfsm sim fault --url ws://127.0.0.1:8765 close code=1011 reason=maintenance
  streamfsm sim fault --url ws://127.0.0.1:8765 mute seconds=5 connection_id=1
  streamfsm sim fault --url ws://127.0.0.1:8765 refuse seconds=10 mode=reset
  streamfsm sim fault --url ws://127.0.0.1:8765 fail_auth count=3 code=406
  streamfsm sim fault --url ws://127.0.0.1:8765 malformed kind=truncated
  streamfsm sim fault --url ws://127.0.0.1:8765 error code=407
  streamfsm sim fault --url ws://127.0.0.1:8765 rate rate=0
  streamfsm sim stats --url ws://127.0.0.1:8765

faults: {", ".join(fault.value for fault in Fault)}
parameters are NAME=VALUE; values are read as JSON when they parse (1011, 0.5, null), else text.
"""


def _rate(text: str) -> float | None:
    if text == MAX_RATE:
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or {MAX_RATE!r}") from None


def _limit(text: str) -> int | None:
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer or 'none'") from None


def _credential(text: str) -> tuple[str, str]:
    key_id, sep, secret = text.partition(":")
    if not sep or not key_id.strip() or not secret.strip():
        # Never echo the text: it holds a secret.
        raise argparse.ArgumentTypeError("expected KEY_ID:SECRET with both parts non-blank")
    return key_id, secret


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name, value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sim`` (with its ``fault`` and ``stats`` actions) on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim",
        help="serve the Alpaca-protocol simulator on loopback, or control a running one",
        description="Without ACTION: serve an Alpaca market-data stream simulator on loopback "
        "until Ctrl-C (the first line printed is its URL). With ACTION: control a running one.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--rate",
        type=_rate,
        default=SimConfig().rate,
        help="data messages per second per connection; 0 quiet; 'max' as fast as read "
        "(default %(default)s)",
    )
    parser.add_argument("--batch", type=int, default=1, help="messages per frame (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random-walk seed (default 0)")
    parser.add_argument(
        "--symbol-limit",
        type=_limit,
        default=SimConfig().symbol_limit,
        help="trade+quote subscriptions per connection; 'none' for no limit (default %(default)s)",
    )
    parser.add_argument(
        "--feeds",
        nargs="+",
        default=sorted(feed.value for feed in SimConfig().entitled_feeds),
        choices=[feed.value for feed in Feed],
        help="feeds the demo key is entitled to (default: all but sip)",
    )
    parser.add_argument(
        "--auth-timeout",
        type=float,
        default=SimConfig().auth_timeout,
        help="seconds to authenticate before 404 (default %(default)s, as Alpaca)",
    )
    parser.add_argument(
        "--reap-delay",
        type=float,
        default=0.0,
        help="seconds a closed connection keeps its key's slot (Alpaca: about 90)",
    )
    parser.add_argument("--no-compression", action="store_true", help="disable permessage-deflate")
    parser.add_argument(
        "--log-level",
        choices=list(_LOG_LEVELS),
        default="info",
        help="simulator events shown on standard error (default: info)",
    )
    parser.add_argument(
        "--credentials",
        type=_credential,
        action="append",
        metavar="KEY_ID:SECRET",
        help="a key the simulator accepts instead of the demo key; repeat for several "
        "(the secret is visible to other local users in the process list: test keys only)",
    )
    actions = parser.add_subparsers(dest="sim_action", metavar="ACTION", required=False)
    fault = actions.add_parser("fault", help="inject a fault into a running simulator")
    fault.add_argument("--url", required=True, help="any ws:// URL of the simulator")
    fault.add_argument("fault", choices=[item.value for item in Fault])
    fault.add_argument("params", nargs="*", type=_param, metavar="NAME=VALUE")
    stats = actions.add_parser("stats", help="print a running simulator's statistics as JSON")
    stats.add_argument("--url", required=True, help="any ws:// URL of the simulator")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``streamfsm sim``; returns the exit status."""
    action = getattr(args, "sim_action", None)
    if action in ("fault", "stats"):
        return _control(args, action)
    try:
        config = SimConfig(
            host=args.host,
            port=args.port,
            rate=args.rate,
            batch=args.batch,
            seed=args.seed,
            symbol_limit=args.symbol_limit,
            entitled_feeds=args.feeds,
            auth_timeout=args.auth_timeout,
            reap_delay=args.reap_delay,
            compression=not args.no_compression,
            credentials=dict(args.credentials or [(DEMO_KEY_ID, DEMO_SECRET)]),
        )
    except ConfigurationError as exc:
        sys.stderr.write(f"streamfsm sim: {exc}\n")
        return EXIT_USAGE
    configure_logging(_LOG_LEVELS[args.log_level])  # to standard error; stdout starts with the URL
    return asyncio.run(_serve(config))


async def _serve(config: SimConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        async with Simulator(config) as sim:
            sys.stdout.write(f"{sim.url(Feed.IEX)}\n")
            for feed in (Feed.SIP, Feed.DELAYED_SIP, Feed.TEST):
                sys.stdout.write(f"  {feed.value}: {sim.url(feed)}\n")
            sys.stdout.write(f"  control: {sim.control_url}\n")
            for key_id in config.credentials:
                sys.stdout.write(f"  key id: {key_id}\n")
            sys.stdout.flush()
            await stop.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
    return EXIT_OK


def _control(args: argparse.Namespace, action: str) -> int:
    try:
        if action == "stats":
            result: Any = query_stats(args.url)
        else:
            result = send_fault(args.url, args.fault, **dict(args.params))
    except (ConfigurationError, ControlError) as exc:
        sys.stderr.write(f"streamfsm sim {action}: {exc}\n")
        return EXIT_FAILED
    except (OSError, TimeoutError, WebSocketException) as exc:
        sys.stderr.write(f"streamfsm sim {action}: cannot reach the simulator: {exc}\n")
        return EXIT_FAILED
    sys.stdout.write(json.dumps(result, indent=2 if action == "stats" else None) + "\n")
    return EXIT_OK
