"""StreamConfig and its policies: frozen, validated, and every error names the field."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from streamfsm import State
from streamfsm.config import (
    BackoffPolicy,
    BreakerPolicy,
    Feed,
    StalePolicy,
    StreamConfig,
)
from streamfsm.controller import StreamController
from streamfsm.credentials import Credentials
from streamfsm.errors import ConfigurationError
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig


def test_defaults_point_at_alpaca_over_tls() -> None:
    """The default endpoint is Alpaca's IEX stream over wss."""
    config = StreamConfig()
    assert config.endpoint == "wss://stream.data.alpaca.markets/v2/iex"
    assert StreamConfig(feed="sip").endpoint.endswith("/v2/sip")
    assert StreamConfig(feed=Feed.TEST).feed is Feed.TEST


def test_config_is_frozen() -> None:
    """A config cannot be changed after it is built."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        StreamConfig().connect_timeout = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8765/v2/iex",
        "ws://localhost:1/v2/iex",
        "ws://[::1]:1/v2/iex",
        "wss://example.com/v2/iex",
    ],
)
def test_urls_that_are_accepted(url: str) -> None:
    """wss anywhere, ws only to loopback."""
    assert StreamConfig(url=url).endpoint == url


@pytest.mark.parametrize(
    "url",
    [
        "ws://example.com/v2/iex",
        "ws://127.0.0.1.evil.example/v2/iex",
        "ws://10.0.0.1/v2/iex",
        "http://127.0.0.1/v2/iex",
        "ws:///v2/iex",
        "not a url",
    ],
)
def test_urls_that_are_refused(url: str) -> None:
    """Unencrypted ws:// to anything but loopback, and non-WebSocket URLs, are refused."""
    with pytest.raises(ConfigurationError) as caught:
        StreamConfig(url=url)
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: StreamConfig(connect_timeout=0), "connect_timeout"),
        (lambda: StreamConfig(auth_timeout=-1), "auth_timeout"),
        (lambda: StreamConfig(subscribe_timeout=math.nan), "subscribe_timeout"),
        (lambda: StreamConfig(close_timeout=math.inf), "close_timeout"),
        (lambda: StreamConfig(dispatch_queue_size=0), "dispatch_queue_size"),
        (lambda: StreamConfig(dispatch_queue_size=True), "dispatch_queue_size"),
        (lambda: StreamConfig(feed="crypto"), "feed"),
        (lambda: StreamConfig(overflow="block"), "overflow"),
        (lambda: BackoffPolicy(initial=2, maximum=1), "maximum"),
        (lambda: BackoffPolicy(multiplier=0.5), "multiplier"),
        (lambda: BackoffPolicy(jitter="none"), "jitter"),
        (lambda: BreakerPolicy(failure_threshold=0), "failure_threshold"),
        (lambda: BreakerPolicy(cooldown=10, max_cooldown=5), "max_cooldown"),
        (lambda: StalePolicy(quotes=0), "quotes"),
        (lambda: StreamConfig(journal_path=3), "journal_path"),
    ],
)
def test_invalid_values_name_the_field_expected_and_got(build: object, field: str) -> None:
    """Each invalid value raises ConfigurationError naming the field, the expectation, the value."""
    with pytest.raises(ConfigurationError) as caught:
        build()  # type: ignore[operator]
    error = caught.value
    assert error.field == field
    assert field in str(error)
    assert "expected" in str(error)
    assert isinstance(error, ValueError)


#: Values that were accepted once and then broke every session, or meant nothing; each must now
#: fail at the call, naming its field.
REFUSED_AT_THE_CALL: list[tuple[Any, str, object]] = [
    (StreamConfig, "stale", 1.0),
    (StreamConfig, "stale", "60"),
    (StreamConfig, "backoff", 1.0),
    (StreamConfig, "breaker", "x"),
    (StreamConfig, "breaker", None),
    (StreamConfig, "connect_timeout", True),
    (StreamConfig, "connect_timeout", 0.001),
    (StreamConfig, "connect_timeout", 1e300),
    (StreamConfig, "connect_timeout", "10"),
    (StreamConfig, "command_timeout", 10**400),
    (StreamConfig, "ping_interval", math.inf),
    (StreamConfig, "ping_timeout", 0.0),
    (StreamConfig, "max_frame_bytes", 1),
    (StreamConfig, "max_frame_bytes", 2**64),
    (StreamConfig, "journal_size", 1.0),
    (StreamConfig, "journal_size", 2**40),
    (StreamConfig, "healthy_after", -0.1),
    (StreamConfig, "feed", 1),
    (StreamConfig, "encoding", None),
    (StreamConfig, "url", b"ws://127.0.0.1/v2/iex"),
    (StreamConfig, "url", "ws://127.0.0.1:99999/v2/iex"),
    (StreamConfig, "url", "ws://user:pw@127.0.0.1:1/v2/iex"),
    (StreamConfig, "url", "ws://127.0.0.1:1/v2/iex\n"),
    (StreamConfig, "url", ""),
    (StreamConfig, "journal_path", ""),
    (StreamConfig, "journal_path", "journal\0.jsonl"),
    (BackoffPolicy, "initial", math.nan),
    (BackoffPolicy, "multiplier", 1e9),
    (BackoffPolicy, "jitter", 0),
    (BreakerPolicy, "failure_threshold", True),
    (BreakerPolicy, "failure_threshold", 2.0),
    (BreakerPolicy, "cooldown", -math.inf),
    (StalePolicy, "quotes", 0.01),
    (StalePolicy, "quotes", 1000.0),
    (StalePolicy, "trades", "60"),
    (StalePolicy, "escalation", 0.5),
    (StalePolicy, "max_threshold", 1e12),
]


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    REFUSED_AT_THE_CALL,
    ids=[f"{kind.__name__}.{field}={value!r}" for kind, field, value in REFUSED_AT_THE_CALL],
)
def test_values_that_used_to_break_sessions_fail_at_the_call(
    kind: Any, field: str, value: object
) -> None:
    """A wrong type, NaN, inf, a bool, or an out-of-range value raises ConfigurationError."""
    with pytest.raises(ConfigurationError) as caught:
        kind(**{field: value})
    assert caught.value.field == field
    assert "expected" in str(caught.value)


