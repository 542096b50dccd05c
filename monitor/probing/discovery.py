"""Which addresses of a /24 answer, and how reliably: the hitlist the rounds ask.

One bounded pass over the block's 256 addresses (ICMP first, then each TCP port for the silent
ones), then each responsive address asked once more: the share that answers again is the block's
availability A, the likelihood of a reply from an up block in the belief model.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from monitor.probing.liveness import ICMP, Answer, Liveness
from monitor.probing.pacing import PacketBudget

__all__ = ["Hitlist", "discover", "discover_all", "packets_of"]

# blocks discovered side by side: each pass waits out its silent addresses' timeouts, and the
# budget, not this, bounds the packets
BLOCKS_AT_ONCE = 4


@dataclass(frozen=True, slots=True)
class Hitlist:
    prefix: str  # one /24
    addresses: tuple[tuple[str, str], ...]  # (address, method that answered)
    availability: float
    discovered_at: float


def packets_of(method: str, timeout: float) -> int:
    """What one probe costs the budget: the kernel sends a SYN again after a second."""
    return 1 if method == ICMP or timeout <= 1.0 else 2


async def discover(prefix: str, liveness: Liveness, budget: PacketBudget) -> Hitlist:
    addresses = [str(address) for address in ipaddress.IPv4Network(prefix)]
    found: dict[str, str] = {}
    for method in liveness.methods:
        silent = [address for address in addresses if address not in found]
        answers = await _ask(silent, method, liveness, budget)
        found.update({address: method for address, answer in zip(silent, answers, strict=True) if answer})
    hits = tuple(sorted(found.items(), key=lambda item: ipaddress.IPv4Address(item[0])))
    again = await asyncio.gather(*(_ask_one(address, method, liveness, budget) for address, method in hits))
    availability = sum(again) / len(hits) if hits else 0.0
    return Hitlist(prefix, hits, availability, time.time())


async def discover_all(
    prefixes: Iterable[str],
    liveness: Liveness,
    budget: PacketBudget,
    on_found: Callable[[Hitlist], Awaitable[None]],
) -> None:
    """Each of `prefixes`, `BLOCKS_AT_ONCE` at a time under one budget; `on_found` as each ends."""
    todo = iter(prefixes)

    async def worker() -> None:
        for prefix in todo:
            await on_found(await discover(prefix, liveness, budget))

    await asyncio.gather(*(worker() for _ in range(BLOCKS_AT_ONCE)))


async def _ask(addresses: list[str], method: str, liveness: Liveness, budget: PacketBudget) -> list[bool]:
    return list(await asyncio.gather(*(_ask_one(address, method, liveness, budget) for address in addresses)))


async def _ask_one(address: str, method: str, liveness: Liveness, budget: PacketBudget) -> bool:
    await budget.take(packets_of(method, liveness.timeout))
    return await liveness.probe(address, method) is Answer.ALIVE
