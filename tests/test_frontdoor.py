"""The front door: arbitrary values into every public constructor and method that takes input.

Each value either raises one of streamfsm's typed errors at the call, or is accepted; and what is
accepted works: a sample of accepted configurations and controller arguments (a few per run,
derandomized, bounded) is run over real sockets against the simulator, and must reach
``subscribed`` and deliver data. A configuration mistake never surfaces later as a session crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import random
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfsm import (
    BackoffPolicy,
    BreakerPolicy,
    Credentials,
    StalePolicy,
    State,
    StreamConfig,
    StreamController,
)
from streamfsm.errors import StreamError
from streamfsm.markets import Feed, Market
from streamfsm.pricing import PricingService
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, Replay, SimConfig, SimulatorThread

WAIT = 20.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
#: Accepted values run end to end per field (or per argument) and test run: enough to show that
#: acceptance means it works, few enough to keep the suite quick on a loaded machine.
LIVE_PER_FIELD = 1
JOURNALS = Path(tempfile.mkdtemp(prefix="streamfsm-frontdoor-"))

ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "C")), max_size=12
)
#: Wrong types, NaN, infinities, huge, negative, empty and odd unicode.
WILD: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 0.0, -0.0, 1e-320, 1e300, math.nan, math.inf, 2**31, 2**64, ""]),
    ODD_TEXT,
    st.binary(max_size=6),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
)


def plausible(default: object) -> st.SearchStrategy[object]:
    """Values near a field's default, so that acceptance happens often enough to be tested."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, enum.Enum):
        return st.sampled_from([member.value for member in type(default)])
    if isinstance(default, int):
        return st.integers(min_value=-2, max_value=max(2 * default, 10))
    if isinstance(default, float):
        return st.floats(min_value=-1.0, max_value=max(3 * default, 10.0))
    if isinstance(default, BackoffPolicy | BreakerPolicy | StalePolicy):
        return policies(type(default))
    return st.nothing()


def policies(kind: type) -> st.SearchStrategy[object]:
    """Policy objects built from wild or plausible field values (many are refused)."""
    fields = {field.name: st.one_of(WILD, plausible(field.default)) for field in attrs.fields(kind)}
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: _build(kind, kw))


class _Refused:
    """A policy that refused its values; using it must be refused in turn."""


def _build(kind: type, values: dict[str, object]) -> object:
    try:
        return kind(**values)
    except StreamError:
        return _Refused()


def field_values(kind: type) -> st.SearchStrategy[tuple[str, object]]:
    """A field of ``kind`` and a value for it: wild, plausible, or (journal) a path under tmp."""

    def for_field(field: attrs.Attribute[Any]) -> st.SearchStrategy[tuple[str, object]]:
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            # A default that depends on other fields (a market's feed): the default instance's.
            default = getattr(kind(), field.name) if default.takes_self else default.factory()
        extra: st.SearchStrategy[object] = plausible(default)
        if field.name == "journal_path":
            extra = ODD_TEXT.filter(bool).map(lambda name: str(JOURNALS / name))
        # Plausible values twice as often as wild ones, so most fields get accepted values.
        return st.tuples(st.just(field.name), st.one_of(WILD, extra, extra))

    return st.sampled_from(attrs.fields(kind)).flatmap(for_field)


