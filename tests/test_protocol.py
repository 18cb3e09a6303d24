"""The sans-I/O Alpaca wire protocol: frames in, events out; messages in, frames out."""

from __future__ import annotations

import datetime as dt
from types import ModuleType
from typing import Any, cast

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import UTC, market_data

from streamfsm import models
from streamfsm._core import decoder, events, protocol
from streamfsm._core.protocol import (
    Authenticated,
    Connected,
    DecodedFrame,
    FrameDecoder,
    ServerErrorEvent,
    SubscriptionAck,
    auth_headers,
    classify,
    content_type,
    encode_auth,
    encode_subscribe,
    encode_unsubscribe,
    is_fatal,
)
from streamfsm._core.subscriptions import Subscription
from streamfsm.config import MAX_SUBSCRIBE_FRAGMENT, Encoding
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    SERVER_ERRORS,
    AuthenticationError,
    ConnectionLimitError,
    InvalidSymbolError,
    LocalProtocolError,
    RemoteProtocolError,
    ServerError,
    SymbolLimitError,
)
from streamfsm.models import (
    Bar,
    DailyBar,
    MarketData,
    Quote,
    Trade,
    TradingStatus,
    UpdatedBar,
    convert,
    structs,
)

ENCODINGS = [Encoding.MSGPACK, Encoding.JSON]
KEY_ID = "PKTEST00000000001234"
SECRET = "sEcReT-0123456789-do-not-leak"
WHEN = dt.datetime(2024, 7, 24, 7, 56, 53, 639714, tzinfo=UTC)
OTHER_TAGS = ["l", "c", "x", "o", "n"]


def quote(symbol: str = "AAPL", seq: int = 0) -> dict[str, Any]:
    """A quote as the server sends it (before encoding)."""
    return {
        "T": "q",
        "S": symbol,
        "bx": "O",
        "bp": 133.85,
        "bs": 4,
        "ax": "R",
        "ap": 135.77,
        "as": 5,
        "c": ["R"],
        "z": "A",
        "t": WHEN,
        "_seq": seq,
    }


def encode(messages: Any, encoding: Encoding) -> bytes | str:
    """Encode like the server: msgpack bytes (timestamps as msgpack Timestamps) or JSON text."""
    if encoding is Encoding.MSGPACK:
        return msgspec.msgpack.encode(messages)
    return msgspec.json.encode(messages).decode()


def decode(messages: Any, encoding: Encoding) -> DecodedFrame:
    """Encode ``messages`` as one frame and decode it back."""
    return FrameDecoder(encoding).decode(encode(messages, encoding))


def join(fragments: list[bytes] | list[str]) -> bytes | str:
    """The WebSocket message the fragments make up."""
    if isinstance(fragments[0], str):
        return "".join(cast("list[str]", fragments))
    return b"".join(cast("list[bytes]", fragments))


def wire_decode(message: bytes | str, encoding: Encoding) -> Any:
    """Decode a client message as the server would."""
    if encoding is Encoding.MSGPACK:
        assert isinstance(message, bytes)
        return msgspec.msgpack.decode(message)
    assert isinstance(message, str)
    return msgspec.json.decode(message)


@pytest.fixture
def credentials() -> Credentials:
    """Credentials with a recognisable secret."""
    return Credentials(KEY_ID, SECRET)


@pytest.fixture(params=ENCODINGS, ids=str)
def encoding(request: pytest.FixtureRequest) -> Encoding:
    """Each frame encoding Alpaca offers."""
    value: Encoding = request.param
    return value


# ---------------------------------------------------------------- purity

#: Names a module re-exports from its parts.
REEXPORTED: dict[ModuleType, set[str]] = {
    protocol: {
        "Authenticated",
        "Connected",
        "ServerErrorEvent",
        "SubscriptionAck",
        "DecodedFrame",
        "FrameDecoder",
    }
}


