"""The codec on every market: crypto, option and news messages, the stock extras, and raw mode."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from typing import Any

import msgpack
import msgspec
import pytest
from alpaca.data.live.websocket import DataStream

from streamfsm._core.protocol import FrameDecoder, SubscriptionAck, encode_subscribe
from streamfsm._core.subscriptions import Subscription
from streamfsm.config import Encoding
from streamfsm.errors import RemoteProtocolError
from streamfsm.models import (
    Luld,
    News,
    Orderbook,
    OrderbookQuote,
    Quote,
    Trade,
    TradeCancel,
    TradeCorrection,
    to_alpaca,
)

WHEN = dt.datetime(2024, 3, 11, 13, 35, 35, 133122, tzinfo=UTC)
#: Whole microseconds: msgspec rounds nanoseconds where alpaca-py truncates (documented).
STAMP = msgpack.Timestamp(1710164135, 133122000)

CRYPTO_TRADE = {"T": "t", "S": "BTC/USD", "p": 67000.5, "s": 0.0125, "t": WHEN, "i": 9, "tks": "B"}
CRYPTO_QUOTE = {
    "T": "q",
    "S": "ETH/USD",
    "bp": 3500.1,
    "bs": 1.5,
    "ap": 3500.9,
    "as": 0.25,
    "t": WHEN,
}
OPTION_QUOTE = {
    "T": "q",
    "S": "SPXW240327P04925000",
    "t": WHEN,
    "bx": "C",
    "bp": 9.46,
    "bs": 53,
    "ax": "C",
    "ap": 9.66,
    "as": 38,
    "c": "A",
}
OPTION_TRADE = {
    "T": "t",
    "S": "AAPL240315C00172500",
    "t": WHEN,
    "p": 2.84,
    "s": 1,
    "x": "N",
    "c": "S",
}
BOOK = {
    "T": "o",
    "S": "BTC/USD",
    "t": WHEN,
    "b": [{"p": 66990.0, "s": 0.5}, {"p": 66980.0, "s": 1.25}],
    "a": [{"p": 67010.0, "s": 0.75}],
    "r": True,
}
NEWS = {
    "T": "n",
    "id": 24918784,
    "headline": "Corsair Reports Purchase Of Majority Ownership",
    "summary": "Corsair Gaming, Inc. today announced...",
    "author": "Benzinga Newsdesk",
    "created_at": WHEN,
    "updated_at": WHEN,
    "url": "https://www.benzinga.com/m-a/22/01/24918784/corsair",
    "content": "<p>Corsair Gaming...</p>",
    "symbols": ["CRSR"],
    "source": "benzinga",
}
LULD = {"T": "l", "S": "AAPL", "u": 190.51, "d": 172.37, "i": "B", "t": WHEN, "z": "C"}
CORRECTION = {
    "T": "c",
    "S": "EEM",
    "x": "M",
    "oi": 52983525033527,
    "op": 39.1582,
    "os": 440000,
    "oc": [" ", "7", "V"],
    "ci": 52983525034326,
    "cp": 39.1809,
    "cs": 440000,
    "cc": [" ", "7", "V"],
    "z": "B",
    "t": WHEN,
}
CANCEL = {
    "T": "x",
    "S": "AAPL",
    "i": 52983525028174,
    "x": "V",
    "p": 150.5,
    "s": 100,
    "a": "C",
    "z": "C",
    "t": WHEN,
}

ENCODINGS = [Encoding.MSGPACK, Encoding.JSON]


def frame_of(messages: list[dict[str, Any]], encoding: Encoding) -> bytes | str:
    if encoding is Encoding.MSGPACK:
        return msgspec.msgpack.encode(messages)
    return msgspec.json.encode(messages).decode()


@pytest.fixture(params=ENCODINGS, ids=str)
def encoding(request: pytest.FixtureRequest) -> Encoding:
    value: Encoding = request.param
    return value


def test_crypto_trades_keep_fractional_sizes_and_the_taker_side(encoding: Encoding) -> None:
    """A crypto trade decodes to Trade with a float size, no exchange and ``taker_side``."""
    (trade,) = FrameDecoder(encoding).decode(frame_of([CRYPTO_TRADE], encoding)).data
    assert trade == Trade(
        symbol="BTC/USD", timestamp=WHEN, price=67000.5, size=0.0125, id=9, taker_side="B"
    )


def test_crypto_quotes_have_no_exchanges(encoding: Encoding) -> None:
    """A crypto quote decodes with None exchanges and fractional sizes."""
    (quote,) = FrameDecoder(encoding).decode(frame_of([CRYPTO_QUOTE], encoding)).data
    assert isinstance(quote, Quote)
    assert (quote.bid_exchange, quote.bid_size, quote.ask_size) == (None, 1.5, 0.25)


def test_option_messages_carry_one_condition_code() -> None:
    """Option quotes and trades (msgpack only) decode with ``conditions`` a string."""
    decoded = FrameDecoder(Encoding.MSGPACK).decode(
        frame_of([OPTION_QUOTE, OPTION_TRADE], Encoding.MSGPACK)
    )
    quote, trade = decoded.data
    assert (quote.conditions, trade.conditions) == ("A", "S")
    assert (quote.bid_size, trade.size) == (53, 1)


def test_order_books_keep_levels_and_the_reset_flag(encoding: Encoding) -> None:
    """An order book decodes to Orderbook with OrderbookQuote levels; ``reset`` defaults False."""
    update = {**BOOK, "r": False}
    del update["r"]
    snapshot, change = FrameDecoder(encoding).decode(frame_of([BOOK, update], encoding)).data
    assert isinstance(snapshot, Orderbook)
    assert snapshot.reset is True
    assert change.reset is False
    assert snapshot.bids == [
        OrderbookQuote(price=66990.0, size=0.5),
        OrderbookQuote(price=66980.0, size=1.25),
    ]


def test_every_other_message_type_decodes_in_frame_order(encoding: Encoding) -> None:
    """News, LULD bands, corrections and cancel errors are delivered, in frame order."""
    decoded = FrameDecoder(encoding).decode(frame_of([NEWS, LULD, CORRECTION, CANCEL], encoding))
    assert [type(m) for m in decoded.data] == [News, Luld, TradeCorrection, TradeCancel]
    assert decoded.skipped == 0
    news = decoded.data[0]
    assert (news.id, news.symbols, news.created_at) == (24918784, ["CRSR"], WHEN)


@pytest.mark.parametrize("wire", [CORRECTION, CANCEL, BOOK, NEWS, CRYPTO_TRADE, OPTION_QUOTE, LULD])
def test_to_alpaca_equals_what_alpaca_py_builds(wire: dict[str, Any]) -> None:
    """For every message type, ``to_alpaca`` equals alpaca-py's own ``_cast`` of the message."""
    frame = msgpack.packb([{**wire, "t": STAMP} if "t" in wire else _news_stamped(wire)])
    (fast,) = FrameDecoder(Encoding.MSGPACK).decode(frame).data
    stream = DataStream("wss://unused.invalid", "key", "secret")
    expected = stream._cast(msgpack.unpackb(frame)[0])
    got = to_alpaca(fast)
    if isinstance(expected, dict):
        assert got == {**expected, "t": WHEN}
    else:
        assert type(got) is type(expected)
        assert got.model_dump() == expected.model_dump()


