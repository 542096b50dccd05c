"""Slow but up: a target's probe time against the median of its own recent normal probes (the
baseline IODA and Cloudflare compare against), with the same hysteresis as up and down.

A slow probe is a successful one; a failed probe is darkness, never slowness. Slow probes do not
enter the baseline, so a throttle lasting hours does not become the new normal.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from monitor.catalog.schema import AnalysisOptions

__all__ = ["SpeedState"]

_MIN_BASELINE_PROBES = 5  # fewer normal probes than this: no baseline yet, nothing is slow


@dataclass(slots=True)
class SpeedState:
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=20))  # normal probes' seconds
    slow: bool = False
    slow_since: float | None = None  # first slow probe of the run that made it slow
    normal_since: float | None = None  # first normal probe after that
    _run: int = 0  # slow probes in a row while fast, normal ones in a row while slow
    _run_started_at: float | None = None
    _baseline: float | None = None  # the median, kept: every verdict reads it for every target
    last_seconds: float | None = None

    def baseline(self) -> float | None:
        return self._baseline

    def observe(
        self, at: float, seconds: float, options: AnalysisOptions, slow_after: int, normal_after: int
    ) -> bool:
        """One successful probe that took `seconds`; True when the target became slow or normal."""
        window = options.slow_baseline_probes
        if self.samples.maxlen != window:
            self.samples = deque(self.samples, maxlen=window)
        self.last_seconds = seconds
        baseline = self._baseline
        is_slow = baseline is not None and seconds > max(
            options.slow_factor * baseline, baseline + options.slow_min_seconds
        )
        if not is_slow:
            self.samples.append(seconds)
            if len(self.samples) >= min(_MIN_BASELINE_PROBES, window):
                self._baseline = statistics.median(self.samples)
        if is_slow == self.slow:
            self._run = 0
            return False
        if self._run == 0:
            self._run_started_at = at
        self._run += 1
        if self._run < (slow_after if is_slow else normal_after):
            return False
        self.slow, self._run = is_slow, 0
        self.slow_since = self._run_started_at if is_slow else None
        self.normal_since = None if is_slow else self._run_started_at
        return True
