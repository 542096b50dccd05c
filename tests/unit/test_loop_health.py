"""Stalls of our own event loop on a fake clock: which probes they touch, and when we are healthy."""

from __future__ import annotations

import pytest

from monitor.probing.loop_health import LoopHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def on_time(health: LoopHealth, clock: Clock, seconds: float) -> None:
    """`seconds` of a loop whose timer runs a millisecond late each time."""
    end = clock.now + seconds
    while clock.now + health.period + 0.001 <= end:
        expected = clock.now + health.period
        clock.now = expected + 0.001
        health.tick(expected)


def test_a_probe_that_ran_through_a_stall_is_flagged_and_others_are_not() -> None:
    clock = Clock()
    stalls: list[None] = []
    health = LoopHealth(clock=clock, on_stall=lambda: stalls.append(None))
    on_time(health, clock, 1.0)
    stall_from = clock.now + health.period
    clock.now = stall_from + 3.0  # the process was stopped for three seconds
    health.tick(stall_from)
    assert stalls == [None] and health.lag == pytest.approx(3.0)
    on_time(health, clock, 1.0)
    assert health.stalled_during(stall_from - 0.5, stall_from + 0.1)  # running when it began
    assert health.stalled_during(stall_from + 2.9, stall_from + 3.5)  # ended right after it
    assert not health.stalled_during(stall_from - 2.0, stall_from - 1.0)
    assert not health.stalled_during(clock.now - 0.5, clock.now)


def test_a_timer_overdue_right_now_counts_as_a_stall() -> None:
    clock = Clock()
    health = LoopHealth(clock=clock)
    on_time(health, clock, 1.0)
    clock.now += 2.0  # a probe's callback runs first, before the timer noticed anything
    assert health.stalled_during(clock.now - 0.1, clock.now)
    assert not health.healthy()


def test_healthy_again_a_minute_after_the_last_stall() -> None:
    clock = Clock()
    health = LoopHealth(clock=clock, healthy_after=60.0)
    assert health.healthy()
    stall_from = clock.now + health.period
    clock.now = stall_from + 1.0
    health.tick(stall_from)
    assert not health.healthy()
    on_time(health, clock, 59.0)
    assert not health.healthy()
    on_time(health, clock, 1.5)
    assert health.healthy()
