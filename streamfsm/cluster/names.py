"""Where a cluster's state lives on NATS: bucket names, keys and subjects, from its identity.

Processes share one Alpaca connection when they share the cluster name, the account (API key
id), the market and the feed; that identity is the *scope*. The key id enters only as a hash, so
it never reaches NATS or its logs.
"""

from __future__ import annotations

import hashlib
from typing import Final

import attrs

__all__ = ["ClusterNames"]

#: Hex digits of the key id's SHA-256 kept in names: 64 bits, no collision among one desk's keys.
_KEY_HASH_DIGITS: Final = 16


@attrs.frozen
class ClusterNames:
    """Every NATS name one scope uses.

    Attributes:
        cluster: the cluster name (``ClusterConfig.name``).
        scope: ``<key hash>.<market>.<feed>``.
    """

    cluster: str
    scope: str

    @classmethod
    def of(cls, cluster: str, key_id: str, market: str, feed: str) -> ClusterNames:
        """The names for ``key_id`` on ``market``/``feed`` in ``cluster``."""
        digest = hashlib.sha256(key_id.encode()).hexdigest()[:_KEY_HASH_DIGITS]
        return cls(cluster, f"{digest}.{market}.{feed}")

    @property
    def lease_bucket(self) -> str:
        """The KV bucket of the lease (``max_age`` = the lease TTL)."""
        return f"streamfsm_{self.cluster}_lease"

    @property
    def interest_bucket(self) -> str:
        """The KV bucket of published interest (``max_age`` = the interest TTL)."""
        return f"streamfsm_{self.cluster}_interest"

    @property
    def lease_key(self) -> str:
        """The lease key."""
        return f"lease.{self.scope}"

    @property
    def interest_prefix(self) -> str:
        """Interest keys are ``<prefix>.<member>``."""
        return f"interest.{self.scope}"

    def interest_key(self, member: str) -> str:
        """``member``'s interest key."""
        return f"{self.interest_prefix}.{member}"

    @property
    def frames_subject(self) -> str:
        """The subject the holder relays Alpaca frames on."""
        return f"streamfsm.{self.cluster}.{self.scope}.frames"

    @property
    def status_subject(self) -> str:
        """The subject the holder publishes its connection's status on."""
        return f"streamfsm.{self.cluster}.{self.scope}.status"
