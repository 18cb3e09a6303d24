"""streamfsm inside an asyncio application: ``async with``, awaited handlers, the transitions.

The controller runs in the application's own event loop; handlers may be coroutine functions
(awaited, in order); ``transitions()`` yields every state change, for an application that
reacts to outages itself::

    python examples/async_use.py --url ws://127.0.0.1:8765/v2/iex --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from streamfsm import Credentials, StreamConfig, StreamController
from streamfsm.models import Quote


async def watch(controller: StreamController) -> None:
    """Print each transition: what an application would alert on."""
    async for record in controller.transitions():
        print(f"state {record.src} -> {record.dst} ({record.trigger}, {record.reason})", flush=True)


async def run(url: str | None, seconds: float) -> int:
    """Stream for ``seconds`` and print what arrived; 0 when quotes came."""
    received: list[Quote] = []

    async def on_quote(quote: Quote) -> None:
        received.append(quote)
        if len(received) % 50 == 1:
            print(f"quote {quote.symbol} {quote.bid_price} / {quote.ask_price}", flush=True)

    controller = StreamController(
        Credentials.from_env(),
        StreamConfig(url=url),
        on_quote=on_quote,
        models="fast",  # streamfsm's structs: same attribute names, several times cheaper
        symbols=["AAPL", "SPY"],
    )
    async with controller:
        watcher = asyncio.create_task(watch(controller))
        await asyncio.sleep(seconds)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    print(f"{len(received)} quotes; health {controller.health().state.value}")
    return 0 if received else 1


def main() -> int:
    """Parse the arguments and run the asyncio program."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="endpoint instead of Alpaca's")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run")
    args = parser.parse_args()
    return asyncio.run(run(args.url, args.seconds))


if __name__ == "__main__":
    raise SystemExit(main())
