"""A Prometheus collector for one or more controllers, read at scrape time.

Every metric is named ``streamfsm_...`` and labelled by ``stream`` (the name the caller gives
each controller, ``default`` for a single one) plus, where it applies, bounded labels: ``state``,
``trigger``/``src``/``dst`` (rows of the transition table), ``channel`` (quotes, trades, bars,
...). No metric has a symbol label. Values come from :meth:`StreamController.health` at each
scrape, except transitions, which a listener counts as they happen (with the journal's retained
records counted once when the collector is created).

Each family is built by one small function in :data:`FAMILIES`; a new part of the controller
adds one function there. Cluster mode adds ``streamfsm_cluster_*`` (the role, the lease epoch,
the member count and the bus counters), sampled only for controllers built with ``cluster=``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streamfsm._core.machine import State
from streamfsm._core.policies import BreakerState
from streamfsm._core.records import TransitionRecord
from streamfsm._core.subscriptions import CHANNELS
from streamfsm.controller import Health, StreamController

__all__ = ["DEFAULT_STREAM", "FAMILIES", "StreamCollector", "is_alive", "is_ready"]

#: The ``stream`` label of a controller passed on its own.
DEFAULT_STREAM: Final = "default"
_PREFIX: Final = "streamfsm_"


def is_alive(health: Health) -> bool:
    """Liveness: the controller has not stopped (``/healthz``)."""
    return health.state is not State.STOPPED


def is_ready(health: Health) -> bool:
    """Readiness: subscribed, and the acknowledged set equals the desired set (``/readyz``)."""
    return health.state is State.SUBSCRIBED and health.in_sync


class _TransitionCounter:
    """Counts transitions by (trigger, src, dst), and the errors that caused them, by class."""

    def __init__(self, controller: StreamController) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._errors: dict[str, int] = {}
        self._seen: int | None = None
        controller.add_listener(self._record)
        with self._lock:
            for record in controller.journal():
                self._count(record)

    def _count(self, record: TransitionRecord) -> None:
        """Count ``record`` once: records arrive in ``seq`` order, the ring may repeat some."""
        if self._seen is not None and record.seq <= self._seen:
            return
        self._seen = record.seq
        key = (record.trigger, record.src, record.dst)
        self._counts[key] = self._counts.get(key, 0) + 1
        if record.error is not None:
            self._errors[record.error] = self._errors.get(record.error, 0) + 1

    def _record(self, record: TransitionRecord) -> None:
        with self._lock:
            self._count(record)

    def counts(self) -> tuple[dict[tuple[str, str, str], int], dict[str, int]]:
        """Transitions by (trigger, src, dst), and errors by class name."""
        with self._lock:
            return dict(self._counts), dict(self._errors)


#: A family builder: (stream label -> health) -> metric families.
Family = Callable[[Mapping[str, Health]], Iterable[Metric]]


def _state(healths: Mapping[str, Health]) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        _PREFIX + "state",
        "1 for the state the controller is in, 0 otherwise",
        labels=["stream", "state"],
    )
    since = GaugeMetricFamily(
        _PREFIX + "time_in_state_seconds",
        "Seconds since the current state was entered",
        labels=["stream"],
    )
    up = GaugeMetricFamily(
        _PREFIX + "up", "1 while the controller is not stopped", labels=["stream"]
    )
    ready = GaugeMetricFamily(
        _PREFIX + "ready",
        "1 while subscribed with the acknowledged set equal to the desired set",
        labels=["stream"],
    )
    breaker = GaugeMetricFamily(
        _PREFIX + "breaker_state",
        "1 for the circuit breaker's state, 0 otherwise",
        labels=["stream", "state"],
    )
    failures = GaugeMetricFamily(
        _PREFIX + "consecutive_failures", "Failures counted toward the breaker", labels=["stream"]
    )
    for stream, health in healths.items():
        for candidate in State:
            state.add_metric([stream, candidate.value], float(health.state is candidate))
        since.add_metric([stream], health.time_in_state)
        up.add_metric([stream], float(is_alive(health)))
        ready.add_metric([stream], float(is_ready(health)))
        for candidate_breaker in BreakerState:
            breaker.add_metric(
                [stream, candidate_breaker.value], float(health.breaker is candidate_breaker)
            )
        failures.add_metric([stream], health.consecutive_failures)
    yield from (state, since, up, ready, breaker, failures)


#: (name, help, Health attribute) of the plain per-stream counters.
_COUNTERS: Final = (
    ("connection_attempts", "Connection attempts made", "attempts"),
    ("reconnects", "Sessions subscribed again after a loss", "reconnects"),
    ("breaker_trips", "Times the circuit breaker opened", "breaker_trips"),
    ("callback_errors", "User callbacks that raised", "callback_errors"),
    ("dropped_messages", "Messages dropped by the overflow policy", "dropped_messages"),
    ("malformed_frames", "Frames that could not be decoded, skipped", "malformed_frames"),
    (
        "skipped_messages",
        "Messages skipped as invalid (e.g. a price that is not a number)",
        "skipped_messages",
    ),
    ("rejected_changes", "Subscription changes the server refused", "rejected_changes"),
    ("gaps", "Gap reports: a symbol's data resumed after an outage", "gaps_reported"),
)


def _counters(healths: Mapping[str, Health]) -> Iterator[Metric]:
    for name, text, attribute in _COUNTERS:
        family = CounterMetricFamily(_PREFIX + name, text, labels=["stream"])
        for stream, health in healths.items():
            family.add_metric([stream], float(getattr(health, attribute)))
        yield family


def _data(healths: Mapping[str, Health]) -> Iterator[Metric]:
    messages = CounterMetricFamily(
        _PREFIX + "messages", "Market-data messages received", labels=["stream", "channel"]
    )
    age = GaugeMetricFamily(
        _PREFIX + "last_message_age_seconds",
        "Seconds since the last message on a channel of the current session",
        labels=["stream", "channel"],
    )
    queued = GaugeMetricFamily(
        _PREFIX + "queued_messages", "Messages waiting for the callbacks", labels=["stream"]
    )
    open_gaps = GaugeMetricFamily(
        _PREFIX + "open_gaps", "Symbols still waiting for data after an outage", labels=["stream"]
    )
    for stream, health in healths.items():
        for channel, count in sorted(health.messages.items()):
            messages.add_metric([stream, channel], float(count))
        for channel, seconds in sorted(health.last_message_age.items()):
            if seconds is not None:
                age.add_metric([stream, channel], seconds)
        queued.add_metric([stream], health.queued_messages)
        open_gaps.add_metric([stream], health.open_gaps)
    yield from (messages, age, queued, open_gaps)


def _subscriptions(healths: Mapping[str, Health]) -> Iterator[Metric]:
    symbols = GaugeMetricFamily(
        _PREFIX + "symbols",
        "Symbols per channel the caller wants (desired) and the server acknowledged (confirmed)",
        labels=["stream", "set", "channel"],
    )
    for stream, health in healths.items():
        for name, subscription in (("desired", health.desired), ("confirmed", health.confirmed)):
            for channel in CHANNELS:
                symbols.add_metric([stream, name, channel], len(subscription.channel(channel)))
    yield symbols


def _lag(healths: Mapping[str, Health]) -> Iterator[Metric]:
    family = HistogramMetricFamily(
        _PREFIX + "delivery_lag_seconds",
        "Per frame: seconds from arrival to the start of its callbacks",
        labels=["stream"],
    )
    for stream, health in healths.items():
        lag = health.delivery_lag
        if lag is None:
            continue
        cumulative, buckets = 0, []
        for bound, count in zip((*lag.bounds, math.inf), lag.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if math.isinf(bound) else repr(bound), float(cumulative)))
        family.add_metric([stream], buckets, lag.total)
    yield family


#: (name, help, BusFigures attribute) of the cluster bus counters.
_BUS_COUNTERS: Final = (
    ("cluster_bus_frames_received", "Relayed frames that arrived from the bus", "frames_received"),
    (
        "cluster_bus_frames_published",
        "Frames this process relayed on the bus while it held the connection",
        "frames_published",
    ),
    (
        "cluster_bus_publish_refused",
        "Frames not relayed because the lease no longer allowed publishing (fenced)",
        "publish_refused",
    ),
    ("cluster_bus_gaps", "Sequence jumps seen on the bus (relayed frames lost)", "gaps"),
    ("cluster_bus_missing_frames", "Relayed frames the sequence jumps skipped", "missing_frames"),
    ("cluster_bus_handovers", "New tenures of the shared connection seen", "handovers"),
    ("cluster_bus_stale_frames", "Frames of an older tenure, dropped", "stale_frames"),
    (
        "cluster_bus_malformed_frames",
        "Bus messages that were not relayed frames",
        "malformed_frames",
    ),
)


def _cluster(healths: Mapping[str, Health]) -> Iterator[Metric]:
    """Cluster mode only: a controller without ``cluster=`` adds no sample to these families."""
    holder = GaugeMetricFamily(
        _PREFIX + "cluster_holder",
        "1 while this process holds the cluster's shared connection (the lease), else 0",
        labels=["stream"],
    )
    epoch = GaugeMetricFamily(
        _PREFIX + "cluster_lease_epoch",
        "The tenure (lease epoch) of the shared connection this process holds or follows",
        labels=["stream"],
    )
    members = GaugeMetricFamily(
        _PREFIX + "cluster_members",
        "Members whose interest the holder sees (as the holder last published it)",
        labels=["stream"],
    )
    counters = [
        (CounterMetricFamily(_PREFIX + name, text, labels=["stream"]), attribute)
        for name, text, attribute in _BUS_COUNTERS
    ]
    for stream, health in healths.items():
        if health.bus is None:
            continue
        holder.add_metric([stream], float(health.role == "holder"))
        if health.lease_epoch is not None:
            epoch.add_metric([stream], float(health.lease_epoch))
        members.add_metric([stream], float(len(health.cluster_members)))
        for family, attribute in counters:
            family.add_metric([stream], float(getattr(health.bus, attribute)))
    yield from (holder, epoch, members)
    yield from (family for family, _attribute in counters)


#: Every family builder, in exposition order. Add one function here for a new part.
FAMILIES: Final[list[Family]] = [_state, _counters, _data, _subscriptions, _lag, _cluster]


class StreamCollector(Collector):
    """Collects ``streamfsm_*`` metrics from controllers at each scrape.

    Args:
        controllers: one controller (labelled ``stream="default"``) or a mapping from a ``stream``
            label to each controller; the names must stay few and fixed.

    Register it on a ``prometheus_client.CollectorRegistry`` of your own; it never touches the
    global one. Creating it adds a transition listener to each controller.
    """

    def __init__(self, controllers: StreamController | Mapping[str, StreamController]) -> None:
        self._controllers: dict[str, StreamController] = (
            {DEFAULT_STREAM: controllers}
            if isinstance(controllers, StreamController)
            else dict(controllers)
        )
        self._transitions = {
            stream: _TransitionCounter(controller)
            for stream, controller in self._controllers.items()
        }

    def healths(self) -> dict[str, Health]:
        """A fresh ``health()`` of every controller, by stream label."""
        return {stream: ctl.health() for stream, ctl in self._controllers.items()}

    def collect(self) -> Iterator[Metric]:
        """Every family, from one health snapshot per controller."""
        healths = self.healths()
        for build in FAMILIES:
            yield from build(healths)
        transitions = CounterMetricFamily(
            _PREFIX + "transitions",
            "Transitions executed, by trigger and states (rows of the transition table)",
            labels=["stream", "trigger", "src", "dst"],
        )
        errors = CounterMetricFamily(
            _PREFIX + "transition_errors",
            "Errors that moved the machine (a failed attempt, a lost session), by error class",
            labels=["stream", "error"],
        )
        for stream, counter in self._transitions.items():
            counts, by_error = counter.counts()
            for (trigger, src, dst), count in sorted(counts.items()):
                transitions.add_metric([stream, trigger, src, dst], float(count))
            for error, count in sorted(by_error.items()):
                errors.add_metric([stream, error], float(count))
        yield transitions
        yield errors
