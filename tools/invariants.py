"""The invariants of the design (ten for one connection, more for a cluster) and their tests.

The one source of this list: ``docs/state-diagram.md`` is rendered from it, and
``tests/test_diagram.py`` checks that every test it names exists.
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["INVARIANTS", "Invariant"]


@attrs.frozen
class Invariant:
    """One invariant of the design and the tests that check it.

    Attributes:
        number: its number in ``DESIGN.md`` (1-based).
        text: the invariant in one sentence (Markdown).
        tests: pytest node ids (or test modules) that check it.
    """

    number: int
    text: str
    tests: tuple[str, ...]


_STATEFUL: Final = "tests/test_stateful.py::ControllerMachine"
_INTEGRATION: Final = "tests/test_controller_integration.py"
_LEASE: Final = "tests/test_lease_stateful.py::LeaseCluster"

#: The invariants of the design, each with the tests that check it.
INVARIANTS: Final[tuple[Invariant, ...]] = (
    Invariant(
        1,
        "The machine is always in exactly one of its states, and every state change is an edge "
        "of the table.",
        (
            f"{_STATEFUL}.single_state_and_table_edge",
            "tests/test_machine.py::test_every_state_trigger_pair",
        ),
    ),
    Invariant(
        2,
        "`is_connected()` is true exactly in `subscribed`.",
        (f"{_STATEFUL}.connected_iff_subscribed",),
    ),
    Invariant(
        3,
        "At most one transport is open at any time; none in idle, backoff, circuit_open, stopped.",
        (f"{_STATEFUL}.at_most_one_transport",),
    ),
    Invariant(
        4,
        "No connection attempt while the breaker is open before its cool-down; attempts per "
        "window stay under the backoff bound (no reconnect storm); attempts after a takeover 406 "
        "are bounded apart, by its `retry_after`.",
        (f"{_STATEFUL}.no_reconnect_storm",),
    ),
    Invariant(
        5,
        "Once `subscribed`, the acknowledged set equals the desired set, after every reconnect "
        "and symbol change.",
        (
            f"{_STATEFUL}.acknowledged_equals_desired",
            f"{_INTEGRATION}::test_resubscribes_after_drop",
        ),
    ),
    Invariant(
        6,
        "After `stop()` returns: state is `stopped`, no transport, no timer or task, no callback "
        "called again.",
        (
            f"{_STATEFUL}.stopped_leaves_nothing",
            f"{_INTEGRATION}::test_stop_from_each_state",
            "tests/test_lifecycle_edges.py::test_stop_inside_a_callback_delivers_nothing_more",
        ),
    ),
    Invariant(
        7,
        "A user callback that raises never changes the state; it is counted and logged.",
        (
            f"{_STATEFUL}.callback_errors_never_change_state",
            f"{_INTEGRATION}::test_raising_callback_keeps_stream",
        ),
    ),
    Invariant(
        8,
        "A fatal error ends in `stopped` with its typed error and is never retried.",
        (
            f"{_STATEFUL}.fatal_errors_stop_for_good",
            f"{_INTEGRATION}::test_fatal_errors_stop_after_one_attempt",
        ),
    ),
    Invariant(
        9,
        "The backoff delay for attempt n lies in the policy's bounds and never exceeds its "
        "maximum; a 406 waits `connection_limit_cooldown`, a takeover 406 "
        "(`PredecessorStillConnectedError`) exactly its `retry_after`, in `backoff`, never in "
        "`circuit_open`.",
        (f"{_STATEFUL}.backoff_delays_within_bounds", "tests/test_policies.py"),
    ),
    Invariant(
        10,
        "The secret never appears in a log record, a `repr`, an exception message or the journal.",
        (
            f"{_STATEFUL}.secret_never_leaks",
            "tests/test_secrets.py",
            f"{_INTEGRATION}::test_secret_never_appears_in_logs",
            "tests/test_lifecycle_edges.py::test_debug_logging_never_shows_the_auth_frame",
        ),
    ),
    Invariant(
        11,
        "Cluster: never two processes that can both publish on the bus.",
        (
            f"{_LEASE}.never_two_publishers",
            f"{_LEASE}.a_publisher_holds_the_live_lease",
        ),
    ),
    Invariant(
        12,
        "Cluster: a holder fences itself (stops publishing, closes Alpaca) before its lease can "
        "expire, on any clock within the drift bound.",
        (
            f"{_LEASE}.fenced_before_the_lease_can_expire",
            "tests/test_lease.py::test_publishing_stops_at_the_deadline_even_before_the_fence_timer_fires",
        ),
    ),
)
