"""A packet budget that is never exceeded: each packet gets its own instant, 1/rate apart."""

from __future__ import annotations

import asyncio

__all__ = ["PacketBudget"]


class PacketBudget:
    """No burst: after a quiet minute the next packets are still paced, so a round that starts
    late never floods the networks it watches."""

    def __init__(self, packets_per_second: float) -> None:
        self.rate = packets_per_second
        self._next = 0.0
        self.sent = 0

    async def take(self, packets: int = 1) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next)
        self._next = start + packets / self.rate
        self.sent += packets
        if start > now:
            await asyncio.sleep(start - now)
