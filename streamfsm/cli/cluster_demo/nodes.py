"""``streamfsm node`` processes driven from Python: start, read their lines, signal, wait.

A :class:`NodeGroup` starts each member as a real subprocess (``python -m streamfsm node``) and
reads its standard output on a thread of its own, parsing every line into a :class:`NodeLine`.
All readers of a group notify one condition, so :meth:`NodeGroup.wait` sleeps until a line makes
the caller's check true (or the timeout passes), never polling. ``make demo-cluster`` and the
process-level chaos tests both drive their nodes with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Final, TypeVar

import attrs

from streamfsm.cli.node import parse_line

__all__ = ["NodeGroup", "NodeLine", "NodeProcess"]

#: How long a node may take to exit after SIGKILL, or its reader to see the end of its output.
_REAP_TIMEOUT: Final = 10.0
#: Lines kept per node in a timeout's message: enough to see where it stood.
_TAIL: Final = 8

_T = TypeVar("_T")


@attrs.frozen
class NodeLine:
    """One event line of a node.

    Attributes:
        event: the first word (``joined``, ``role``, ``gap``, ...).
        at: the ``t`` field: ``time.monotonic()`` in the node when the event happened.
        fields: every ``key=value`` of the line (``t`` and ``member`` included).
        text: the line as printed.
    """

    event: str
    at: float
    fields: Mapping[str, str]
    text: str


class NodeProcess:
    """One ``streamfsm node`` subprocess and the lines it printed so far."""

    def __init__(
        self,
        member: str,
        arguments: Iterable[str],
        *,
        env: Mapping[str, str],
        changed: threading.Condition,
        log: Path | None = None,
        commands: bool = False,
    ) -> None:
        self.member = member
        self._changed = changed
        self._lines: list[NodeLine] = []
        self._log: IO[bytes] | None = log.open("wb") if log is not None else None
        command = [sys.executable, "-m", "streamfsm", "node", "--member", member, *arguments]
        if commands:
            command.append("--stdin-commands")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
            env=dict(env),
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"node-{member}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None  # stdout=PIPE
        for text in stdout:
            try:
                event, fields = parse_line(text)
                line = NodeLine(event, float(fields["t"]), fields, text.rstrip("\n"))
            except (ValueError, KeyError):
                continue  # not an event line (a traceback, say): the log keeps it
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def lines(self, event: str | None = None, *, after: float = float("-inf")) -> list[NodeLine]:
        """The lines printed so far (of ``event`` only, and later than ``after``), in order."""
        with self._changed:
            return [
                line
                for line in self._lines
                if (event is None or line.event == event) and line.at > after
            ]

    def last(self, event: str) -> NodeLine | None:
        """The latest ``event`` line, or None."""
        found = self.lines(event)
        return found[-1] if found else None

    def command(self, text: str) -> None:
        """Send one line (``subscribe AAPL``, ``unsubscribe MSFT``) to a node started with
        ``commands=True``."""
        stdin = self.process.stdin
        assert stdin is not None, "started without commands"
        stdin.write(text + "\n")
        stdin.flush()

    @property
    def running(self) -> bool:
        """True until the process has exited."""
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` (SIGKILL, SIGTERM, SIGINT, SIGSTOP...) to the process."""
        os.kill(self.process.pid, signum)

    def wait_exit(self, timeout: float) -> int:
        """Its exit status, once it exited and its output is read to the end.

        Raises:
            subprocess.TimeoutExpired: when it is still running after ``timeout``.
        """
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    def close(self) -> None:
        """Kill it if it still runs, and release its pipes."""
        if self.running:
            self.signal(signal.SIGKILL)
        self.process.wait(_REAP_TIMEOUT)
        self._reader.join(_REAP_TIMEOUT)
        for pipe in (self.process.stdout, self.process.stdin):
            if pipe is not None:
                with contextlib.suppress(OSError):  # stdin of a killed node: a broken pipe
                    pipe.close()
        if self._log is not None:
            self._log.close()

    def tail(self) -> str:
        """The last few lines, for an error message."""
        return "\n".join(f"  {line.text}" for line in self.lines()[-_TAIL:])


class NodeGroup:
    """Nodes of one cluster, started with the same NATS server, cluster name and endpoint.

    Args:
        nats_url: the NATS server.
        cluster: the cluster's name.
        url: the market-data endpoint (the simulator's URL).
        env: the environment of every node (the credentials among it).
        extra: more ``streamfsm node`` arguments for every node (``--lease-ttl 10``, ...).
        log_dir: where each node's standard error goes (``MEMBER.log``); None discards it.
    """

    def __init__(
        self,
        nats_url: str,
        cluster: str,
        url: str,
        env: Mapping[str, str],
        *,
        extra: Iterable[str] = (),
        log_dir: Path | None = None,
    ) -> None:
        self._common = ["--nats", nats_url, "--name", cluster, "--url", url, *extra]
        self._env = env
        self._log_dir = log_dir
        self.changed = threading.Condition()
        self.nodes: dict[str, NodeProcess] = {}

    def start(
        self, member: str, symbols: Iterable[str], *extra: str, commands: bool = False
    ) -> NodeProcess:
        """Start the member ``member`` for the quotes of ``symbols``; ``commands`` lets
        :meth:`NodeProcess.command` change them."""
        log = self._log_dir / f"{member}.log" if self._log_dir is not None else None
        node = NodeProcess(
            member,
            [*self._common, "--symbols", ",".join(symbols), *extra],
            env=self._env,
            changed=self.changed,
            log=log,
            commands=commands,
        )
        self.nodes[member] = node
        return node

    def wait(self, check: Callable[[], _T | None], timeout: float, what: str) -> _T:
        """The first result of ``check()`` that is neither None nor False, waiting for lines.

        ``check`` runs under the group's lock, after every line any node prints.

        Raises:
            TimeoutError: naming ``what`` and showing each node's last lines, when ``timeout``
                passes first.
        """
        with self.changed:
            result = self.changed.wait_for(check, timeout)
        if result is None or result is False:
            tails = "\n".join(f"{name}:\n{node.tail()}" for name, node in self.nodes.items())
            raise TimeoutError(f"{what}: not seen within {timeout:.0f} s\n{tails}")
        return result

    def close(self) -> None:
        """Kill every node still running and release their pipes."""
        for node in self.nodes.values():
            node.close()

    def __enter__(self) -> NodeGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
