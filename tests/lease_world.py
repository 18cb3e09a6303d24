"""A simulated cluster for the lease tests: processes, a fake KV store and a lossy network.

The world runs on true time (the store's clock). Each process has its own monotonic clock, which
runs at a rate within ``1 +/- max_clock_drift`` of true time and keeps running while the process
is paused (as ``CLOCK_MONOTONIC`` does under SIGSTOP). Messages (KV requests, their answers, watch
notifications, "Alpaca closed") wait in one pending list until a test delivers or loses them, in
any order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from streamfsm._core.records import TransitionRecord
from streamfsm.cluster.config import ClusterConfig
from streamfsm.cluster.lease import LeaseCore
from streamfsm.cluster.lease_commands import (
    Acquire,
    ArmLeaseTimer,
    BeginHolding,
    CancelLeaseTimer,
    Fence,
    LeaseTimer,
    Release,
    Renew,
)


@attrs.define
class Entry:
    """The lease key as the store holds it."""

    member: str
    epoch: int
    revision: int
    expires_at: float


@attrs.define
class FakeKV:
    """One key with compare-and-set on the revision and expiry ``ttl`` after each write."""

    ttl: float
    revision: int = 0
    entry: Entry | None = None

    def live(self, now: float) -> Entry | None:
        """The entry if it exists and has not expired at ``now``."""
        if self.entry is not None and now >= self.entry.expires_at:
            self.entry = None
        return self.entry

    def create(self, member: str, now: float) -> int | None:
        """Write if absent; the new revision, or None when the key is held."""
        if self.live(now) is not None:
            return None
        self.revision += 1
        self.entry = Entry(member, self.revision, self.revision, now + self.ttl)
        return self.revision

    def update(self, member: str, epoch: int, last: int, now: float) -> int | None:
        """Write if the live revision is ``last``; the new revision, or None."""
        entry = self.live(now)
        if entry is None or entry.revision != last:
            return None
        self.revision += 1
        self.entry = Entry(member, epoch, self.revision, now + self.ttl)
        return self.revision

    def delete(self, last: int, now: float) -> bool:
        """Delete if the live revision is ``last``."""
        entry = self.live(now)
        if entry is None or entry.revision != last:
            return False
        self.revision += 1
        self.entry = None
        return True


@attrs.define
class Message:
    """Something in flight. ``deliver`` runs it; ``lose`` runs ``on_loss`` (maybe nothing)."""

    target: str  # a process name, or "kv"
    label: str
    deliver: Callable[[], None]
    on_loss: Callable[[], None] | None = None


@attrs.define(eq=False)
class Process:
    """One simulated process: its lease core, clock, timers and Alpaca session."""

    name: str
    core: LeaseCore
    local: float
    rate: float = 1.0
    paused: bool = False
    timers: dict[LeaseTimer, tuple[float, int]] = attrs.Factory(dict)
    alpaca_epoch: int | None = None
    records: list[TransitionRecord] = attrs.Factory(list)


class World:
    """Processes sharing a fake store over a network that delays, reorders and loses."""

    def __init__(self, config: ClusterConfig, names: tuple[str, ...]) -> None:
        self.config = config
        self.now = 0.0
        self.kv = FakeKV(config.lease_ttl)
        self.pending: list[Message] = []
        self.processes: dict[str, Process] = {}
        self._watched_vacancy = True
        for index, name in enumerate(names):
            process = Process(name=name, core=None, local=1000.0 * (index + 1))  # type: ignore[arg-type]
            process.core = LeaseCore(
                config,
                name,
                clock=lambda p=process: p.local,
                wall=lambda: datetime(2026, 1, 1, tzinfo=UTC),
                on_record=process.records.append,
            )
            self.processes[name] = process

    # ------------------------------------------------------------ time

    def advance(self, seconds: float) -> None:
        """Move true time; every clock moves at its rate; running processes fire due timers."""
        self.now += seconds
        for process in self.processes.values():
            process.local += seconds * process.rate
        self._notify_expiry()
        for process in self.processes.values():
            self.fire_timers(process)

    def fire_timers(self, process: Process) -> None:
        """Fire the process's due timers in deadline order (not while it is paused)."""
        while not process.paused:
            due = [
                (deadline, timer, token)
                for timer, (deadline, token) in process.timers.items()
                if deadline <= process.local
            ]
            if not due:
                return
            _, timer, token = min(due, key=lambda item: item[0])
            del process.timers[timer]
            process.core.timer_fired(timer, token)
            self.run(process)

    def _notify_expiry(self) -> None:
        entry = self.kv.entry
        if entry is not None and self.kv.live(self.now) is None:
            self._broadcast(vacated=True)

    # ------------------------------------------------------------ commands

    def run(self, process: Process) -> None:
        """Carry out what the process's core asked for."""
        for command in process.core.drain():
            if isinstance(command, ArmLeaseTimer):
                process.timers[command.timer] = (process.local + command.delay, command.token)
            elif isinstance(command, CancelLeaseTimer):
                process.timers.pop(command.timer, None)
            elif isinstance(command, BeginHolding):
                process.alpaca_epoch = command.epoch
            elif isinstance(command, Fence):
                self._fence(process, command.epoch)
            else:
                self._request(process, command)

    def _fence(self, process: Process, epoch: int) -> None:
        process.alpaca_epoch = None

        def closed() -> None:
            process.core.alpaca_closed(epoch)
            self.run(process)

        self.pending.append(Message(process.name, f"closed {epoch}", closed, on_loss=closed))

    def _request(self, process: Process, command: Acquire | Renew | Release) -> None:
        core = process.core

        def answer(label: str, fact: Callable[[], None]) -> None:
            def deliver() -> None:
                fact()
                self.run(process)

            self.pending.append(Message(process.name, label, deliver, on_loss=failed))

        def failed() -> None:
            # A request or answer lost on the wire: the adapter reports a timeout.
            if isinstance(command, Acquire):
                core.create_failed(command.token)
            elif isinstance(command, Renew):
                core.renew_failed(command.token)
            self.run(process)

        def at_store() -> None:
            if isinstance(command, Acquire):
                revision = self.kv.create(command.member, self.now)
                if revision is None:
                    answer("refused", lambda: core.create_refused(command.token))
                else:
                    self._broadcast(member=command.member, epoch=revision)
                    answer(
                        f"acquired {revision}",
                        lambda: core.create_answered(command.token, revision),
                    )
            elif isinstance(command, Renew):
                revision = self.kv.update(command.member, command.epoch, command.revision, self.now)
                if revision is None:
                    answer("renew refused", lambda: core.renew_refused(command.token))
                else:
                    self._broadcast(member=command.member, epoch=command.epoch)
                    answer(
                        f"renewed {revision}", lambda: core.renew_answered(command.token, revision)
                    )
            elif self.kv.delete(command.revision, self.now):
                self._broadcast(vacated=True)

        self.pending.append(
            Message("kv", f"{type(command).__name__} from {process.name}", at_store, on_loss=failed)
        )

    def _broadcast(self, *, member: str = "", epoch: int = 0, vacated: bool = False) -> None:
        for process in self.processes.values():

            def watch(p: Process = process) -> None:
                if vacated:
                    p.core.vacated()
                else:
                    p.core.observed(member, epoch)
                self.run(p)

            label = "vacated" if vacated else json.dumps([member, epoch])
            self.pending.append(Message(process.name, f"watch {label}", watch))

    # ------------------------------------------------------------ delivery

    def deliverable(self) -> list[int]:
        """Indexes of pending messages whose target can take them now."""
        return [
            index
            for index, message in enumerate(self.pending)
            if message.target == "kv" or not self.processes[message.target].paused
        ]

    def deliver(self, index: int) -> None:
        """Deliver one pending message."""
        self.pending.pop(index).deliver()

    def lose(self, index: int) -> None:
        """Lose one pending message (its sender sees a timeout, if it waits for one)."""
        message = self.pending.pop(index)
        if message.on_loss is not None:
            target = message.target
            if target == "kv" or not self.processes[target].paused:
                message.on_loss()
            else:
                self.pending.append(Message(target, f"timeout of {message.label}", message.on_loss))

    def settle(self, steps: int = 200) -> None:
        """Deliver everything deliverable, oldest first, until nothing is pending."""
        for _ in range(steps):
            ready = self.deliverable()
            if not ready:
                return
            self.deliver(ready[0])

    # ------------------------------------------------------------ reading

    def publishers(self) -> list[Process]:
        """Processes whose core would let a frame out right now."""
        return [p for p in self.processes.values() if p.core.may_publish(p.local)]

    def holder_entry(self) -> Entry | None:
        """The live lease entry, if any."""
        return self.kv.live(self.now)
