"""Logging fits the ecosystem: stdlib records under ``streamfsm``, silent unless configured."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from transition_log import TransitionLog

from streamfsm import BackoffPolicy, Credentials, StalePolicy, State, StreamConfig, StreamController
from streamfsm.logs import (
    FRAME_LOGGERS,
    JsonFormatter,
    StreamLogger,
    capture_events,
    configure_logging,
    logging_to,
    pin_library_loggers,
    transition_level,
)
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

WAIT = 10.0
CREDENTIALS = Credentials(DEMO_KEY_ID, DEMO_SECRET)
CONFIG = StreamConfig(
    backoff=BackoffPolicy(initial=0.05, maximum=0.1), stale=StalePolicy(quotes=None)
)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator streaming quotes."""
    with SimulatorThread(SimConfig(rate=200, seed=4)) as simulator:
        yield simulator


def test_a_controller_prints_nothing_unless_logging_is_configured() -> None:
    """A whole life against the simulator, drop included, writes nothing to stdout or stderr."""
    script = textwrap.dedent(
        """
        import threading
        from streamfsm import Credentials, StalePolicy, State, StreamConfig, StreamController
        from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET, SimConfig, SimulatorThread

        got = threading.Event()
        lost = threading.Event()
        with SimulatorThread(SimConfig(rate=200)) as sim:
            config = StreamConfig(url=sim.url("iex"), stale=StalePolicy(quotes=None))
            ctl = StreamController(
                Credentials(DEMO_KEY_ID, DEMO_SECRET), config,
                on_quote=lambda _q: got.set(), symbols=["AAPL"],
            )
            ctl.add_listener(lambda r: lost.set() if r.trigger == "connection_lost" else None)
            ctl.start()
            assert ctl.wait_for(State.SUBSCRIBED, 20) and got.wait(20)
            sim.drop()
            assert lost.wait(20) and ctl.wait_for(State.SUBSCRIBED, 20)
            ctl.stop()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_an_outage_is_a_warning_on_the_streamfsm_logger(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    """At WARNING an application sees the drop, with the event, fields and correlation id."""
    got = threading.Event()
    caplog.set_level(logging.WARNING, logger="streamfsm")
    ctl = StreamController(
        CREDENTIALS,
        StreamConfig(url=sim.url("iex"), stale=StalePolicy(quotes=None)),
        on_quote=lambda _q: got.set(),
        symbols=["AAPL"],
        correlation_id="desk-7",
    )
    log = TransitionLog(ctl)
    ctl.start()
    assert ctl.wait_for(State.SUBSCRIBED, WAIT)
    assert got.wait(WAIT)
    sim.drop()
    assert log.wait(WAIT, dst="backoff", trigger="connection_lost")
    ctl.stop()
    lost = [r for r in caplog.records if getattr(r, "event", None) == "state_changed"]
    assert lost, "the drop reached the application's handler"
    record = lost[0]
    assert record.name == "streamfsm"
    assert record.levelno == logging.WARNING
    assert record.fields["trigger"] == "connection_lost"  # type: ignore[attr-defined]
    assert record.correlation_id == "desk-7"  # type: ignore[attr-defined]
    assert "state_changed" in record.getMessage()
    assert "dst=backoff" in record.getMessage()
    assert all(r.levelno >= logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("dst", "trigger", "error", "level"),
    [
        ("stopped", "attempt_failed", "AuthenticationError", logging.ERROR),
        ("backoff", "connection_lost", "ConnectionClosedError", logging.WARNING),
        ("backoff", "data_stale", "StaleConnectionError", logging.WARNING),
        ("backoff", "attempt_failed", "ConnectTimeoutError", logging.WARNING),
        ("circuit_open", "attempt_failed", "ConnectTimeoutError", logging.WARNING),
        ("subscribed", "ready", None, logging.INFO),
        ("stopped", "stop", None, logging.INFO),
    ],
)
def test_transition_levels(dst: str, trigger: str, error: str | None, level: int) -> None:
    """Fatal stops are ERROR, outages WARNING, the rest of the lifecycle INFO."""
    assert transition_level(dst, trigger, error) == level


def test_building_a_controller_leaves_foreign_loggers_alone() -> None:
    """Root, websockets and an application-set transitions level are untouched."""
    root = logging.getLogger()
    transitions = logging.getLogger("transitions")
    saved = (root.level, transitions.level, logging.getLogger("websockets").level)
    try:
        root.setLevel(logging.DEBUG)
        transitions.setLevel(logging.INFO)
        StreamController(CREDENTIALS, CONFIG)
        assert root.level == logging.DEBUG
        assert transitions.level == logging.INFO
        assert logging.getLogger("websockets").level == saved[2]
        transitions.setLevel(logging.NOTSET)
        pin_library_loggers()
        assert transitions.level == logging.WARNING  # documented: only when unset
    finally:
        root.setLevel(saved[0])
        transitions.setLevel(saved[1])


def test_frame_loggers_refuse_debug_records_even_when_set_to_debug() -> None:
    """Frames (the auth frame included) never pass, whatever level is set later."""
    pin_library_loggers()
    for name in FRAME_LOGGERS:
        logger = logging.getLogger(name)
        saved = logger.level
        logger.setLevel(logging.DEBUG)
        try:
            with capture_events(), _stdlib_capture(logger) as seen:
                logger.debug('> TEXT \'{"action":"auth"}\' [42 bytes]')
                logger.info("connection open")
            assert seen == ["connection open"]
        finally:
            logger.setLevel(saved)


def test_json_lines_carry_the_event_fields_and_level() -> None:
    """configure_logging(json=True) writes one parseable JSON object per event."""
    stream = io.StringIO()
    with logging_to(stream, logging.INFO, json=True):
        StreamLogger(correlation_id="c-1").warning("state_changed", dst="backoff", delay=0.5)
        StreamLogger().debug("hidden")
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "state_changed"
    assert event["level"] == "warning"
    assert event["logger"] == "streamfsm"
    assert (event["correlation_id"], event["dst"], event["delay"]) == ("c-1", "backoff", 0.5)


def test_configure_logging_replaces_its_own_handler() -> None:
    """A second configure_logging does not double every line."""
    first, second = io.StringIO(), io.StringIO()
    logger = logging.getLogger("streamfsm")
    saved = logger.level
    try:
        configure_logging(logging.INFO, stream=first)
        handler = configure_logging(logging.INFO, stream=second)
        StreamLogger().info("once")
        assert first.getvalue() == ""
        assert second.getvalue().count("once") == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def test_a_formatter_for_foreign_records_uses_their_message() -> None:
    """JsonFormatter on the root handler renders records that are not streamfsm events."""
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert json.loads(JsonFormatter().format(record))["event"] == "hello you"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _stdlib_capture:  # noqa: N801 - used like a function in a with statement
    """Collect the messages a logger passes to its handlers."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.handler = _ListHandler()

    def __enter__(self) -> list[str]:
        self.logger.addHandler(self.handler)
        return self.handler.messages

    def __exit__(self, *_exc: object) -> None:
        self.logger.removeHandler(self.handler)
