"""A pricing service: the latest quote of each tracked symbol, readable from any thread.

``PricingService`` embeds one controller and keeps immutable snapshots with exact ``Decimal``
prices; ``quote(symbol)`` says whether a price may be used (``stale`` after an outage until fresh
data arrives, or when older than ``max_age``). Here a loop reads them every second, as a pricing
or risk thread would::

    python examples/pricing_service.py --url ws://127.0.0.1:8765/v2/iex --seconds 5
"""

from __future__ import annotations

import argparse
import time

from streamfsm import Credentials, StreamConfig
from streamfsm.pricing import PricingService

#: A price older than this is not used: the oldest price one would still quote from.
MAX_AGE_SECONDS = 2.0
#: Seconds between two reads of the snapshots.
READ_INTERVAL = 1.0
SYMBOLS = ("AAPL", "MSFT", "NVDA")


def main() -> int:
    """Track a few symbols and print their prices once a second until ``--seconds`` pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="endpoint instead of Alpaca's")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run")
    args = parser.parse_args()

    service = PricingService(
        Credentials.from_env(),
        StreamConfig(url=args.url),
        max_symbols=len(SYMBOLS),
        max_age=MAX_AGE_SECONDS,
        trades=False,
    )
    service.track(SYMBOLS, priority=1)
    deadline = time.monotonic() + args.seconds
    with service:  # start(); stop() on the way out
        while time.monotonic() < deadline:
            time.sleep(READ_INTERVAL)
            for symbol in SYMBOLS:
                snapshot = service.quote(symbol)
                if snapshot is None:
                    print(f"{symbol}: no quote yet", flush=True)
                elif snapshot.stale:
                    print(f"{symbol}: stale ({snapshot.stale_reason})", flush=True)
                else:
                    print(f"{symbol}: mid {snapshot.mid} spread {snapshot.spread}", flush=True)
    print(f"state at exit: {service.state.value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