@pytest.mark.parametrize(
    ("module", "aliases"),
    [
        (protocol, {"ControlEvent"}),
        (decoder, {"DATA_TAGS"}),
        (events, {"ControlEvent"}),
        (structs, {"MarketData", "Size"}),
        (convert, set()),
    ],
    ids=["protocol", "decoder", "events", "structs", "convert"],
)
def test_all_lists_exactly_the_public_names(module: ModuleType, aliases: set[str]) -> None:
    """``__all__`` names every public class and function defined there, and the type aliases."""
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    }
    assert set(module.__all__) - REEXPORTED.get(module, set()) == defined | aliases


def test_the_codec_reexports_its_parts() -> None:
    """``streamfsm._core.protocol`` stays the one entry point: the decoder and events are there."""
    assert REEXPORTED[protocol] <= set(protocol.__all__)
    assert protocol.FrameDecoder is decoder.FrameDecoder
    assert set(models.__all__) == set(structs.__all__) | set(convert.__all__)


# ---------------------------------------------------------------- market data


def test_round_trip_of_every_market_data_type(encoding: Encoding) -> None:
    """Quotes, trades, the three bars and statuses decode to their structs in frame order."""
    bar = {"S": "SPY", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 100, "n": 3, "vw": 1.2}
    messages = [
        quote(),
        {"T": "t", "S": "AAPL", "i": 7, "x": "V", "p": 218.5, "s": 100, "z": "C", "t": WHEN},
        {"T": "b", "t": WHEN, **bar},
        {"T": "u", "t": WHEN, **bar},
        {"T": "d", "t": WHEN, **bar},
        {
            "T": "s",
            "S": "AAPL",
            "sc": "H",
            "sm": "Trading Halt",
            "rc": "T12",
            "rm": "halted",
            "z": "C",
            "t": WHEN,
        },
    ]
    frame = decode(messages, encoding)
    assert frame.control == []
    assert frame.skipped == 0
    assert [type(m) for m in frame.data] == [Quote, Trade, Bar, UpdatedBar, DailyBar, TradingStatus]
    assert frame.data[0] == Quote(
        symbol="AAPL",
        timestamp=WHEN,
        bid_exchange="O",
        bid_price=133.85,
        bid_size=4.0,
        ask_exchange="R",
        ask_price=135.77,
        ask_size=5.0,
        conditions=["R"],
        tape="A",
        seq=0,
    )
    assert frame.data[1] == Trade(
        symbol="AAPL",
        timestamp=WHEN,
        exchange="V",
        price=218.5,
        size=100.0,
        id=7,
        tape="C",
    )
    assert frame.data[4] == DailyBar(
        symbol="SPY",
        timestamp=WHEN,
        open=1.0,
        high=2.0,
        low=0.5,
        close=1.5,
        volume=100.0,
        trade_count=3.0,
        vwap=1.2,
    )


def test_timestamps_are_aware_utc_datetimes(encoding: Encoding) -> None:
    """Decoded timestamps carry the UTC timezone in both encodings."""
    (decoded,) = decode([quote()], encoding).data
    assert decoded.timestamp == WHEN
    assert decoded.timestamp.utcoffset() == dt.timedelta(0)


def test_json_timestamps_with_nanoseconds() -> None:
    """Alpaca's RFC 3339 timestamps with nine fractional digits decode, to the nearest us."""
    message = {**quote(), "t": "2024-07-24T07:56:53.639713735Z"}
    (decoded,) = FrameDecoder(Encoding.JSON).decode(msgspec.json.encode([message])).data
    assert decoded.timestamp == WHEN


def test_json_frames_may_arrive_as_bytes() -> None:
    """A JSON frame given as UTF-8 bytes decodes like the text frame."""
    frame = msgspec.json.encode([quote()])
    assert FrameDecoder(Encoding.JSON).decode(frame) == decode([quote()], Encoding.JSON)


@settings(max_examples=100)
@given(messages=st.lists(market_data, max_size=10), encoding=st.sampled_from(ENCODINGS))
def test_generated_market_data_round_trips(messages: list[MarketData], encoding: Encoding) -> None:
    """Any list of structs the server could encode decodes back to equal structs, in order."""
    frame = decode(messages, encoding)
    assert frame == DecodedFrame([], messages, 0)


# ---------------------------------------------------------------- control messages


