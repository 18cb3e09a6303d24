"""Cluster configuration: where the bus is, what the cluster is called, and the lease's timing.

Every number the lease machine and the NATS adapter use lives here, with the reason for its
default. A :class:`ClusterConfig` is a frozen value validated at construction; an invalid value
raises :class:`~streamfsm.errors.ConfigurationError` naming the field.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from streamfsm import _validate
from streamfsm.errors import ConfigurationError

__all__ = ["ClusterConfig"]

#: A cluster name becomes part of KV keys and bus subjects: letters, digits, ``-`` and ``_``.
_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The URL schemes nats-py accepts.
_NATS_SCHEMES: Final = frozenset({"nats", "tls", "ws", "wss"})
#: JetStream replica counts that keep a quorum (an even count adds no fault tolerance).
_REPLICA_COUNTS: Final = (1, 3, 5)
#: A clock off by more than 10 % is broken, not drifting; the bound would eat the whole lease.
_MAX_DRIFT: Final = 0.1


def _replicas(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or value not in _REPLICA_COUNTS:
        raise ConfigurationError(attribute.name, "1, 3 or 5", value)


def _nats_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or urlsplit(value).scheme not in _NATS_SCHEMES:
        raise ConfigurationError(attribute.name, "a nats://host:port URL", value)


def _cluster_name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or _NAME_PATTERN.fullmatch(value) is None:
        raise ConfigurationError(attribute.name, "1-64 letters, digits, '-' or '_'", value)


@attrs.frozen(kw_only=True)
class ClusterConfig:
    """How a controller joins a cluster that shares one Alpaca connection.

    Attributes:
        url: the NATS server (a JetStream-enabled cluster in production).
        name: the cluster's name; processes with the same name, key and market/feed share one
            connection.
        lease_ttl: how long the lease lives without a renewal, seconds. 2 s keeps failover after a
            crash near 3 s while tolerating a scheduling hiccup of a few hundred milliseconds.
        renewals_per_ttl: renewals attempted per TTL; 4 lets three in a row fail before fencing.
        max_clock_drift: the bound on how much faster or slower a process's monotonic clock may
            run than the NATS server's clock (a rate, 0.01 = 1 %); the fence deadline shrinks by it.
        fence_margin: how long before its lease could expire the holder stops publishing and
            closes Alpaca, seconds; covers closing the socket and loop latency.
        request_timeout: how long a KV request may take before it counts as failed, seconds.
            Below ``lease_ttl / renewals_per_ttl`` so a hung renewal never hides the next one.
        interest_ttl: how long a process's published interest outlives its last heartbeat.
        replicas: the KV bucket's replica count (3 on a production NATS cluster).
        member: this process's name in the cluster; generated when None.
        reap_window: how long after taking over a 406 means Alpaca still holds the previous
            holder's socket (``PredecessorStillConnectedError``) rather than a real second
            connection; Alpaca reaps a dead socket after about 90 s.
        takeover_retry: the first cool-down after such a 406, seconds; it doubles per refusal.
        takeover_retry_max: the cool-down's bound inside the reap window, seconds.
        connect_timeout: how long connecting to NATS may take before the attempt fails.
        reconnect_wait: the pause between NATS reconnect attempts, seconds.
    """

    url: str = attrs.field(default="nats://127.0.0.1:4222", validator=_nats_url)
    name: str = attrs.field(default="streamfsm", validator=_cluster_name)
    lease_ttl: float = attrs.field(default=2.0, validator=_validate.seconds())
    renewals_per_ttl: int = attrs.field(default=4, validator=_validate.count(low=2))
    max_clock_drift: float = attrs.field(
        default=0.01, validator=_validate.number(low=0.0, high=_MAX_DRIFT)
    )
    fence_margin: float = attrs.field(default=0.25, validator=_validate.seconds())
    request_timeout: float = attrs.field(default=0.4, validator=_validate.seconds())
    interest_ttl: float = attrs.field(default=3.0, validator=_validate.seconds())
    replicas: int = attrs.field(default=1, validator=_replicas)
    member: str | None = attrs.field(default=None)
    reap_window: float = attrs.field(default=90.0, validator=_validate.seconds(allow_zero=True))
    takeover_retry: float = attrs.field(default=1.0, validator=_validate.seconds())
    takeover_retry_max: float = attrs.field(default=8.0, validator=_validate.seconds())
    connect_timeout: float = attrs.field(default=2.0, validator=_validate.seconds())
    reconnect_wait: float = attrs.field(default=0.25, validator=_validate.seconds())

    def __attrs_post_init__(self) -> None:
        if self.fence_window <= 0:
            raise ConfigurationError(
                "fence_margin", "less than lease_ttl * (1 - max_clock_drift)", self.fence_margin
            )
        if self.request_timeout >= self.renew_interval:
            raise ConfigurationError(
                "request_timeout", "less than lease_ttl / renewals_per_ttl", self.request_timeout
            )
        if self.takeover_retry_max < self.takeover_retry:
            raise ConfigurationError(
                "takeover_retry_max", "at least takeover_retry", self.takeover_retry_max
            )
        if self.member is not None:
            _cluster_name(self, attrs.fields(ClusterConfig).member, self.member)

    @property
    def renew_interval(self) -> float:
        """Seconds between two renewals."""
        return self.lease_ttl / self.renewals_per_ttl

    @property
    def fence_window(self) -> float:
        """Seconds, on this process's clock, that a renewal sent now keeps publishing allowed.

        The server's lease outlives the request by at least ``lease_ttl`` of server time; a local
        clock running up to ``max_clock_drift`` slow measures that as ``lease_ttl * (1 - drift)``.
        """
        return self.lease_ttl * (1 - self.max_clock_drift) - self.fence_margin
