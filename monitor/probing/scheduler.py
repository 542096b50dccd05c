"""Puts every target on its own slot within its interval and runs its probes there.

Slots are spread by a stable hash of the target name (as Prometheus spreads scrapes), so a
restart or a reload keeps every target on the slot it had. Each target holds one timer in the
event loop's heap, re-armed for its next slot when it fires: a fire costs a heap push, where one
apscheduler job per target cost about twice the CPU per fire (bench/scheduler_overhead.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from monitor.catalog.catalog import Catalog, Target

__all__ = ["LoopTimer", "Scheduler", "Timer", "next_slot", "slot_offset"]

_JITTER_FRACTION = 0.01
_MAX_JITTER_SECONDS = 0.1


def slot_offset(name: str, interval: float) -> float:
    """Where in each interval `name` is probed: stable across restarts and reloads."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


def next_slot(name: str, interval: float, now: float) -> float:
    """The first slot of `name` strictly after `now` (unix seconds)."""
    slot = now + (slot_offset(name, interval) - now) % interval
    return slot if slot > now else slot + interval


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timer(Protocol):
    """Wall-clock time and callbacks at wall-clock times; a fake one drives the tests."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Cancellable: ...


class LoopTimer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def time(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Cancellable:
        return self._loop.call_at(self._loop.time() + (when - time.time()), callback, *args)


class Scheduler:
    def __init__(
        self,
        run_probe: Callable[[Target], Awaitable[None]],
        max_concurrency: int,
        on_lag: Callable[[float], None] = lambda lag: None,
        on_skip: Callable[[str], None] = lambda name: None,
        timer: Timer | None = None,
        max_jitter: float = _MAX_JITTER_SECONDS,
    ) -> None:
        self._run_probe = run_probe
        self._on_lag = on_lag
        self._on_skip = on_skip
        self._timer = timer
        self._max_jitter = max_jitter
        self._limit = asyncio.Semaphore(max_concurrency)
        self._targets: dict[str, Target] = {}
        self._timers: dict[str, Cancellable] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._started = False

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def start(self) -> None:
        if self._timer is None:
            self._timer = LoopTimer(asyncio.get_running_loop())
        self._started = True
        now = self._timer.time()
        for target in self._targets.values():
            self._arm(target.name, target.interval, now)

    def apply(self, catalog: Catalog) -> tuple[set[str], set[str], set[str]]:
        """Make the schedule match `catalog`, touching only what changed.

        Returns the names added, removed and changed. A changed target whose interval is the
        same keeps its slot (its probe reads the current Target when it fires).
        """
        new = {target.name: target for target in catalog.targets}
        added = set(new) - set(self._targets)
        removed = set(self._targets) - set(new)
        changed = {name for name in set(new) & set(self._targets) if new[name] != self._targets[name]}
        rescheduled = added | {name for name in changed if new[name].interval != self._targets[name].interval}
        for name in removed:
            self._disarm(name)
        self._targets = new
        if self._started:
            now = self._timer.time()  # type: ignore[union-attr]
            for name in rescheduled:
                self._disarm(name)
                self._arm(name, new[name].interval, now)
        return added, removed, changed

    def _arm(self, name: str, interval: float, after: float) -> None:
        """Arm the first slot of `name` strictly after `after`.

        Re-arming from the slot that fired, never from the clock, matters: the event loop may
        run a timer a clock-resolution early, and "the next slot after now" would then be the
        same slot again, probing the target twice."""
        assert self._timer is not None
        slot = next_slot(name, interval, after)
        jitter = random.uniform(0, min(self._max_jitter, interval * _JITTER_FRACTION))
        self._timers[name] = self._timer.call_at(slot + jitter, self._fire, name, slot, jitter)

    def _disarm(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _fire(self, name: str, slot: float, jitter: float) -> None:
        target = self._targets.get(name)
        if target is None:
            return
        # From the slot that fired; from the clock only after a stall of half an interval or more,
        # so a suspended process catches up with one probe, not one per missed slot.
        now = self._timer.time()  # type: ignore[union-attr]
        self._arm(name, target.interval, slot if now - slot < target.interval / 2 else now)
        due = slot + jitter
        if name in self._running:
            self._on_skip(name)  # the previous probe of this target is still running
            return
        task = asyncio.get_running_loop().create_task(self._run(target, due))
        self._running[name] = task
        task.add_done_callback(lambda _: self._running.pop(name, None))

    async def _run(self, target: Target, due: float) -> None:
        assert self._timer is not None
        async with self._limit:
            self._on_lag(max(0.0, self._timer.time() - due))
            await self._run_probe(target)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop firing; give running probes `grace` seconds, then cancel them."""
        self._started = False
        for name in list(self._timers):
            self._disarm(name)
        tasks = set(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(pending, timeout=grace)