class Live:
    """Runs accepted values end to end, a bounded number per key and test run."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}

    def wanted(self, key: str) -> bool:
        if self.runs.get(key, 0) >= LIVE_PER_FIELD:
            return False
        self.runs[key] = self.runs.get(key, 0) + 1
        return True


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """A fast simulator entitled to every feed, with no connection limit to trip over."""
    config = SimConfig(
        rate=500, seed=11, entitled_feeds=list(Feed), connection_limit=50, symbol_limit=None
    )
    with SimulatorThread(config) as simulator:
        yield simulator


def delivers(ctl: StreamController, got: threading.Event) -> None:
    """Start ``ctl``: it must reach subscribed and deliver data, then stop cleanly."""
    ctl.start()
    try:
        assert ctl.wait_for(State.SUBSCRIBED, WAIT), ctl.journal()
        assert got.wait(WAIT), f"no data delivered; last error {ctl.last_error!r}"
    finally:
        ctl.close()
    assert ctl.health().callback_errors == 0


CONFIG_KINDS = (StreamConfig, BackoffPolicy, BreakerPolicy, StalePolicy)
FRONT_DOOR = settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("kind", CONFIG_KINDS, ids=lambda kind: kind.__name__)
@FRONT_DOOR
@given(data=st.data())
def test_config_values_fail_at_the_call_or_work_end_to_end(
    sim: SimulatorThread, kind: type, data: st.DataObject
) -> None:
    """Every field of StreamConfig and its policies: a typed error now, or a working stream."""
    name, value = data.draw(field_values(kind))
    try:
        built = kind(**{name: value})
    except StreamError:
        return
    config = built if kind is StreamConfig else StreamConfig(**{_slot(kind): built})
    if config.market is not Market.STOCKS or config.feed in (Feed.BOATS, Feed.OVERNIGHT):
        return  # other markets and feeds stream end to end in test_markets_integration.py
    if not LIVE.wanted(f"{kind.__name__}.{name}"):
        return
    got = threading.Event()
    url = sim.url(config.feed.value)
    ctl = StreamController(
        CREDENTIALS,
        attrs.evolve(config, url=url),
        on_quote=lambda _q: got.set(),
        symbols=["AAPL"],
        models="fast",
    )
    delivers(ctl, got)


def _slot(kind: type) -> str:
    return {BackoffPolicy: "backoff", BreakerPolicy: "breaker", StalePolicy: "stale"}[kind]


class AsyncCallable:
    """A handler object whose __call__ is a coroutine function."""

    def __init__(self, got: threading.Event) -> None:
        self.got = got

    async def __call__(self, _item: object) -> None:
        await asyncio.sleep(0)
        self.got.set()


def handler_shapes(got: threading.Event) -> dict[str, object]:
    """Every shape of callable a handler may have; each sets ``got`` when it runs."""

    def function(_item: object) -> None:
        got.set()

    async def coroutine_function(_item: object) -> None:
        await asyncio.sleep(0)
        got.set()

    async def _set() -> None:
        got.set()

    return {
        "function": function,
        "coroutine function": coroutine_function,
        "object with async __call__": AsyncCallable(got),
        "lambda returning a coroutine": lambda _item: _set(),
    }


def handlers(got: threading.Event) -> st.SearchStrategy[object]:
    """Callables of every shape, and things that are not callable."""
    return st.one_of(st.sampled_from(list(handler_shapes(got).values())), WILD)


def shape_of(handler: object) -> str:
    """A handler's shape, to run each shape end to end at least once."""
    return getattr(handler, "__name__", type(handler).__name__)


@pytest.mark.parametrize("shape", list(handler_shapes(threading.Event())))
def test_every_handler_shape_is_called_end_to_end(sim: SimulatorThread, shape: str) -> None:
    """Sync, coroutine function, async __call__ and a lambda returning a coroutine all run."""
    got = threading.Event()
    ctl = StreamController(
        CREDENTIALS,
        StreamConfig(url=sim.url("iex")),
        on_quote=handler_shapes(got)[shape],  # type: ignore[arg-type]
        symbols=["AAPL"],
    )
    delivers(ctl, got)


SYMBOLS = st.one_of(
    WILD,
    st.sampled_from(["AAPL", "*", "BRK.B", ["AAPL", "MSFT"], ("SPY",), []]),
    st.lists(st.sampled_from(["AAPL", "aapl", "", "A" * 22, "TSLA", " SPY"]), max_size=3),
)


@FRONT_DOOR
@given(data=st.data())
def test_controller_arguments_fail_at_the_call_or_work_end_to_end(
    sim: SimulatorThread, data: st.DataObject
) -> None:
    """Handlers of every shape, models, symbols, correlation ids and rngs into the constructor."""
    got = threading.Event()
    kwargs = data.draw(
        st.fixed_dictionaries(
            {"on_quote": handlers(got)},
            optional={
                "on_trade": handlers(got),
                "on_error": handlers(threading.Event()),
                "models": st.one_of(WILD, st.sampled_from(["alpaca", "fast", "raw"])),
                "symbols": SYMBOLS,
                "correlation_id": st.one_of(WILD, st.text(max_size=8)),
                "rng": st.one_of(WILD, st.just(random.Random(3))),
                "config": st.one_of(WILD, st.just(None)),
            },
        )
    )
    try:
        ctl = StreamController(CREDENTIALS, **kwargs)
    except StreamError:
        return
    channel = "quotes" if kwargs["on_quote"] is not None else "trades"
    if kwargs.get("on_trade") is None and channel == "trades":
        return  # no market-data handler: accepted, and nothing to deliver
    if not LIVE.wanted(f"handler:{shape_of(kwargs['on_quote'])}"):
        return
    config = attrs.evolve(ctl.config, url=sim.url("iex"))
    live = StreamController(CREDENTIALS, **{**kwargs, "config": config})
    if not live.health().desired:
        live.subscribe(**{channel: ["AAPL"]})
    delivers(live, got)


