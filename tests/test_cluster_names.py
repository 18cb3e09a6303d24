"""Cluster names: one scope per account and feed, the key id never in clear."""

from __future__ import annotations

from streamfsm.cluster.names import ClusterNames
from streamfsm.cluster.nats_relay import frames_subject


def test_the_key_id_appears_only_as_a_hash() -> None:
    """No name built for a scope contains the API key id."""
    names = ClusterNames.of("desk", "PKSECRETKEYID123", "stocks", "iex")
    every = [
        names.lease_bucket,
        names.interest_bucket,
        names.lease_key,
        names.interest_key("m1"),
        names.frames_subject,
    ]
    assert all("PKSECRETKEYID123" not in name for name in every)
    assert names.frames_subject == frames_subject("desk", names.scope)


def test_scopes_differ_by_account_market_and_feed() -> None:
    """Two accounts, markets or feeds never share a lease."""
    base = ClusterNames.of("desk", "PK1", "stocks", "iex")
    assert base == ClusterNames.of("desk", "PK1", "stocks", "iex")
    others = {
        ClusterNames.of("desk", "PK2", "stocks", "iex").lease_key,
        ClusterNames.of("desk", "PK1", "crypto", "us").lease_key,
        ClusterNames.of("desk", "PK1", "stocks", "sip").lease_key,
    }
    assert base.lease_key not in others
    assert len(others) == 3
