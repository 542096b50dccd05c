"""Puts every target on its own slot within its interval and runs its probes there.

Slots are spread by a stable hash of the target name (as Prometheus spreads scrapes), so a
restart or a reload keeps every target on the slot it had; apscheduler fires the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import Catalog, Target

__all__ = ["Scheduler", "next_slot", "schedule_lag", "slot_offset"]

log = logging.getLogger(__name__)

_JITTER_FRACTION = 0.01
_MAX_JITTER_SECONDS = 0.1


def slot_offset(name: str, interval: float) -> float:
    """Where in each interval `name` is probed: stable across restarts and reloads."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


def next_slot(name: str, interval: float, now: float) -> float:
    """The first slot of `name` at or after `now` (unix seconds)."""
    offset = slot_offset(name, interval)
    return now + (offset - now) % interval


def schedule_lag(name: str, interval: float, now: float) -> float:
    """How long ago the most recent slot of `name` was."""
    return (now - slot_offset(name, interval)) % interval


class Scheduler:
    def __init__(
        self,
        run_probe: Callable[[Target], Awaitable[None]],
        max_concurrency: int,
        on_lag: Callable[[float], None] = lambda lag: None,
        on_skip: Callable[[str], None] = lambda name: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._run_probe = run_probe
        self._on_lag = on_lag
        self._on_skip = on_skip
        self._clock = clock
        self._limit = asyncio.Semaphore(max_concurrency)
        self._targets: dict[str, Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._apscheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        )
        self._apscheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # skips are counted, not logged

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        self._apscheduler.start()

    def apply(self, catalog: Catalog) -> tuple[set[str], set[str], set[str]]:
        """Make the schedule match `catalog`, touching only what changed.

        Returns the names added, removed and changed. A changed target whose interval is the
        same keeps its job (the job reads the current Target when it fires).
        """
        new = {target.name: target for target in catalog.targets}
        added = set(new) - set(self._targets)
        removed = set(self._targets) - set(new)
        changed = {name for name in set(new) & set(self._targets) if new[name] != self._targets[name]}
        rescheduled = added | {name for name in changed if new[name].interval != self._targets[name].interval}
        for name in removed:
            self._apscheduler.remove_job(name)
        self._targets = new
        for name in rescheduled:
            self._schedule(new[name])
        return added, removed, changed

    def _schedule(self, target: Target) -> None:
        first = next_slot(target.name, target.interval, self._clock())
        trigger = IntervalTrigger(
            seconds=target.interval, start_date=datetime.fromtimestamp(first, UTC), timezone=UTC
        )
        self._apscheduler.add_job(
            self._fire, trigger, args=(target.name,), id=target.name, name=target.name, replace_existing=True
        )

    async def _fire(self, name: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            target = self._targets.get(name)
            if target is None:
                return
            async with self._limit:
                self._on_lag(schedule_lag(name, target.interval, self._clock()))
                jitter = random.uniform(0, min(_MAX_JITTER_SECONDS, target.interval * _JITTER_FRACTION))
                await asyncio.sleep(jitter)
                await self._run_probe(target)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by stop(): end quietly instead of letting apscheduler log a traceback.
        finally:
            self._tasks.discard(task)

    def _skipped(self, event: JobSubmissionEvent) -> None:
        self._on_skip(event.job_id)

    async def stop(self, grace: float = 2.0) -> None:
        """Stop firing; give running probes `grace` seconds, then cancel them."""
        self._stopping = True
        with contextlib.suppress(Exception):
            self._apscheduler.shutdown(wait=False)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=grace)
