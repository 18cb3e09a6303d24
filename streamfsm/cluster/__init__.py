"""Cluster mode: one Alpaca connection per account, shared by many processes over NATS.

Sans-I/O, like :mod:`streamfsm._core`: ``lease_table`` and ``lease`` (the lease lifecycle),
``interest`` (the reference-counted union), ``framing`` (the bus's epoch and sequence) and
``config``. On NATS: ``nats_lease`` (JetStream KV lease), ``nats_interest`` (published interest),
``nats_relay`` (frames on the bus) and ``natsd`` (a local server for tests and demos).
"""

__all__: list[str] = []