def _news_stamped(wire: dict[str, Any]) -> dict[str, Any]:
    return {**wire, "created_at": STAMP, "updated_at": STAMP}


# ---------------------------------------------------------------- raw mode


def test_raw_mode_hands_out_what_alpaca_py_raw_data_does() -> None:
    """Raw dicts equal ``msgpack.unpackb``'s: msgpack Timestamps, integer sizes, every key."""
    messages = [{**CANCEL, "t": STAMP}, {**CRYPTO_TRADE, "t": STAMP}, _news_stamped(NEWS)]
    frame = msgpack.packb(messages)
    decoded = FrameDecoder(Encoding.MSGPACK, raw=True).decode(frame)
    assert decoded.data == msgpack.unpackb(frame)
    assert decoded.data[0]["t"] == STAMP
    assert type(decoded.data[0]["s"]) is int
    assert decoded.control == []


def test_raw_mode_still_reads_control_frames(encoding: Encoding) -> None:
    """In raw mode an ack still becomes a SubscriptionAck, so the lifecycle is unchanged."""
    ack = {"T": "subscription", "trades": ["BTC/USD"], "orderbooks": ["BTC/USD"], "quotes": []}
    decoded = FrameDecoder(encoding, raw=True).decode(frame_of([ack], encoding))
    assert decoded.control == [
        SubscriptionAck(Subscription(trades={"BTC/USD"}, orderbooks={"BTC/USD"}))
    ]
    assert decoded.data == []


def test_raw_mode_skips_unknown_and_symbol_less_messages() -> None:
    """Unknown tags and market data without a symbol (news aside) are skipped and counted."""
    frame = msgpack.packb([{"T": "zz"}, {"T": "q"}, {**CRYPTO_QUOTE, "t": STAMP}, 7])
    decoded = FrameDecoder(Encoding.MSGPACK, raw=True).decode(frame)
    assert [m["S"] for m in decoded.data] == ["ETH/USD"]
    assert decoded.skipped == 3


@pytest.mark.parametrize("frame", [b"\xc1garbage", msgspec.msgpack.encode({"T": "q"}), b"\x92\x01"])
def test_raw_mode_refuses_what_is_not_an_array(frame: bytes) -> None:
    """Garbage, a bare object or a truncated array is a RemoteProtocolError in raw mode too."""
    with pytest.raises(RemoteProtocolError):
        FrameDecoder(Encoding.MSGPACK, raw=True).decode(frame)


def test_subscribe_names_channels_as_the_wire_does() -> None:
    """updated_bars and daily_bars go out as updatedBars and dailyBars, the others as named."""
    subscription = Subscription(
        updated_bars={"AAPL"}, daily_bars={"SPY"}, orderbooks={"BTC/USD"}, news={"*"}
    )
    (fragment,) = encode_subscribe(subscription, Encoding.JSON)
    assert msgspec.json.decode(fragment) == {
        "action": "subscribe",
        "updatedBars": ["AAPL"],
        "dailyBars": ["SPY"],
        "orderbooks": ["BTC/USD"],
        "news": ["*"],
    }
