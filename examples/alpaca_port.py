"""An alpaca-py ``StockDataStream`` program, ported to streamfsm.

The alpaca-py original::

    from alpaca.data.live import StockDataStream

    stream = StockDataStream(key_id, secret)
    stream.subscribe_quotes(on_quote, "AAPL", "MSFT")
    stream.subscribe_trades(on_trade, "AAPL")
    stream.run()

With streamfsm the handlers stay as they are (they receive alpaca-py's own ``Quote`` and
``Trade``); the connection's lifecycle becomes explicit and auditable, and a drop, a mute socket
or a 406 is recovered from instead of ending the program.

Run it against Alpaca (credentials from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``)::

    python examples/alpaca_port.py

or against the simulator (``streamfsm sim --port 8765`` in another terminal, and the demo key,
see the README)::

    python examples/alpaca_port.py --url ws://127.0.0.1:8765/v2/iex --seconds 10
"""

from __future__ import annotations

import argparse
import threading

from alpaca.data.models import Quote, Trade

from streamfsm import Credentials, State, StreamConfig, StreamController
from streamfsm.errors import StreamError

#: Seconds to wait for the first subscription before giving up.
CONNECT_TIMEOUT = 10.0


async def on_quote(quote: Quote) -> None:
    """Unchanged from the alpaca-py program."""
    print(f"quote {quote.symbol} {quote.bid_price} x {quote.ask_price}", flush=True)


async def on_trade(trade: Trade) -> None:
    """Unchanged from the alpaca-py program."""
    print(f"trade {trade.symbol} {trade.price} ({trade.size})", flush=True)


def main() -> int:
    """Stream quotes and trades until Ctrl-C (or ``--seconds``); 1 on a fatal error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="endpoint instead of Alpaca's")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args()

    fatal = threading.Event()

    def on_error(error: StreamError) -> None:
        print(f"error: {type(error).__name__}: {error}", flush=True)
        if error.fatal:
            fatal.set()

    controller = StreamController(
        Credentials.from_env(),
        StreamConfig(url=args.url),
        on_quote=on_quote,
        on_trade=on_trade,
        on_error=on_error,
    )
    controller.subscribe(quotes=["AAPL", "MSFT"], trades=["AAPL"])
    with controller:  # start(); close() on the way out, also on Ctrl-C
        if not controller.wait_for(State.SUBSCRIBED, CONNECT_TIMEOUT):
            print(f"not subscribed after {CONNECT_TIMEOUT:g} s: {controller.last_error}")
        try:
            fatal.wait(args.seconds)
        except KeyboardInterrupt:
            print("stopping")
    print(f"health: {controller.health().messages}")
    return 1 if fatal.is_set() else 0


if __name__ == "__main__":
    raise SystemExit(main())
