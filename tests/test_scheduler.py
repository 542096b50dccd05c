"""The scheduler on a fake clock: slots spread evenly and stable, never two probes of a target at once."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from monitor.catalog.catalog import Catalog, Target, parse_catalog
from monitor.probing.scheduler import Scheduler, next_slot, slot_offset

T0 = 1_700_000_000.0


class FakeTimer:
    """A wall clock that only moves when the test says so, with a heap of callbacks."""

    def __init__(self, early: float = 0.0) -> None:
        self.now = T0
        self.early = early  # run callbacks this much before their time, as an event loop may
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...], list[bool]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Any:
        cancelled = [False]
        heapq.heappush(self._heap, (when, next(self._order), callback, args, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        for _ in range(200_000):  # a scheduler that re-arms the same slot would spin forever
            if not (self._heap and self._heap[0][0] <= end):
                break
            when, _, callback, args, cancelled = heapq.heappop(self._heap)
            self.now = max(self.now, when - self.early)
            if not cancelled[0]:
                callback(*args)
            await asyncio.sleep(0)
        else:
            raise AssertionError("timer storm: callbacks keep coming due")
        self.now = end
        await asyncio.sleep(0)


def catalog(count: int, interval: str = "60s", prefix: str = "site") -> Catalog:
    lines = [f"defaults: {{interval: {interval}, timeout: 5s, resolvers: ['127.0.0.1:1']}}", "targets:"]
    lines += [
        f"  - {{name: {prefix}{index:05d}, tcp: 'h:1', country: KZ, category: x}}" for index in range(count)
    ]
    return parse_catalog("\n".join(lines) + "\n")


async def settle() -> None:
    """Let woken tasks run to their next await."""
    for _ in range(200):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self, timer: FakeTimer, hold: bool = False) -> None:
        self.timer = timer
        self.starts: list[tuple[float, str]] = []
        self.running: Counter[str] = Counter()
        self.overlaps = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, target: Target) -> None:
        self.starts.append((self.timer.now, target.name))
        self.running[target.name] += 1
        self.overlaps += self.running[target.name] > 1
        try:
            await self.release.wait()
        finally:
            self.running[target.name] -= 1


async def test_targets_are_dispatched_evenly_over_the_interval_once_each() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer)
    scheduler = Scheduler(recorder, max_concurrency=1000, timer=timer, max_jitter=0)
    scheduler.apply(catalog(3000))
    scheduler.start()
    await timer.advance(120)
    per_target = Counter(name for _, name in recorder.starts)
    assert set(per_target.values()) == {2}  # two intervals: every target exactly twice
    per_second = Counter(int(at - T0) for at, _ in recorder.starts)
    assert len(per_second) == 120
    assert max(per_second.values()) <= 3 * 50 and min(per_second.values()) >= 50 / 4  # mean 50 per second
    await scheduler.stop()


async def test_a_probe_still_running_makes_its_next_slot_a_skip_not_a_second_probe() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer, hold=True)
    skipped: list[str] = []
    scheduler = Scheduler(recorder, max_concurrency=1000, timer=timer, on_skip=skipped.append, max_jitter=0)
    scheduler.apply(catalog(50, interval="10s"))
    scheduler.start()
    await timer.advance(35)
    assert recorder.overlaps == 0 and len(recorder.starts) == 50
    expected = {name: int((35 - slot_offset(name, 10.0)) // 10) for _, name in recorder.starts}
    assert Counter(skipped) == Counter(expected)  # every later slot within the 35 s was skipped
    recorder.release.set()
    await settle()
    await timer.advance(10)
    assert len(recorder.starts) == 100
    await scheduler.stop()


async def test_concurrency_is_bounded_globally() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer, hold=True)
    scheduler = Scheduler(recorder, max_concurrency=7, timer=timer, max_jitter=0)
    scheduler.apply(catalog(100, interval="10s"))
    scheduler.start()
    await timer.advance(10)
    assert len(recorder.starts) == 7 and scheduler.in_flight == 100
    recorder.release.set()
    await settle()
    assert len(recorder.starts) == 100
    await scheduler.stop()


async def test_lag_is_measured_from_the_slot() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer)
    lags: list[float] = []
    scheduler = Scheduler(recorder, max_concurrency=10, timer=timer, on_lag=lags.append, max_jitter=0)
    scheduler.apply(catalog(20, interval="10s"))
    scheduler.start()
    await timer.advance(10)
    assert len(lags) == 20 and max(lags) < 0.01


async def test_a_reload_reschedules_only_targets_whose_interval_changed() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer)
    scheduler = Scheduler(recorder, max_concurrency=100, timer=timer, max_jitter=0)
    scheduler.apply(catalog(10, interval="10s"))
    scheduler.start()
    await timer.advance(10)
    keep = catalog(10, interval="10s")
    changed = parse_catalog(
        "defaults: {interval: 20s, timeout: 5s, resolvers: ['127.0.0.1:1']}\ntargets:\n"
        "  - {name: site00000, tcp: 'h:2', country: KZ, category: x}\n"
        + "".join(
            f"  - {{name: site{index:05d}, tcp: 'h:1', country: KZ, category: x, interval: 10s}}\n"
            for index in range(1, 9)
        )
        + "  - {name: new, tcp: 'h:1', country: KZ, category: x}\n"
    )
    assert scheduler.apply(keep) == (set(), set(), set())
    added, removed, modified = scheduler.apply(changed)
    assert (added, removed, modified) == ({"new"}, {"site00009"}, {"site00000"})
    recorder.starts.clear()
    await timer.advance(40)
    counts = Counter(name for _, name in recorder.starts)
    assert counts["site00000"] == 2 and counts["new"] == 2 and counts["site00001"] == 4
    assert "site00009" not in counts
    await scheduler.stop()


@pytest.mark.parametrize("interval", [1.0, 15.0, 60.0, 3600.0])
def test_slots_are_stable_and_inside_the_interval(interval: float) -> None:
    for name in ("kazinform", "akorda", "kz-registry-dns"):
        offset = slot_offset(name, interval)
        assert 0 <= offset < interval and offset == slot_offset(name, interval)
        slot = next_slot(name, interval, T0)
        assert T0 < slot <= T0 + interval and (slot - offset) % interval == pytest.approx(0, abs=1e-6)


async def test_jitter_delays_a_slot_by_at_most_a_hundred_milliseconds() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer)
    lags: list[float] = []
    scheduler = Scheduler(recorder, max_concurrency=100, timer=timer, on_lag=lags.append)
    names = catalog(200)
    scheduler.apply(names)
    scheduler.start()
    await timer.advance(61)
    delays = [(at - slot_offset(name, 60.0)) % 60.0 for at, name in recorder.starts]
    assert all(0 <= delay <= 0.1 for delay in delays)
    assert len(set(delays)) > 100
    await scheduler.stop()


async def test_a_timer_that_fires_a_little_early_does_not_probe_twice() -> None:
    timer = FakeTimer(early=0.001)
    recorder = Recorder(timer)
    scheduler = Scheduler(recorder, max_concurrency=100, timer=timer, max_jitter=0)
    scheduler.apply(catalog(50, interval="10s"))
    scheduler.start()
    await timer.advance(30)
    assert Counter(Counter(name for _, name in recorder.starts).values()) == Counter({3: 50})
    await scheduler.stop()


async def test_after_a_stall_a_target_catches_up_with_one_probe_not_one_per_missed_slot() -> None:
    timer = FakeTimer()
    recorder = Recorder(timer)
    scheduler = Scheduler(recorder, max_concurrency=100, timer=timer, max_jitter=0)
    scheduler.apply(catalog(20, interval="10s"))
    scheduler.start()
    await timer.advance(10)
    timer.now += 100  # the process was suspended for ten intervals
    recorder.starts.clear()
    await timer.advance(0)
    assert len(recorder.starts) == 20
    await timer.advance(10)
    assert len(recorder.starts) <= 60
    await scheduler.stop()
