"""``streamfsm node``: one member of a cluster that shares one Alpaca connection over NATS.

    APCA_API_KEY_ID=... APCA_API_SECRET_KEY=... \\
        streamfsm node --nats nats://127.0.0.1:4222 --name desk --symbols AAPL,MSFT

Every process started with the same ``--name``, key and feed shares one Alpaca connection: one of
them (the holder) runs it and relays its frames on NATS, and each gets the quotes of its own
``--symbols``. The command prints one line per event, for people and for supervisors alike::

    EVENT t=MONOTONIC member=NAME key=value ...

``t`` is ``time.monotonic()`` when the event happened (system-wide on Linux, so the lines of
several processes on one host order into one timeline). The events:

* ``joined``: entered the election (``cluster``, ``symbols``, ``pid``);
* ``lease``: a transition of the lease machine (``from``, ``to``, ``trigger``, ``reason``,
  ``epoch``), stamped with the record's own time;
* ``role``: the role changed (``role`` holder or follower, ``epoch`` the tenure);
* ``state``: a transition of the member's connection machine (``from``, ``to``, ``reason``);
* ``data``: the first quote of a symbol (``symbol``);
* ``gap``: data resumed after an outage (``reason`` connection_lost, bus_gap or handover,
  ``symbol``, ``channel``, ``epoch`` of the lost tenure);
* ``figures``: every ``--summary-every`` seconds, the role, tenure, members, quotes delivered,
  gap reports and bus counters;
* ``metrics``: the endpoints' URL, with ``--metrics-port``;
* ``command``: with ``--stdin-commands``, each ``subscribe AAPL,MSFT`` or ``unsubscribe AAPL``
  line read from standard input, once applied (``action``, ``symbols``; ``error`` when refused);
* ``stopped``: the last line, with the final figures.

SIGINT or SIGTERM stops it: the holder closes Alpaca first, then releases the lease so a follower
takes over at once. Exit status: 0 after a signal; 1 when the member stopped on a fatal error
(402, 409, ...); 2 for missing credentials or invalid arguments.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TextIO

from streamfsm._core.records import TransitionRecord
from streamfsm._core.tracking import GapReport
from streamfsm.cli.live_args import environment_credentials
from streamfsm.cli.node_args import add_parser
from streamfsm.cluster.config import ClusterConfig
from streamfsm.config import StreamConfig
from streamfsm.controller import Health, StreamController
from streamfsm.credentials import Credentials
from streamfsm.errors import (
    ControllerStoppedError,
    StreamError,
)
from streamfsm.logs import logging_to

if TYPE_CHECKING:
    from streamfsm.metrics import MetricsServer

__all__ = ["LinePrinter", "add_parser", "build_controller", "parse_line", "run"]

EXIT_OK: Final = 0
EXIT_FATAL: Final = 1
EXIT_USAGE: Final = 2
PROG: Final = "streamfsm node"
#: Lease states that are a role; a candidate or a resigning holder is on its way to one.
_SETTLED_ROLES: Final = frozenset({"holder", "follower"})
#: Hex digits of a generated member name (``node-`` and these): unique enough among a desk's.
MEMBER_DIGITS: Final = 12


def parse_line(line: str) -> tuple[str, dict[str, str]]:
    """The event word and the ``key=value`` fields of one output line.

    Raises:
        ValueError: when the line is empty.
    """
    event, *fields = line.split()
    return event, dict(field.split("=", 1) for field in fields if "=" in field)


class LinePrinter:
    """Writes whole event lines from any thread, one at a time, flushed."""

    def __init__(self, out: TextIO, member: str) -> None:
        self._out = out
        self._member = member
        self._lock = threading.Lock()

    def say(self, event: str, at: float | None = None, **fields: object) -> None:
        """One line: ``event t=... member=... key=value ...``; ``at`` defaults to now."""
        self.say_all(event, fields, at)

    def say_all(self, event: str, fields: Mapping[str, object], at: float | None = None) -> None:
        """:meth:`say` with the fields in a mapping."""
        stamp = time.monotonic() if at is None else at
        text = " ".join(f"{key}={value}" for key, value in fields.items())
        line = f"{event} t={stamp:.6f} member={self._member}{' ' if text else ''}{text}\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()


class _Counts:
    """Quotes and gap reports of one node; the callbacks run on the controller's loop."""

    def __init__(self, printer: LinePrinter) -> None:
        self._printer = printer
        self.delivered = 0
        self.gaps: collections.Counter[str] = collections.Counter()
        self._seen: set[str] = set()
        #: Called after each gap report (the reporter checks for a new tenure there).
        self.after_gap: Callable[[], None] | None = None

    def on_quote(self, quote: Any) -> None:
        self.delivered += 1
        symbol = quote.symbol
        if symbol not in self._seen:
            self._seen.add(symbol)
            self._printer.say("data", symbol=symbol)

    def on_gap(self, report: GapReport) -> None:
        self.gaps[report.reason] += 1
        self._printer.say(
            "gap",
            reason=report.reason,
            symbol=report.symbol,
            channel=report.channel,
            epoch=report.epoch,
        )
        if self.after_gap is not None:
            self.after_gap()

    def on_transition(self, record: TransitionRecord) -> None:
        if record.src != record.dst:
            error = f" error={record.error}" if record.error else ""
            self._printer.say(
                "state", at=record.monotonic, reason=f"{record.reason}{error}", **_moved(record)
            )

    def gap_text(self) -> str:
        return ",".join(f"{reason}:{count}" for reason, count in sorted(self.gaps.items())) or "0"


