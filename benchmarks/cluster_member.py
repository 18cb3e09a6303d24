"""A cluster member process for ``benchmarks.cluster_failover``: a controller and its data times.

``python -m benchmarks.cluster_member SIM_URL NATS_URL NAME SYMBOL`` runs a clustered
``StreamController`` on ``SYMBOL``'s quotes and prints, at once, ``ROLE <role>`` when its role
changes and ``DATA <monotonic>`` for the first quote after each change of role or gap and then
at most every ``REPORT_EVERY`` seconds. ``time.monotonic`` is the system-wide clock on Linux, so
the parent compares it with its own. SIGTERM stops the controller cleanly (``run()``).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Final

from streamfsm import ClusterConfig, Credentials, StalePolicy, StreamConfig, StreamController
from streamfsm.sim import DEMO_KEY_ID, DEMO_SECRET

#: Data lines at most this often while nothing changes.
REPORT_EVERY: Final = 0.05


def say(line: str) -> None:
    """One protocol line to the parent, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(sim_url: str, nats_url: str, name: str, symbol: str) -> None:
    """Run until SIGTERM."""
    last = {"role": "", "data": 0.0}
    holder: list[StreamController] = []

    def on_quote(_quote: Any) -> None:
        now = time.monotonic()
        role = str(holder[0].health().role) if holder else ""
        if role != last["role"]:
            last["role"] = role
            say(f"ROLE {role}")
            last["data"] = 0.0
        if now - float(last["data"]) >= REPORT_EVERY:
            last["data"] = now
            say(f"DATA {now:.6f}")

    def on_gap(_report: Any) -> None:
        last["data"] = 0.0

    ctl = StreamController(
        Credentials(DEMO_KEY_ID, DEMO_SECRET),
        StreamConfig(url=sim_url, stale=StalePolicy(quotes=None), connection_limit_cooldown=0.5),
        cluster=ClusterConfig(url=nats_url, name="bench", member=name, takeover_retry=0.05),
        on_quote=on_quote,
        on_gap=on_gap,
        symbols=[symbol],
        models="fast",
    )
    holder.append(ctl)
    say("STARTED")
    ctl.run()


if __name__ == "__main__":
    main(*sys.argv[1:5])
