"""Cluster mode: one Alpaca connection per account, shared by many processes over NATS.

``lease_table`` and ``lease`` are the lease lifecycle, sans-I/O like :mod:`streamfsm._core`;
``config`` holds :class:`ClusterConfig`.
"""

__all__: list[str] = []