def test_connected_and_authenticated(encoding: Encoding) -> None:
    """``success`` messages become Connected and Authenticated events."""
    connected = decode([{"T": "success", "msg": "connected"}], encoding)
    authenticated = decode([{"T": "success", "msg": "authenticated"}], encoding)
    assert connected == DecodedFrame([Connected()], [], 0)
    assert authenticated == DecodedFrame([Authenticated()], [], 0)


def test_other_success_messages_are_skipped(encoding: Encoding) -> None:
    """A ``success`` message streamfsm does not know is counted as skipped."""
    assert decode([{"T": "success", "msg": "welcome back"}], encoding) == DecodedFrame([], [], 1)


def test_subscription_ack_carries_the_whole_set(encoding: Encoding) -> None:
    """The ack becomes the server's whole set on every channel; the mirrors of trades ignored."""
    ack = {
        "T": "subscription",
        "trades": ["AAPL"],
        "quotes": ["AMD", "CLDR"],
        "bars": ["*"],
        "updatedBars": [],
        "dailyBars": [],
        "statuses": ["*"],
        "lulds": [],
        "corrections": ["AAPL"],
        "cancelErrors": ["AAPL"],
    }
    frame = decode([ack], encoding)
    expected = Subscription(trades={"AAPL"}, quotes={"AMD", "CLDR"}, bars={"*"}, statuses={"*"})
    assert frame == DecodedFrame([SubscriptionAck(expected)], [], 0)


def test_subscription_ack_without_channels_is_empty(encoding: Encoding) -> None:
    """An ack that lists no channel means the server's set is empty."""
    frame = decode([{"T": "subscription"}], encoding)
    assert frame.control == [SubscriptionAck(Subscription())]


def test_subscription_ack_with_an_invalid_symbol_is_a_protocol_error(encoding: Encoding) -> None:
    """An ack listing a symbol that cannot exist raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="invalid symbol") as caught:
        decode([{"T": "subscription", "quotes": ["not a symbol"]}], encoding)
    assert isinstance(caught.value.__cause__, InvalidSymbolError)


@pytest.mark.parametrize("code", sorted(SERVER_ERRORS))
def test_error_messages_become_typed_errors(code: int, encoding: Encoding) -> None:
    """Each documented code becomes a ServerErrorEvent whose error() is that code's class."""
    message = SERVER_ERRORS[code].message
    (event,) = decode([{"T": "error", "code": code, "msg": message}], encoding).control
    assert event == ServerErrorEvent(code, message)
    assert isinstance(event, ServerErrorEvent)
    error = event.error()
    assert type(error) is SERVER_ERRORS[code].error_class
    assert error.message == message


def test_error_without_text_uses_the_documented_message(encoding: Encoding) -> None:
    """An error message with no ``msg`` still yields the documented text."""
    (event,) = decode([{"T": "error", "code": 406}], encoding).control
    assert isinstance(event, ServerErrorEvent)
    error = event.error()
    assert isinstance(error, ConnectionLimitError)
    assert error.message == "connection limit exceeded"


def test_undocumented_error_code_is_a_plain_server_error() -> None:
    """A code Alpaca has not documented gives a transient ServerError that keeps the code."""
    error = ServerErrorEvent(499, "something new").error()
    assert type(error) is ServerError
    assert error.server_code == 499
    assert not is_fatal(error)


@pytest.mark.parametrize(
    "message",
    [
        {"T": "error", "msg": "no code"},
        {"T": "error", "code": "402"},
        {"T": "success"},
        {"T": "subscription", "trades": "AAPL"},
    ],
    ids=["error-no-code", "error-code-text", "success-no-msg", "ack-not-a-list"],
)
def test_malformed_control_messages_are_protocol_errors(
    message: dict[str, Any], encoding: Encoding
) -> None:
    """A control message is never dropped silently: a malformed one raises."""
    with pytest.raises(RemoteProtocolError, match="malformed") as caught:
        decode([message], encoding)
    assert isinstance(caught.value.__cause__, msgspec.ValidationError)


