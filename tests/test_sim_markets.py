"""The simulator serves every Alpaca market: paths, encodings, channels, symbols, errors, limits."""

from __future__ import annotations

from typing import Any

import pytest
from simclient import TIMEOUT, client, closed_code, error, run

from streamfsm.sim import SimConfig, Simulator

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

CALL = "AAPL250620C00200000"
PUT = "SPY250620P00500000"


def ack(**channels: list[str]) -> dict[str, Any]:
    """An ack of the crypto stream: every crypto channel, symbols sorted."""
    message: dict[str, Any] = {"T": "subscription"}
    for name in ("trades", "quotes", "bars", "updatedBars", "dailyBars", "orderbooks"):
        message[name] = sorted(channels.get(name, []))
    return message


def test_crypto_acks_list_the_crypto_channels_and_books_start_with_a_snapshot() -> None:
    """The crypto ack has orderbooks and no stock channels; the first book has ``r`` set."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=200)) as sim, client(sim.url("us")) as session:
            assert await session.subscribe(orderbooks=["BTC/USD"]) == ack(orderbooks=["BTC/USD"])
            books = await session.recv_data(4)
            assert books[0]["r"] is True
            assert len(books[0]["b"]) > 1
            assert all("r" not in book for book in books[1:])
            assert all(book["S"] == "BTC/USD" for book in books)

    run(main)


def test_resubscribing_a_book_sends_a_fresh_snapshot() -> None:
    """After unsubscribing and subscribing a book again, its next message is a snapshot."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=200)) as sim, client(sim.url("us")) as session:
            await session.subscribe(orderbooks=["ETH/USD"])
            await session.recv_data(2)
            assert await session.unsubscribe(orderbooks=["ETH/USD"]) == ack()
            await session.subscribe(orderbooks=["ETH/USD"])
            (first, *_) = await session.recv_data(1)
            assert first["r"] is True

    run(main)


def test_each_market_refuses_the_channels_of_the_others_with_410() -> None:
    """orderbooks on stocks, lulds and news on crypto, bars on options: 410, session goes on."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            cases = [("iex", "orderbooks", "AAPL"), ("us", "lulds", "BTC/USD"), ("us", "news", "*")]
            for feed, channel, symbol in cases:
                async with client(sim.url(feed)) as session:
                    assert await session.subscribe(**{channel: [symbol]}) == error(410)
            async with client(sim.url("indicative"), msgpack_frames=True) as session:
                assert await session.subscribe(bars=[CALL]) == error(410)
                assert (await session.subscribe(trades=[CALL]))["trades"] == [CALL]

    run(main)


def test_symbols_outside_the_market_grammar_get_400() -> None:
    """A ticker on crypto, a ticker on options and a pair on stocks are invalid syntax."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            for feed, symbol in (("us", "AAPL"), ("iex", "BTC USD")):
                async with client(sim.url(feed)) as session:
                    assert await session.subscribe(quotes=[symbol]) == error(400)
            async with client(sim.url("indicative"), msgpack_frames=True) as session:
                assert await session.subscribe(quotes=["AAPL"]) == error(400)

    run(main)


def test_option_quotes_refuse_the_wildcard_with_413_but_trades_take_it() -> None:
    """``*`` for option quotes gets 413 (too many of them); option trades accept ``*``."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(rate=200)) as sim,
            client(sim.url("indicative"), msgpack_frames=True) as session,
        ):
            assert await session.subscribe(quotes=["*"]) == error(413)
            reply = await session.subscribe(trades=["*"])
            assert reply == {"T": "subscription", "trades": ["*"], "quotes": []}
            trades = await session.recv_data(6)
            assert len({trade["S"] for trade in trades}) > 1
            assert all(isinstance(trade["c"], str) for trade in trades)

    run(main)


def test_a_json_client_of_the_option_stream_gets_412_and_is_closed() -> None:
    """The option stream speaks msgpack only: a JSON client gets 412 after the welcome."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim, client(sim.url("opra"), auth=False) as session:
            assert await session.recv_control() == error(412)
            assert await closed_code(session) == 1008

    run(main)


def test_option_symbol_limit_counts_quotes_only() -> None:
    """On options only quotes count against the limit: two quotes pass, a third gets 405."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(symbol_limit=2)) as sim,
            client(sim.url("indicative"), msgpack_frames=True) as session,
        ):
            await session.subscribe(quotes=[CALL, PUT], trades=["*"])
            assert await session.subscribe(quotes=["SPY250620C00550000"]) == error(405)
            (info,) = sim.connections()
            assert info.subscriptions.quotes == {CALL, PUT}

    run(main)


def test_the_connection_limit_holds_per_market() -> None:
    """One key holds a stock and a crypto connection at once; a second crypto one gets 406."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            async with (
                client(sim.url("iex")),
                client(sim.url("us")),
                client(sim.url("eu-1"), auth=False) as third,
            ):
                assert await third.auth() == error(406)
            assert sim.stats().auth_successes == 2

    run(main)


def test_news_is_served_for_symbols_and_for_everything() -> None:
    """The news ack lists only news; each article names its symbol and carries ``_seq``."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=200)) as sim, client(sim.url("news")) as session:
            assert await session.subscribe(news=["AAPL"]) == {"T": "subscription", "news": ["AAPL"]}
            articles = await session.recv_data(3)
            assert all(article["symbols"] == ["AAPL"] for article in articles)
            assert [article["_seq"] for article in articles] == sorted(
                article["_seq"] for article in articles
            )
            assert {"headline", "created_at", "updated_at", "id"} <= set(articles[0])

    run(main)


def test_corrections_and_cancels_follow_trades_when_asked() -> None:
    """With ``corrections_every``, stock trades are followed by corrections and cancel errors."""

    async def main() -> None:
        async with (
            Simulator(SimConfig(rate=400, corrections_every=2)) as sim,
            client(sim.url("iex")) as session,
        ):
            await session.subscribe(trades=["AAPL"])
            messages = await session.recv_data(12)
            kinds = {message["T"] for message in messages}
            assert kinds == {"t", "c", "x"}
            correction = next(message for message in messages if message["T"] == "c")
            assert correction["cs"] == 2 * correction["os"]

    run(main)


def test_stock_extras_flow_on_their_channels() -> None:
    """Updated bars, daily bars, statuses and LULD bands are served with their schemas."""

    async def main() -> None:
        async with Simulator(SimConfig(rate=400)) as sim, client(sim.url("iex")) as session:
            await session.subscribe(
                updatedBars=["AAPL"], dailyBars=["AAPL"], statuses=["AAPL"], lulds=["AAPL"]
            )
            messages = await session.recv_data(8)
            assert {message["T"] for message in messages} == {"u", "d", "s", "l"}
            luld = next(message for message in messages if message["T"] == "l")
            assert luld["d"] < luld["u"]

    run(main)


def test_boats_and_overnight_live_under_v1beta1() -> None:
    """The BOATS and overnight feeds are served at /v1beta1/{feed}; they need a paid plan."""

    async def main() -> None:
        async with Simulator(SimConfig()) as sim:
            assert sim.url("boats").endswith("/v1beta1/boats")
            async with client(sim.url("overnight"), auth=False) as session:
                assert await session.auth() == error(409)
            assert TIMEOUT > 0

    run(main)