def test_a_bare_number_for_stale_says_how_to_build_a_policy() -> None:
    """``stale=1.0`` is refused with a message that shows the StalePolicy to write instead."""
    with pytest.raises(ConfigurationError, match=r"StalePolicy\(quotes="):
        StreamConfig(stale=1.0)  # type: ignore[arg-type]


def test_enum_fields_take_members_and_their_string_values() -> None:
    """Enum fields accept their members and exact string values, nothing that merely compares."""
    assert StreamConfig(feed="iex", encoding="json", overflow="drop_oldest").feed is Feed.IEX
    assert StreamConfig(journal_path="j.jsonl").journal_path is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("seed", 2**64),
        ("seed", 1.5),
        ("port", 65_536),
        ("port", True),
        ("rate", math.nan),
        ("rate", 1e12),
        ("batch", 0),
        ("batch", 10**9),
        ("symbol_limit", 0),
        ("compression", 1),
        ("auth_timeout", math.inf),
        ("replay", "frames"),
        ("host", "0.0.0.0"),
    ],
)
def test_simulator_config_refuses_what_it_cannot_serve(field: str, value: object) -> None:
    """SimConfig validates through the same checks as StreamConfig, naming the field."""
    with pytest.raises(ConfigurationError) as caught:
        SimConfig(**{field: value})
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"on_quote": 42}, "on_quote"),
        ({"on_trade": "print"}, "on_trade"),
        ({"on_bar": object()}, "on_bar"),
        ({"on_error": 1.5}, "on_error"),
        ({"on_gap": b"x"}, "on_gap"),
        ({"on_quote": print, "config": {"feed": "iex"}}, "config"),
        ({"on_quote": print, "rng": 7}, "rng"),
        ({"on_quote": print, "correlation_id": ""}, "correlation_id"),
        ({"on_quote": print, "correlation_id": "line\nbreak"}, "correlation_id"),
        ({"on_quote": print, "models": "pydantic"}, "models"),
        ({"symbols": ["AAPL"]}, "symbols"),
    ],
)
def test_controller_arguments_are_checked_at_construction(
    kwargs: dict[str, Any], field: str
) -> None:
    """A handler that is not callable, or a wrong config, rng, id or model mode, fails at once."""
    with pytest.raises(ConfigurationError) as caught:
        StreamController(Credentials(DEMO_KEY_ID, DEMO_SECRET), **kwargs)
    assert caught.value.field == field


def test_subscribing_a_channel_without_its_handler_is_refused() -> None:
    """Trades subscribed on a controller without on_trade would go nowhere: refused, unchanged."""
    ctl = StreamController(Credentials(DEMO_KEY_ID, DEMO_SECRET), on_quote=print)
    with pytest.raises(ConfigurationError) as caught:
        ctl.subscribe(quotes=["AAPL"], trades=["SPY"])
    assert caught.value.field == "on_trade"
    assert not ctl.health().desired
    with pytest.raises(ConfigurationError) as listener:
        ctl.add_listener(42)  # type: ignore[arg-type]
    assert listener.value.field == "listener"


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1.0, 1e300, True, "5"])
def test_method_timeouts_are_checked_at_the_call(timeout: object) -> None:
    """wait_for, wait_synced, start, stop and close refuse a timeout threading cannot wait for."""
    ctl = StreamController(Credentials(DEMO_KEY_ID, DEMO_SECRET), on_quote=print)
    calls: list[Any] = [
        lambda: ctl.wait_for(State.SUBSCRIBED, timeout),
        lambda: ctl.wait_synced(timeout),
        lambda: ctl.start(timeout),
        lambda: ctl.stop(timeout),
        lambda: ctl.close(timeout),
    ]
    try:
        for call in calls:
            with pytest.raises(ConfigurationError) as caught:
                call()
            assert caught.value.field == "timeout"
    finally:
        ctl.close()