def test_control_and_data_in_one_frame_keep_their_order(encoding: Encoding) -> None:
    """A frame mixing control and data (Alpaca does not, but may) yields both."""
    frame = decode([quote(seq=1), {"T": "error", "code": 407, "msg": "slow client"}], encoding)
    assert frame.control == [ServerErrorEvent(407, "slow client")]
    assert [m.seq for m in frame.data if isinstance(m, Quote)] == [1]


# ---------------------------------------------------------------- skipping


def test_one_bad_message_in_a_hundred_is_skipped(encoding: Encoding) -> None:
    """A malformed quote is skipped and counted; the 99 others are delivered in order."""
    messages = [quote(seq=n) for n in range(100)]
    messages[37] = {**quote(seq=37), "bp": "not a price"}
    frame = decode(messages, encoding)
    assert frame.skipped == 1
    assert [m.seq for m in frame.data if isinstance(m, Quote)] == [n for n in range(100) if n != 37]


@pytest.mark.parametrize(
    "bad",
    [
        {"T": "zz", "S": "AAPL"},
        {"T": "q", "S": "AAPL"},
        {"S": "AAPL"},
        {"T": 7},
        "text",
        42,
        None,
        [1, 2],
    ],
    ids=["unknown-type", "missing-fields", "no-type", "numeric-type", "str", "int", "nil", "list"],
)
def test_bad_elements_are_skipped(bad: Any, encoding: Encoding) -> None:
    """Unknown types, missing fields and elements that are not objects are skipped."""
    frame = decode([quote(seq=1), bad, quote(seq=2)], encoding)
    assert frame.skipped == 1
    assert [m.seq for m in frame.data if isinstance(m, Quote)] == [1, 2]


@pytest.mark.parametrize("tag", OTHER_TAGS)
def test_malformed_messages_of_the_other_types_are_skipped(tag: str, encoding: Encoding) -> None:
    """A LULD, correction, cancel, order book or news message missing its fields is skipped."""
    other = {"T": tag, "S": "AAPL", "t": WHEN, "extra": {"nested": [1, 2, 3]}}
    frame = decode([quote(seq=1), other, quote(seq=2)], encoding)
    assert frame.skipped == 1
    assert frame.control == []
    assert [m.seq for m in frame.data if isinstance(m, Quote)] == [1, 2]


def test_invalid_utf8_in_one_message_skips_only_that_message(encoding: Encoding) -> None:
    """A string that is not UTF-8 spoils its own message, not the frame (found by fuzzing)."""
    frame = msgspec.msgpack.encode if encoding is Encoding.MSGPACK else msgspec.json.encode
    broken = frame([quote("A", 1), quote("BBBB", 2), quote("C", 3)]).replace(b"BBBB", b"B\xffBB")
    decoded = FrameDecoder(encoding).decode(broken)
    assert decoded.skipped == 1
    assert [m.seq for m in decoded.data if isinstance(m, Quote)] == [1, 3]


def test_invalid_utf8_in_a_control_message_is_a_protocol_error() -> None:
    """An error message whose text is not UTF-8 raises our typed error rather than vanishing.

    Which exception the decoder raised underneath is the decoder's business (msgspec changed it
    between releases); the contract is our error, with the cause chained.
    """
    frame = msgspec.msgpack.encode([{"T": "error", "code": 402, "msg": "auth xx"}])
    with pytest.raises(RemoteProtocolError, match="malformed 'error'") as caught:
        FrameDecoder(Encoding.MSGPACK).decode(frame.replace(b"xx", b"\xff\xff"))
    assert caught.value.__cause__ is not None


def test_an_empty_frame_is_empty(encoding: Encoding) -> None:
    """An empty array decodes to nothing, without error."""
    assert decode([], encoding) == DecodedFrame([], [], 0)


#: Integers both encodings carry.
wire_integers = st.integers(-(2**63), 2**63 - 1)
junk = st.one_of(
    wire_integers,
    st.text(max_size=5),
    st.none(),
    st.lists(wire_integers, max_size=3),
    st.fixed_dictionaries({"T": st.sampled_from(["zz", "q", "t", "b", *OTHER_TAGS])}),
)


