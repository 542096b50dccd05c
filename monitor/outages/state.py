"""Per-target up/down state with hysteresis: N failed probes to go down, M successes to come back."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.probing.failures import Failure
from monitor.probing.result import ProbeResult

__all__ = ["Health", "TargetState"]


class Health(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(slots=True)
class TargetState:
    down_after: int
    up_after: int
    health: Health = Health.UNKNOWN
    failures_in_a_row: int = 0
    successes_in_a_row: int = 0
    streak_started_at: float | None = None
    changed_at: float | None = None
    last_up_at: float | None = None
    streak_failures: Counter[Failure] = field(default_factory=Counter)

    def observe(self, result: ProbeResult) -> bool:
        """Take one probe result; True when the state after hysteresis changed."""
        at = result.started_at
        if result.success:
            self.successes_in_a_row += 1
            if self.failures_in_a_row:
                self.streak_started_at = at
            self.failures_in_a_row = 0
            if self.health is Health.UP:
                self.last_up_at = at
            elif self.successes_in_a_row >= self.up_after:
                return self._become(Health.UP, at)
            return False
        if self.failures_in_a_row == 0:
            self.streak_started_at = at
            self.streak_failures.clear()
        self.failures_in_a_row += 1
        self.successes_in_a_row = 0
        if result.failure is not None:
            self.streak_failures[result.failure] += 1
        if self.health is not Health.DOWN and self.failures_in_a_row >= self.down_after:
            return self._become(Health.DOWN, self.streak_started_at or at)
        return False

    def _become(self, health: Health, at: float) -> bool:
        if health is Health.UP:
            self.last_up_at = at
        self.health = health
        self.changed_at = at
        return True
