"""The vantage gate: can we see out at all? Judged on every control result, because while we
cannot, the results of every other target are held rather than counted."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from monitor.outages.state import Health, TargetState

__all__ = ["VantageGate"]

log = logging.getLogger(__name__)


class VantageGate:
    """Offline when more than `1 - quorum` of the controls fail (one failed probe is enough: holding
    results is cheap, counting our own broken uplink as the world's is not); online again when a
    `quorum` of them is up. Both changes are dated like every outage: by the first probe of the
    run of the control that crossed the threshold."""

    def __init__(self, quorum: float, now: float) -> None:
        self.quorum = quorum
        self.online = True
        self.changed_at = now

    def update(self, controls: Sequence[TargetState]) -> None:
        if not controls:
            return
        needed = self.quorum * len(controls)
        failing = sorted(state.run_started_at or 0.0 for state in controls if state.failures_in_a_row > 0)
        up = sorted(
            state.run_started_at or 0.0
            for state in controls
            if state.health is Health.UP and state.failures_in_a_row == 0
        )
        if self.online and len(failing) > len(controls) - needed:
            self.online = False
            self.changed_at = failing[int(len(controls) - needed)]
            log.warning(
                "vantage point offline: %d of %d controls abroad failing; holding target states",
                len(failing),
                len(controls),
            )
        elif not self.online and len(up) >= needed:
            self.online = True
            self.changed_at = max(up[math.ceil(needed) - 1], self.changed_at)
            log.warning("vantage point back online")
