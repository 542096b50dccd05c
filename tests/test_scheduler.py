"""The probe schedule: slots spread evenly and stable, never two probes of a target at once.

The slot trigger is tested directly (pure, any clock); what apscheduler does with it (skips,
concurrency, reload, catch-up after a stall) runs on a real AsyncIOScheduler with 1 s intervals,
on targets whose slots lie mid-second, so the test's own timing is far from every slot.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.catalog.catalog import Catalog, Target, parse_catalog
from monitor.probing.scheduler import PROBE_JOB_PREFIX, ProbeSchedule, SlotTrigger, next_slot, slot_offset

T0 = 1_700_000_000.0


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def fire_times(trigger: IntervalTrigger, start: float, end: float) -> list[float]:
    """What apscheduler would fire from `start` to `end`: each time from the previous one."""
    times: list[float] = []
    fire = trigger.get_next_fire_time(None, _at(start))
    while fire is not None and fire.timestamp() <= end:
        times.append(fire.timestamp())
        fire = trigger.get_next_fire_time(fire, fire)
    return times


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


# -- the trigger ------------------------------------------------------------------------------


def test_targets_are_dispatched_evenly_over_the_interval_once_each() -> None:
    starts = [
        (at, name)
        for name in numbered(3000)
        for at in fire_times(SlotTrigger(name, 60.0, max_jitter=0), T0, T0 + 120)
    ]
    per_target = Counter(name for _, name in starts)
    assert set(per_target.values()) == {2}  # two intervals: every target exactly twice
    per_second = Counter(int(at - T0) for at, _ in starts)
    assert len(per_second) == 120
    assert max(per_second.values()) <= 3 * 50 and min(per_second.values()) >= 50 / 4  # mean 50 per second


@pytest.mark.parametrize("interval", [1.0, 15.0, 60.0, 3600.0])
def test_slots_are_stable_and_inside_the_interval(interval: float) -> None:
    for name in ("kazinform", "akorda", "kz-registry-dns"):
        offset = slot_offset(name, interval)
        assert 0 <= offset < interval and offset == slot_offset(name, interval)
        slot = next_slot(name, interval, T0)
        assert T0 < slot <= T0 + interval and (slot - offset) % interval == pytest.approx(0, abs=1e-6)
        first = SlotTrigger(name, interval, max_jitter=0).get_next_fire_time(None, _at(T0))
        assert first.timestamp() == pytest.approx(slot)


def test_jitter_delays_a_slot_by_at_most_a_hundred_milliseconds_and_never_accumulates() -> None:
    delays = []
    for name in numbered(200):
        times = fire_times(SlotTrigger(name, 60.0, max_jitter=0.1), T0, T0 + 60 * 1000)
        assert len(times) in (999, 1000)  # the last slot may fall past the end with its jitter
        delays += [(at - slot_offset(name, 60.0) + 1) % 60.0 - 1 for at in times]
    assert all(-1e-5 <= delay <= 0.1 + 1e-5 for delay in delays)  # on its slot after 1000 intervals
    assert len(set(delays)) > 100


def test_apschedulers_own_interval_trigger_would_drift_off_the_slots() -> None:
    """Why SlotTrigger exists: IntervalTrigger adds each fire's jitter to the next one."""
    start = next_slot("kazinform", 60.0, T0)
    plain = IntervalTrigger(seconds=60, start_date=_at(start), jitter=0.1, timezone=UTC)
    times = fire_times(plain, T0, T0 + 60 * 1000)
    assert (times[-1] - start) % 60.0 > 1.0  # tens of seconds after a thousand intervals


def test_the_next_fire_after_a_slot_is_the_next_slot_never_the_same_one() -> None:
    trigger = SlotTrigger("kazinform", 10.0, max_jitter=0)
    slot = next_slot("kazinform", 10.0, T0)
    for fired_at in (slot, slot + 0.000_001, slot + 0.05):  # on time, a hair late, late
        following = trigger.get_next_fire_time(_at(fired_at), _at(fired_at))
        assert following.timestamp() == pytest.approx(slot + 10)


# -- on a real apscheduler ----------------------------------------------------------------------


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
