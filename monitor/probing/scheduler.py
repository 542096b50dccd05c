"""Puts every target on its own slot within its interval and probes it there, through apscheduler.

One apscheduler job per target (`probe:<name>`), on a `SlotTrigger`: slots are spread by a stable
hash of the target name (as Prometheus spreads scrapes), so a restart or a reload keeps every
target on the slot it had. apscheduler gives the rest: `max_instances=1` (a probe still running
makes its next slot a counted skip), `coalesce=True` with a misfire grace of one interval (a
stalled process catches up with one probe, not one per missed slot), and jobs added, removed and
rescheduled one by one on reload. Its cost against a bare event-loop timer per target is in
bench/scheduler_overhead.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED, JobEvent
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.catalog.catalog import Catalog, Target

__all__ = [
    "PROBE_JOB_PREFIX",
    "ProbeSchedule",
    "SlotTrigger",
    "next_slot",
    "quiet_apscheduler",
    "slot_offset",
]

PROBE_JOB_PREFIX = "probe:"
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


def quiet_apscheduler() -> None:
    """apscheduler logs every run at INFO and every skip or misfire at WARNING; at thousands of
    targets that is a flood. Skips and misfires are counted in metrics instead; errors still log."""
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


class SlotTrigger(IntervalTrigger):
    """An interval trigger that fires on the target's slots, each time with fresh jitter.

    apscheduler 3.x computes a fire time from the previous one *with* its jitter, so jitter
    accumulates and targets drift off their slots (by half the jitter per interval on average).
    Here the next fire time is always the next slot of the grid, plus its own jitter."""

    def __init__(self, name: str, interval: float, max_jitter: float) -> None:
        jitter = min(max_jitter, interval * _JITTER_FRACTION)
        super().__init__(seconds=interval, timezone=UTC, jitter=jitter or None)
        self.name = name

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        interval = self.interval_length
        if previous_fire_time is None:
            slot = next_slot(self.name, interval, now.timestamp())
        else:
            # The slot that fired is the one nearest to its fire time: jitter (at most 1 % of the
            # interval) and datetime's microseconds must never make it "the next slot" again.
            offset = slot_offset(self.name, interval)
            fired = round((previous_fire_time.timestamp() - offset) / interval)
            slot = offset + (fired + 1) * interval
        if self.jitter:
            slot += random.uniform(0, self.jitter)
        return datetime.fromtimestamp(slot, UTC)


class ProbeSchedule:
    """The probe jobs of the running catalog on an apscheduler scheduler, with bounded concurrency."""

    def __init__(
        self,
        scheduler: BaseScheduler,
        run_probe: Callable[[Target], Awaitable[None]],
        max_concurrency: int,
        on_lag: Callable[[float], None] = lambda lag: None,
        on_skip: Callable[[str], None] = lambda name: None,
        on_missed: Callable[[str], None] = lambda name: None,
        max_jitter: float = _MAX_JITTER_SECONDS,
    ) -> None:
        self._scheduler = scheduler
        self._run_probe = run_probe
        self._on_lag = on_lag
        self._on_skip = on_skip
        self._on_missed = on_missed
        self._max_jitter = max_jitter
        self._limit = asyncio.Semaphore(max_concurrency)
        self._targets: dict[str, Target] = {}
        self._due: dict[str, float] = {}  # the run time apscheduler submitted, until the probe starts
        self._running: dict[str, asyncio.Task[None]] = {}
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        scheduler.add_listener(self._not_run, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def apply(self, catalog: Catalog) -> tuple[set[str], set[str], set[str]]:
        """Make the jobs match `catalog`, touching only what changed.

        Returns the names added, removed and changed. A changed target whose interval is the
        same keeps its job and slot (its probe reads the current Target when it fires)."""
        new = {target.name: target for target in catalog.targets}
        added = set(new) - set(self._targets)
        removed = set(self._targets) - set(new)
        changed = {name for name in set(new) & set(self._targets) if new[name] != self._targets[name]}
        rescheduled = added | {name for name in changed if new[name].interval != self._targets[name].interval}
        for name in removed:
            self._scheduler.remove_job(PROBE_JOB_PREFIX + name)
        self._targets = new
        for name in rescheduled:
            self._scheduler.add_job(
                self._run,
                SlotTrigger(name, new[name].interval, self._max_jitter),
                args=(name,),
                id=PROBE_JOB_PREFIX + name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(new[name].interval)),
                replace_existing=True,
            )
        return added, removed, changed

    def _submitted(self, event: JobEvent) -> None:
        if event.job_id.startswith(PROBE_JOB_PREFIX):
            self._due[event.job_id[len(PROBE_JOB_PREFIX) :]] = event.scheduled_run_times[-1].timestamp()

    def _not_run(self, event: JobEvent) -> None:
        if not event.job_id.startswith(PROBE_JOB_PREFIX):
            return
        name = event.job_id[len(PROBE_JOB_PREFIX) :]
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self._on_skip(name)  # the previous probe of this target is still running
        else:
            self._due.pop(name, None)
            self._on_missed(name)

    async def _run(self, name: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running[name] = task
        try:
            async with self._limit:
                due = self._due.pop(name, None)
                target = self._targets.get(name)
                if target is None:
                    return  # removed by a reload while waiting for a slot in the limit
                if due is not None:
                    self._on_lag(max(0.0, datetime.now(UTC).timestamp() - due))
                await self._run_probe(target)
        except asyncio.CancelledError:
            pass  # cancelled by drain() on the way out; apscheduler would log it as a job error
        finally:
            self._running.pop(name, None)

    async def drain(self, grace: float = 2.0) -> None:
        """Give running probes `grace` seconds, then cancel them (pause the scheduler first)."""
        tasks = set(self._running.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(pending, timeout=grace)