def _moved(record: TransitionRecord) -> dict[str, str]:
    return {"from": record.src, "to": record.dst}


class _Reporter:
    """Prints lease and role lines as the lease machine moves, and figures lines from a thread
    of its own every ``every`` seconds (none when 0) until :meth:`close`."""

    def __init__(
        self, controller: StreamController, printer: LinePrinter, counts: _Counts, every: float
    ) -> None:
        self._controller = controller
        self._printer = printer
        self._counts = counts
        self._every = every
        self._role: tuple[str | None, int | None] = (None, None)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamfsm-node-report")

    def start(self) -> None:
        """Follow the lease machine and a handover's new tenure; start the figures timer."""
        self._controller.add_lease_listener(self._on_lease)
        self._counts.after_gap = self.role_changed
        if self._every:
            self._thread.start()

    def close(self) -> None:
        """Stop the figures thread."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._closing.wait(self._every):
            try:
                health = self._controller.health()
            except ControllerStoppedError:
                continue  # the loop is closing; the final line reads what is left
            self._printer.say_all("figures", self.figures(health))

    def _on_lease(self, record: TransitionRecord) -> None:
        """A lease transition (on the controller's loop): its line, then the role if it moved."""
        if record.trigger == "join":
            self._printer.say("joined", at=record.monotonic, pid=os.getpid())
        self._printer.say(
            "lease",
            at=record.monotonic,
            trigger=record.trigger,
            reason=record.reason or "-",
            epoch=record.epoch,
            **_moved(record),
        )
        if record.dst in _SETTLED_ROLES:
            self.role_changed()

    def role_changed(self) -> None:
        """Print a ``role`` line when the role or the tenure followed changed (on the loop:
        after a lease transition, and after a gap report, which a new tenure brings)."""
        health = self._controller.health()
        role = (health.role, health.lease_epoch)
        if role != self._role and health.role is not None:
            self._role = role
            self._printer.say("role", role=health.role, epoch=health.lease_epoch)

    def figures(self, health: Health) -> dict[str, object]:
        """The fields of a ``figures`` or ``stopped`` line."""
        bus = health.bus
        return {
            "role": health.role or "-",
            "epoch": health.lease_epoch or 0,
            "members": len(health.cluster_members),
            "state": health.state.value,
            "delivered": self._counts.delivered,
            "gaps": self._counts.gap_text(),
            "frames_received": bus.frames_received if bus is not None else 0,
            "frames_published": bus.frames_published if bus is not None else 0,
            "handovers": bus.handovers if bus is not None else 0,
            "bus_gaps": bus.gaps if bus is not None else 0,
            "stale_frames": bus.stale_frames if bus is not None else 0,
        }


def build_controller(
    args: argparse.Namespace, credentials: Credentials, counts: _Counts
) -> StreamController:
    """The cluster member ``args`` describe; nothing is connected yet.

    Raises:
        ConfigurationError: naming the field, for a value the configuration refuses.
        InvalidSymbolError: for a symbol that is not a ticker.
    """
    cluster = ClusterConfig(
        url=args.nats, name=args.name, member=args.member, lease_ttl=args.lease_ttl
    )
    controller = StreamController(
        credentials,
        StreamConfig(feed=args.feed, url=args.url),
        cluster=cluster,
        on_quote=counts.on_quote,
        on_gap=counts.on_gap,
        models="fast",
        symbols=args.symbols,
    )
    controller.add_listener(counts.on_transition)
    return controller


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run ``streamfsm node`` with parsed ``args``; returns the exit status."""
    out = stdout if stdout is not None else sys.stdout
    credentials = environment_credentials(PROG)
    if credentials is None:
        return EXIT_USAGE
    if args.member is None:
        args.member = f"node-{uuid.uuid4().hex[:MEMBER_DIGITS]}"
    printer = LinePrinter(out, args.member)
    counts = _Counts(printer)
    try:
        controller = build_controller(args, credentials, counts)
    except StreamError as exc:  # ConfigurationError and InvalidSymbolError among them
        sys.stderr.write(f"{PROG}: {type(exc).__name__}: {exc}\n")
        return EXIT_USAGE
    try:
        endpoints = _serve_metrics(controller, args)
    except (ImportError, OSError) as exc:
        sys.stderr.write(f"{PROG}: cannot serve metrics: {exc}\n")
        return EXIT_USAGE
    level = logging.getLevelNamesMapping()[args.log_level.upper()]
    try:
        if endpoints is not None:
            printer.say("metrics", url=endpoints.url)
        with logging_to(sys.stderr, level, json=args.log_json):
            return _serve(controller, printer, counts, args)
    finally:
        if endpoints is not None:
            endpoints.close()


def _serve(
    controller: StreamController, printer: LinePrinter, counts: _Counts, args: argparse.Namespace
) -> int:
    """Run the member until a signal or a fatal stop; print the last line."""
    printer.say("starting", cluster=args.name, symbols=",".join(args.symbols), pid=os.getpid())
    reporter = _Reporter(controller, printer, counts, args.summary_every)
    reporter.start()
    if args.stdin_commands:
        # A daemon: a read of standard input cannot be interrupted, and the process ends anyway.
        threading.Thread(
            target=_obey, args=(sys.stdin, controller, printer), name="node-stdin", daemon=True
        ).start()
    try:
        controller.run()
    finally:
        reporter.close()
    health = controller.health()
    printer.say_all("stopped", reporter.figures(health))
    error = controller.last_error
    if error is not None and error.fatal:
        sys.stderr.write(f"{PROG}: {type(error).__name__}: {error}\n")
        return EXIT_FATAL
    return EXIT_OK


def _obey(commands: TextIO, controller: StreamController, printer: LinePrinter) -> None:
    """Apply ``subscribe SYMBOLS`` and ``unsubscribe SYMBOLS`` lines (comma-separated quotes)
    until the end of ``commands``; print a ``command`` line for each, with ``error`` when refused.
    """
    for text in commands:
        action, _, symbols = text.strip().partition(" ")
        wanted = [symbol.strip().upper() for symbol in symbols.split(",") if symbol.strip()]
        try:
            if action == "subscribe" and wanted:
                controller.subscribe(quotes=wanted)
            elif action == "unsubscribe" and wanted:
                controller.unsubscribe(quotes=wanted)
            else:
                printer.say("command", action=action or "-", error="unknown")
                continue
        except StreamError as exc:  # an invalid symbol, a stopped controller
            printer.say(
                "command", action=action, symbols=",".join(wanted), error=type(exc).__name__
            )
            continue
        printer.say("command", action=action, symbols=",".join(wanted))


def _serve_metrics(controller: StreamController, args: argparse.Namespace) -> MetricsServer | None:
    """The endpoint server ``--metrics-port`` asks for, or None.

    Raises:
        ImportError: without the metrics extra (prometheus_client).
        OSError: when the address cannot be bound.
    """
    if args.metrics_port is None:
        return None
    try:
        from streamfsm.metrics import serve
    except ImportError as exc:
        raise ImportError("install the metrics extra: pip install 'streamfsm[metrics]'") from exc
    return serve(controller, port=args.metrics_port, host=args.metrics_host)
