"""The probe schedule on a real AsyncIOScheduler: never two probes of a target at once, bounded
concurrency, lag, reload, catch-up after a stall (the slots themselves: tests/unit/test_slots.py).

Intervals are 1 s and the targets' slots lie mid-second, so the test's own timing is far from
every slot."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.catalog.catalog import Catalog, Target, parse_catalog
from monitor.probing.scheduler import PROBE_JOB_PREFIX, ProbeSchedule, next_slot, slot_offset


def catalog(names: list[str], interval: str = "1s", timeout: str = "900ms") -> Catalog:
    defaults = f"defaults: {{interval: {interval}, timeout: {timeout}, resolvers: ['127.0.0.1:1']}}"
    lines = [defaults, "targets:"]
    lines += [f"  - {{name: {name}, tcp: 'h:1', country: KZ, category: x}}" for name in names]
    return parse_catalog("\n".join(lines) + "\n")


def numbered(count: int, prefix: str = "site") -> list[str]:
    return [f"{prefix}{index:05d}" for index in range(count)]


def mid_second(count: int) -> list[str]:
    """Names whose slot in a 1 s interval lies between 0.3 s and 0.7 s."""
    names = (f"t{index:05d}" for index in itertools.count())
    return list(itertools.islice((name for name in names if 0.3 <= slot_offset(name, 1.0) < 0.7), count))


class Recorder:
    def __init__(self, hold: bool = False) -> None:
        self.starts: list[tuple[float, str]] = []
        self.running: Counter[str] = Counter()
        self.overlaps = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, target: Target) -> None:
        self.starts.append((time.time(), target.name))
        self.running[target.name] += 1
        self.overlaps += self.running[target.name] > 1
        try:
            await self.release.wait()
        finally:
            self.running[target.name] -= 1


async def _next_whole_second() -> float:
    now = time.time()
    await asyncio.sleep(int(now) + 1 - now)
    return time.time()


class Schedule:
    def __init__(self, recorder: Recorder, max_concurrency: int = 1000) -> None:
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.skipped: list[str] = []
        self.missed: list[str] = []
        self.lags: list[float] = []
        self.probes = ProbeSchedule(
            self.scheduler,
            recorder,
            max_concurrency,
            on_lag=self.lags.append,
            on_skip=self.skipped.append,
            on_missed=self.missed.append,
            max_jitter=0,
        )

    async def __aenter__(self) -> Schedule:
        await _next_whole_second()
        self.scheduler.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.scheduler.pause()
        await self.probes.drain(grace=0.1)
        self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)


async def test_a_probe_still_running_makes_its_next_slot_a_skip_not_a_second_probe() -> None:
    recorder = Recorder(hold=True)
    names = mid_second(20)
    schedule = Schedule(recorder)
    schedule.probes.apply(catalog(names, interval="1s"))
    async with schedule:
        await asyncio.sleep(3.0)  # slots at +0.3..0.7, +1.3..1.7, +2.3..2.7
        assert recorder.overlaps == 0 and len(recorder.starts) == 20
        assert Counter(schedule.skipped) == Counter({name: 2 for name in names})
        recorder.release.set()
        await asyncio.sleep(1.0)
        assert len(recorder.starts) == 40


async def test_concurrency_is_bounded_globally() -> None:
    recorder = Recorder(hold=True)
    schedule = Schedule(recorder, max_concurrency=7)
    schedule.probes.apply(catalog(mid_second(100), interval="1s"))
    async with schedule:
        await asyncio.sleep(0.9)
        assert len(recorder.starts) == 7 and schedule.probes.in_flight == 100
        recorder.release.set()
        await asyncio.sleep(0.05)
        assert len(recorder.starts) == 100


async def test_lag_is_measured_from_the_slot() -> None:
    recorder = Recorder()
    schedule = Schedule(recorder)
    names = mid_second(20)
    schedule.probes.apply(catalog(names, interval="1s"))
    async with schedule:
        started = time.time()
        await asyncio.sleep(0.9)
    assert len(schedule.lags) == 20 and min(schedule.lags) >= 0 and max(schedule.lags) < 0.25
    for at, name in recorder.starts:  # each probe started at its own slot, not at a common wake-up
        assert at - next_slot(name, 1.0, started) == pytest.approx(0, abs=0.25)


async def test_a_reload_reschedules_only_targets_whose_interval_changed() -> None:
    schedule = Schedule(Recorder())
    names = numbered(10)
    schedule.probes.apply(catalog(names, interval="10s", timeout="5s"))
    schedule.scheduler.start(paused=True)
    try:
        before = {job.id: job.next_run_time for job in schedule.scheduler.get_jobs()}
        assert schedule.probes.apply(catalog(names, interval="10s", timeout="5s")) == (set(), set(), set())
        changed = parse_catalog(
            "defaults: {interval: 20s, timeout: 5s, resolvers: ['127.0.0.1:1']}\ntargets:\n"
            "  - {name: site00000, tcp: 'h:2', country: KZ, category: x}\n"
            + "".join(
                f"  - {{name: site{index:05d}, tcp: 'h:1', country: KZ, category: x, interval: 10s}}\n"
                for index in range(1, 9)
            )
            + "  - {name: new, tcp: 'h:1', country: KZ, category: x}\n"
        )
        added, removed, modified = schedule.probes.apply(changed)
        assert (added, removed, modified) == ({"new"}, {"site00009"}, {"site00000"})
        after = {job.id: job for job in schedule.scheduler.get_jobs()}
        assert PROBE_JOB_PREFIX + "site00009" not in after and PROBE_JOB_PREFIX + "new" in after
        for index in range(1, 9):
            job_id = f"{PROBE_JOB_PREFIX}site{index:05d}"
            assert after[job_id].next_run_time == before[job_id]  # untouched: same slot, same job
        assert after[PROBE_JOB_PREFIX + "site00000"].trigger.interval_length == 20
    finally:
        schedule.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)


async def test_after_a_stall_a_target_catches_up_with_one_probe_not_one_per_missed_slot() -> None:
    recorder = Recorder()
    schedule = Schedule(recorder)
    schedule.probes.apply(catalog(mid_second(20), interval="1s"))
    async with schedule:
        await asyncio.sleep(1.0)
        assert len(recorder.starts) == 20
        time.sleep(3.0)  # the process is stalled for three intervals (the event loop cannot run)
        recorder.starts.clear()
        await asyncio.sleep(0.1)
        assert len(recorder.starts) == 20  # one catch-up probe each
        await asyncio.sleep(1.0)
        assert len(recorder.starts) <= 40
    assert schedule.missed == []