@FRONT_DOOR
@given(channel=st.sampled_from(["quotes", "trades", "bars"]), symbols=SYMBOLS, remove=st.booleans())
def test_subscribe_and_unsubscribe_fail_at_the_call_or_change_the_desired_set(
    sim: SimulatorThread, channel: str, symbols: object, remove: bool
) -> None:
    """subscribe()/unsubscribe() with any value: a typed error, or the change is made, and works."""
    got = threading.Event()
    ctl = StreamController(
        CREDENTIALS,
        StreamConfig(url=sim.url("iex")),
        on_quote=lambda _q: got.set(),
        on_trade=lambda _t: got.set(),
        on_bar=lambda _b: None,
        models="fast",
    )
    method = ctl.unsubscribe if remove else ctl.subscribe
    try:
        method(**{channel: symbols})
    except StreamError:
        assert not ctl.health().desired
        return
    desired = ctl.health().desired
    if remove or channel == "bars" or not desired or not LIVE.wanted(f"subscribe:{channel}"):
        return
    delivers(ctl, got)


@FRONT_DOOR
@given(data=st.data())
def test_simulator_and_credentials_fail_at_the_call_or_build(data: st.DataObject) -> None:
    """SimConfig, Replay and Credentials: a typed error at the call, or a valid value."""
    name, value = data.draw(field_values(SimConfig))
    with contextlib.suppress(StreamError):
        SimConfig(**{name: value})
    with contextlib.suppress(StreamError):
        Replay(frames=data.draw(st.one_of(WILD, st.lists(st.binary(max_size=4), max_size=2))))
    key_id, secret = data.draw(st.tuples(st.one_of(WILD, st.just("PK1")), WILD))
    try:
        credentials = Credentials(key_id, secret)  # type: ignore[arg-type]
    except StreamError:
        return
    assert credentials.reveal() == secret


@FRONT_DOOR
@given(data=st.data())
def test_pricing_service_fails_at_the_call_or_accepts(data: st.DataObject) -> None:
    """PricingService's constructor and methods: a typed error at the call, never another."""
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                name: st.one_of(WILD, plausible(1.0))
                for name in ("max_symbols", "max_age", "trades", "on_quote", "refresher", "clock")
            },
        )
    )
    try:
        service = PricingService(CREDENTIALS, StreamConfig(), **kwargs)
    except StreamError:
        return
    calls: list[Callable[[], object]] = [
        lambda: service.track(
            data.draw(SYMBOLS), priority=data.draw(st.one_of(WILD, st.integers()))
        ),
        lambda: service.untrack(data.draw(SYMBOLS)),
        lambda: service.quote(data.draw(st.one_of(WILD, st.just("AAPL")))),
    ]
    for call in calls:
        with contextlib.suppress(StreamError):
            call()


LIVE = Live()


HANDLER_TYPES = """
from alpaca.data.models import Quote, Trade

from streamfsm import Credentials, StreamController
from streamfsm.models import Quote as FastQuote


def on_quote(quote: Quote) -> None:
    print(quote.bid_price)


async def on_trade(trade: Trade) -> None:
    print(trade.price)


def on_fast_quote(quote: FastQuote) -> None:
    print(quote.bid_price)


key = Credentials("PK1", "s")
StreamController(key, on_quote=on_quote, on_trade=on_trade, on_bar=print)
StreamController(key, on_quote=on_fast_quote, on_trade=lambda trade: None)
StreamController(key, on_trade=on_quote)  # line 22: a quote handler where trades go
StreamController(key, on_quote=on_trade)  # line 23: a trade handler where quotes go
"""


def test_mypy_refuses_a_handler_of_the_wrong_channel(tmp_path: Path) -> None:
    """The typed handler aliases make mypy --strict catch a quote handler passed as on_trade."""
    from mypy import api

    source = tmp_path / "handlers_contract.py"
    source.write_text(HANDLER_TYPES.lstrip("\n"), encoding="utf-8")
    cache = Path(__file__).parent.parent / ".mypy_cache"
    out, _err, status = api.run(["--strict", "--cache-dir", str(cache), str(source)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, out
    assert [line.split(":")[1] for line in errors] == ["22", "23"], out
    assert '"on_trade"' in errors[0]
    assert '"on_quote"' in errors[1]
