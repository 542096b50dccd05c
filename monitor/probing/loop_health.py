"""Whether our own event loop ran on time: a probe that ran through a stall proves nothing.

A timer that should fire every `period` measures how late it actually runs. A lateness beyond
`stall_threshold` is a stall (a blocked loop, a suspended process, a starved machine): a probe
that was running meanwhile may have timed out only because the loop could not read its answer,
so its result is held, not counted. Stalls adding up to `blind_after` seconds make a blind spell,
our own `self` outage. Right after a stall the loop may run a probe's callbacks
before this timer, so a timer overdue *now* counts as a stall too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoopHealth"]

log = logging.getLogger(__name__)


class LoopHealth:
    def __init__(
        self,
        period: float = 0.05,
        stall_threshold: float = 0.25,
        healthy_after: float = 60.0,
        blind_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_stall: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_stall = on_stall
        self.period = period
        self.stall_threshold = stall_threshold
        self.healthy_after = healthy_after
        self.blind_after = blind_after
        self.clock = clock
        self.lag = 0.0  # how late the last tick ran, in seconds
        self._last_tick = clock()
        self._recent: deque[tuple[float, float]] = deque(maxlen=64)  # (from, to), monotonic

    async def run(self) -> None:
        """Tick forever (a task of the daemon)."""
        while True:
            expected = self.clock() + self.period
            await asyncio.sleep(self.period)
            self.tick(expected)

    def tick(self, expected: float) -> None:
        now = self.clock()
        self.lag = max(0.0, now - expected)
        self._last_tick = now
        if self.lag > self.stall_threshold:
            self._on_stall()
            self._recent.append((expected, now))
            log.warning(
                "event loop stalled for %.2fs: results of probes that ran meanwhile are held", self.lag
            )

    def stalled_during(self, start: float, end: float) -> bool:
        """Whether the loop stalled at any time from `start` to `end` (monotonic), or is overdue now."""
        if self._overdue():
            return True
        return any(stall_from < end and start < stall_to for stall_from, stall_to in self._recent)

    def healthy(self) -> bool:
        """No stall within the last `healthy_after` seconds."""
        latest = self._recent[-1][1] if self._recent else None
        return not self._overdue() and (latest is None or self.clock() - latest >= self.healthy_after)

    def blind_spell(self, wall_clock: Callable[[], float] = time.time) -> tuple[float, float] | None:
        """While not healthy and stalled `blind_after` seconds or more in all: the start of the
        first stall of this spell and the end of its latest, in Unix time (our `self` outage).
        Stalls closer than `healthy_after` to each other belong to one spell."""
        if self.healthy() or not self._recent:
            return None
        spell = [self._recent[-1]]
        for stall in reversed(list(self._recent)[:-1]):
            if spell[-1][0] - stall[1] >= self.healthy_after:
                break
            spell.append(stall)
        stalled = sum(end - start for start, end in spell)
        if self._overdue():
            stalled += self.clock() - self._last_tick
        if stalled < self.blind_after:
            return None
        offset = wall_clock() - self.clock()
        latest = self.clock() if self._overdue() else spell[0][1]
        return spell[-1][0] + offset, latest + offset

    def _overdue(self) -> bool:
        """The timer should have run by now: the loop is stalled at this very moment."""
        return self.clock() - self._last_tick > self.period + self.stall_threshold
