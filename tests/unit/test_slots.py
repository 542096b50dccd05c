"""The slot trigger on any clock: slots spread evenly and stable, jitter bounded and never drifting."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from monitor.probing.scheduler import SlotTrigger, next_slot, slot_offset

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


def numbered(count: int, prefix: str = "site") -> list[str]:
    return [f"{prefix}{index:05d}" for index in range(count)]


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