@settings(max_examples=100)
@given(
    elements=st.lists(st.tuples(st.booleans(), market_data, junk), max_size=10),
    encoding=st.sampled_from(ENCODINGS),
)
def test_good_messages_survive_any_junk(
    elements: list[tuple[bool, MarketData, Any]], encoding: Encoding
) -> None:
    """Whatever non-control junk is mixed in, the good messages come out in order."""
    frame = decode([good if keep else bad for keep, good, bad in elements], encoding)
    assert frame.data == [good for keep, good, _ in elements if keep]
    assert frame.skipped == sum(1 for keep, _, _ in elements if not keep)
    assert frame.control == []


# ---------------------------------------------------------------- malformed frames


@pytest.mark.parametrize(
    ("encoding", "frame"),
    [
        (Encoding.MSGPACK, b""),
        (Encoding.MSGPACK, b"\xc1"),
        (Encoding.MSGPACK, msgspec.msgpack.encode([quote()])[:-3]),
        (Encoding.MSGPACK, msgspec.msgpack.encode(quote())),
        (Encoding.MSGPACK, msgspec.msgpack.encode("connected")),
        (Encoding.MSGPACK, b"\xdd\xff\xff\xff\xff"),
        (Encoding.JSON, ""),
        (Encoding.JSON, "not json"),
        (Encoding.JSON, '[{"T": "q"'),
        (Encoding.JSON, '{"T": "success", "msg": "connected"}'),
        (Encoding.JSON, "42"),
        (Encoding.JSON, "[] trailing"),
    ],
    ids=[
        "mp-empty",
        "mp-reserved-byte",
        "mp-truncated",
        "mp-bare-object",
        "mp-bare-string",
        "mp-huge-length",
        "json-empty",
        "json-garbage",
        "json-truncated",
        "json-bare-object",
        "json-number",
        "json-trailing",
    ],
)
def test_frames_that_are_not_arrays_are_protocol_errors(
    encoding: Encoding, frame: bytes | str
) -> None:
    """Garbage, truncated frames and bare objects raise RemoteProtocolError from msgspec's."""
    with pytest.raises(RemoteProtocolError, match="not an array") as caught:
        FrameDecoder(encoding).decode(frame)
    assert isinstance(caught.value.__cause__, msgspec.DecodeError)


def test_text_frame_on_a_msgpack_stream_is_a_protocol_error() -> None:
    """A text frame where binary msgpack is expected raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="text frame"):
        FrameDecoder(Encoding.MSGPACK).decode('[{"T": "success", "msg": "connected"}]')


@pytest.mark.parametrize(
    ("encoding", "frame"),
    [
        (Encoding.MSGPACK, b"\x91" * 100_000),
        (Encoding.JSON, "[" * 100_000),
    ],
    ids=["msgpack-nested-arrays", "json-nested-arrays"],
)
def test_absurdly_deep_nesting_is_a_protocol_error(encoding: Encoding, frame: bytes | str) -> None:
    """Nesting beyond any recursion limit raises RemoteProtocolError, never RecursionError."""
    with pytest.raises(RemoteProtocolError) as caught:
        FrameDecoder(encoding).decode(frame)
    assert caught.value.__cause__ is not None


def test_deep_nesting_under_an_unknown_key_never_escapes_as_another_error() -> None:
    """A deeply nested unknown field is either skipped or a protocol error, whatever the limit.

    How deep an interpreter and the decoder recurse differs by version (Python 3.13 decodes this
    frame, 3.11 runs out of stack); the contract is only that nothing else escapes.
    """
    frame = '[{"T": "q", "deep": ' + "[" * 5_000 + "]" * 5_000 + "}]"
    outcome: object
    try:
        outcome = FrameDecoder(Encoding.JSON).decode(frame)
    except RemoteProtocolError as error:
        outcome = error.__cause__
    assert outcome is not None


def test_lone_surrogates_in_a_text_frame_are_a_protocol_error() -> None:
    """A str that is not valid Unicode text raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        FrameDecoder(Encoding.JSON).decode('[{"T": "q", "S": "\ud800"}]')


