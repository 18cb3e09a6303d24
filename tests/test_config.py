"""StreamConfig and its policies: frozen, validated, and every error names the field."""

from __future__ import annotations

import math

import attrs
import pytest

from streamfsm.config import (
    BackoffPolicy,
    BreakerPolicy,
    Feed,
    StalePolicy,
    StreamConfig,
)
from streamfsm.errors import ConfigurationError


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
