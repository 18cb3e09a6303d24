"""Cluster mode at the controller's front door: the ``cluster=`` argument, checked at the call."""

from __future__ import annotations

import importlib.util

from streamfsm.cluster.config import ClusterConfig
from streamfsm.errors import ConfigurationError

__all__ = ["check_cluster"]


def check_cluster(cluster: object) -> None:
    """Accept None or a :class:`ClusterConfig` whose NATS client is installed.

    Raises:
        ConfigurationError: for any other value, or when ``nats-py`` (the ``cluster`` extra)
            is not installed.
    """
    if cluster is None:
        return
    if not isinstance(cluster, ClusterConfig):
        raise ConfigurationError("cluster", "a ClusterConfig or None", cluster)
    if importlib.util.find_spec("nats") is None:
        raise ConfigurationError(
            "cluster", "nats-py installed (pip install 'streamfsm[cluster]')", cluster
        )