@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
@settings(max_examples=300)
@given(frame=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(encoding: Encoding, frame: bytes) -> None:
    """Any bytes decode to a DecodedFrame or raise RemoteProtocolError, nothing else."""
    try:
        decoded = FrameDecoder(encoding).decode(frame)
    except RemoteProtocolError:
        return
    assert isinstance(decoded, DecodedFrame)


@pytest.mark.parametrize("encoding", ENCODINGS, ids=str)
@settings(max_examples=200)
@given(frame=st.text(max_size=200) | st.from_regex(r"\[(\{.*\}|[0-9a-z\",\[\]]*)\]"))
def test_arbitrary_text_never_raises_anything_else(encoding: Encoding, frame: str) -> None:
    """Any text decodes to a DecodedFrame or raises RemoteProtocolError, nothing else."""
    try:
        decoded = FrameDecoder(encoding).decode(frame)
    except RemoteProtocolError:
        return
    assert isinstance(decoded, DecodedFrame)


@settings(max_examples=100)
@given(
    messages=st.lists(market_data, min_size=1, max_size=5),
    encoding=st.sampled_from(ENCODINGS),
    data=st.data(),
)
def test_corrupted_frames_never_raise_anything_else(
    messages: list[MarketData], encoding: Encoding, data: st.DataObject
) -> None:
    """A valid frame with one byte changed or its tail cut decodes or raises RemoteProtocolError."""
    frame = (
        msgspec.msgpack.encode(messages)
        if encoding is Encoding.MSGPACK
        else msgspec.json.encode(messages)
    )
    index = data.draw(st.integers(0, len(frame) - 1))
    if data.draw(st.booleans()):
        corrupted = frame[:index]
    else:
        corrupted = frame[:index] + bytes([data.draw(st.integers(0, 255))]) + frame[index + 1 :]
    try:
        decoded = FrameDecoder(encoding).decode(corrupted)
    except RemoteProtocolError:
        return
    assert all(isinstance(m, Quote | Trade | Bar | TradingStatus) for m in decoded.data)


def test_unknown_encoding_is_refused() -> None:
    """A decoder for an encoding Alpaca does not offer cannot be built."""
    with pytest.raises(ValueError, match="xml"):
        FrameDecoder("xml")  # type: ignore[arg-type]


# ---------------------------------------------------------------- encoders


def test_auth_message(credentials: Credentials, encoding: Encoding) -> None:
    """The auth message carries the key id and the secret, in the stream's encoding."""
    message = encode_auth(credentials, encoding)
    assert wire_decode(message, encoding) == {"action": "auth", "key": KEY_ID, "secret": SECRET}


def test_subscribe_message(encoding: Encoding) -> None:
    """Subscribe lists symbols per channel, sorted, and leaves empty channels out."""
    subscription = Subscription(trades={"MSFT", "AAPL"}, bars={"*"})
    (fragment,) = encode_subscribe(subscription, encoding)
    assert wire_decode(fragment, encoding) == {
        "action": "subscribe",
        "trades": ["AAPL", "MSFT"],
        "bars": ["*"],
    }


def test_unsubscribe_message(encoding: Encoding) -> None:
    """Unsubscribe has the same shape with action ``unsubscribe``."""
    (fragment,) = encode_unsubscribe(Subscription(quotes={"FAKEPACA"}), encoding)
    assert wire_decode(fragment, encoding) == {"action": "unsubscribe", "quotes": ["FAKEPACA"]}


@pytest.mark.parametrize("encode_action", [encode_subscribe, encode_unsubscribe])
def test_empty_subscription_changes_are_refused(encode_action: Any, encoding: Encoding) -> None:
    """Subscribing or unsubscribing nothing is a caller error."""
    with pytest.raises(LocalProtocolError, match="empty"):
        encode_action(Subscription(), encoding)


def test_large_subscriptions_are_fragmented(encoding: Encoding) -> None:
    """~5000 symbols make several fragments of at most 32 KiB that join into one message."""
    symbols = {f"S{n:04d}" for n in range(5_000)}
    subscription = Subscription(trades=symbols, quotes=symbols, bars=set(list(symbols)[:100]))
    fragments = encode_subscribe(subscription, encoding)
    assert len(fragments) > 1
    assert all(type(fragment) is type(fragments[0]) for fragment in fragments)
    sizes = [
        len(fragment.encode() if isinstance(fragment, str) else fragment) for fragment in fragments
    ]
    assert max(sizes) <= MAX_SUBSCRIBE_FRAGMENT
    assert sizes[:-1] == [MAX_SUBSCRIBE_FRAGMENT] * (len(sizes) - 1)
    message = wire_decode(join(fragments), encoding)
    assert message["action"] == "subscribe"
    assert Subscription.from_wire(message) == subscription


def test_fragment_types_follow_the_encoding() -> None:
    """msgpack fragments are bytes (binary frames), JSON fragments str (text frames)."""
    subscription = Subscription(quotes={"AAPL"})
    assert [type(f) for f in encode_subscribe(subscription, Encoding.MSGPACK)] == [bytes]
    assert [type(f) for f in encode_subscribe(subscription, Encoding.JSON)] == [str]


def test_auth_headers(credentials: Credentials) -> None:
    """Header auth sends the key id and the secret under Alpaca's header names."""
    assert auth_headers(credentials) == {
        "APCA-API-KEY-ID": KEY_ID,
        "APCA-API-SECRET-KEY": SECRET,
    }


def test_content_types() -> None:
    """The Content-Type header asks for msgpack or JSON frames."""
    assert content_type(Encoding.MSGPACK) == "application/msgpack"
    assert content_type(Encoding.JSON) == "application/json"


# ---------------------------------------------------------------- secrets


def test_secret_appears_only_in_the_auth_frame(
    credentials: Credentials, encoding: Encoding
) -> None:
    """Nothing the protocol produces shows the secret in its repr, except the auth frame."""
    assert SECRET in str(wire_decode(encode_auth(credentials, encoding), encoding))
    headers = auth_headers(credentials)
    frames = [
        encode_subscribe(Subscription(quotes={"AAPL"}), encoding),
        decode([{"T": "error", "code": 402, "msg": "auth failed"}], encoding),
        decode([{"T": "success", "msg": "authenticated"}], encoding),
    ]
    for produced in [headers, *frames]:
        assert SECRET not in repr(produced)
        assert SECRET not in str(produced)
    assert "APCA-API-SECRET-KEY" in repr(headers)
    assert KEY_ID in repr(headers)


def test_decode_errors_do_not_echo_the_auth_frame(credentials: Credentials) -> None:
    """Even a server echoing our auth frame back does not put the secret in the error."""
    echoed = encode_auth(credentials, Encoding.JSON)
    with pytest.raises(RemoteProtocolError) as caught:
        FrameDecoder(Encoding.JSON).decode(echoed)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


# ---------------------------------------------------------------- classification


def test_classify_reads_the_error_table() -> None:
    """``classify`` returns the row of SERVER_ERRORS, None for undocumented codes."""
    assert all(classify(code) is spec for code, spec in SERVER_ERRORS.items())
    assert classify(499) is None


@pytest.mark.parametrize(
    ("error", "fatal"),
    [
        (AuthenticationError(), True),
        (SymbolLimitError(), False),
        (ConnectionLimitError(), False),
        (RemoteProtocolError("bad frame"), False),
        (LocalProtocolError("misuse"), True),
        (OSError("connection reset"), False),
        (ConnectionResetError(), False),
        (TimeoutError(), False),
        (EOFError(), False),
        (ValueError("a bug"), True),
        (KeyboardInterrupt(), True),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_is_fatal(error: BaseException, fatal: bool) -> None:
    """streamfsm errors say so themselves; socket failures are transient; the rest are bugs."""
    assert is_fatal(error) is fatal


@pytest.mark.parametrize("code", sorted(SERVER_ERRORS))
def test_is_fatal_agrees_with_the_table(code: int) -> None:
    """For every documented code, is_fatal of its error is the table's classification."""
    assert is_fatal(ServerErrorEvent(code, "").error()) is SERVER_ERRORS[code].fatal
