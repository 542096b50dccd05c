"""Per-target up/down state with hysteresis: N failed probes to go down, M successes to come back;
and whether the target is flapping (its state changed too often lately)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.outages.consistency import TamperState
from monitor.outages.slowness import SpeedState
from monitor.probing.failures import Failure
from monitor.probing.result import ProbeResult

__all__ = ["Health", "TargetState"]

_CHANGES_KEPT = 64  # more than any sane flap threshold; bounds the memory of a wild target


class Health(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(slots=True)
class TargetState:
    """`changed_at` dates a change by the first probe of the run that caused it: the first failed
    probe of a streak for down, the first successful one for up (the README's dating convention)."""

    down_after: int
    up_after: int
    health: Health = Health.UNKNOWN
    failures_in_a_row: int = 0
    successes_in_a_row: int = 0
    run_started_at: float | None = None  # first probe of the current run of failures or successes
    changed_at: float | None = None
    last_up_at: float | None = None
    streak_failures: Counter[Failure] = field(default_factory=Counter)
    changes: deque[tuple[float, Health]] = field(default_factory=lambda: deque(maxlen=_CHANGES_KEPT))
    flapping_since: float | None = None
    speed: SpeedState = field(default_factory=SpeedState)  # slow but up
    dns: TamperState = field(default_factory=TamperState)  # its resolvers disagree
    version: int = 0  # bumped by every change, so a snapshot rebuilds only the views that changed

    def observe(self, result: ProbeResult) -> bool:
        """Take one probe result; True when the state after hysteresis changed."""
        at = result.started_at
        if result.success:
            if self.successes_in_a_row == 0:
                self.run_started_at = at
            self.successes_in_a_row += 1
            self.failures_in_a_row = 0
            if self.health is Health.UP:
                self.last_up_at = at
            elif self.successes_in_a_row >= self.up_after:
                self.last_up_at = at
                return self._become(Health.UP, self.run_started_at or at)
            return False
        if self.failures_in_a_row == 0:
            self.run_started_at = at
            self.streak_failures.clear()
        self.failures_in_a_row += 1
        self.successes_in_a_row = 0
        if result.failure is not None:
            self.streak_failures[result.failure] += 1
        if self.health is not Health.DOWN and self.failures_in_a_row >= self.down_after:
            return self._become(Health.DOWN, self.run_started_at or at)
        return False

    def _become(self, health: Health, at: float) -> bool:
        if self.health is not Health.UNKNOWN:  # the first state is a discovery, not a change
            self.changes.append((at, health))
        self.health = health
        self.changed_at = at
        return True

    def forget_changes(self) -> None:
        """A wider outage explains this target's darkness: its changes are no flaps of its own."""
        if self.changes or self.flapping_since is not None:
            self.changes.clear()
            self.flapping_since = None
            self.version += 1

    def update_flapping(self, now: float, window: float, threshold: int) -> float | None:
        """Flapping starts when `threshold` changes happened within `window` before `now` and
        lasts until fewer than half as many did (Nagios' high and low flap thresholds), so a
        slow flap stays one flapping period. Returns when it started (the first change to down
        among those changes), or None."""
        recent = [(at, health) for at, health in self.changes if at >= now - window]
        if self.flapping_since is None and len(recent) >= threshold:
            self.flapping_since = next((at for at, health in recent if health is Health.DOWN), recent[0][0])
        elif self.flapping_since is not None and len(recent) < max(1, threshold // 2):
            self.flapping_since = None
        return self.flapping_since
