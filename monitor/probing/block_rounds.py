"""Every block once a round, on its own slot, under one packet budget (Trinocular's rounds).

A block's slot in the round comes from a stable hash of its prefix (as targets' slots do), so
its probes are spread over the round and a restart keeps them there. Within a block the probes
are sequential and adaptive (`RoundOutcome`); across blocks the `PacketBudget` is the only
limit, so a round that cannot finish within its length runs long rather than burst. A block
whose probe fails on our side keeps its belief: nothing was learned.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.catalog.schema import LivenessOptions
from monitor.probing.belief import BlockState, RoundOutcome, initial_belief, state_of
from monitor.probing.discovery import Hitlist, packets_of
from monitor.probing.liveness import Answer, Liveness
from monitor.probing.pacing import PacketBudget
from monitor.probing.scheduler import slot_offset

__all__ = ["BlockResult", "BlockRounds"]

_SPREAD = 0.9  # slots over the first 90 % of a round, so its last block ends within the round


@dataclass(frozen=True, slots=True)
class BlockResult:
    prefix: str
    belief: float
    probes: int
    replies: int
    started_at: float  # unix seconds
    ended_at: float
    local: bool = False  # a probe failed on our side: the round taught nothing about the block

    @property
    def state(self) -> BlockState:
        return state_of(self.belief)


class BlockRounds:
    def __init__(
        self,
        liveness: Liveness,
        options: LivenessOptions,
        on_result: Callable[[BlockResult], None],
        on_probe: Callable[[str, Answer], None] = lambda method, answer: None,
    ) -> None:
        self.liveness = liveness
        self.options = options
        self.budget = PacketBudget(options.packets_per_second)
        self._on_result = on_result
        self._on_probe = on_probe
        self.hitlists: dict[str, Hitlist] = {}
        self.beliefs: dict[str, float] = {}
        self._cursor: dict[str, itertools.cycle[tuple[str, str]]] = {}

    def set_hitlists(self, hitlists: dict[str, Hitlist]) -> None:
        """Watch these blocks; a block's belief survives a new hitlist, not its removal."""
        usable = {prefix: hitlist for prefix, hitlist in hitlists.items() if hitlist_usable(hitlist)}
        self.beliefs = {prefix: belief for prefix, belief in self.beliefs.items() if prefix in usable}
        self._cursor = {
            prefix: self._cursor[prefix]
            if prefix in self._cursor and self.hitlists.get(prefix) == hitlist
            else itertools.cycle(_rotated(hitlist))
            for prefix, hitlist in usable.items()
        }
        self.hitlists = usable

    async def run_round(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        length = self.options.round * _SPREAD
        order = sorted(self._cursor, key=lambda prefix: slot_offset(prefix, length))
        tasks = []
        for prefix in order:
            delay = start + slot_offset(prefix, length) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(self._probe_block(prefix)))
        if tasks:
            await asyncio.gather(*tasks)

    async def _probe_block(self, prefix: str) -> None:
        hitlist, cursor = self.hitlists.get(prefix), self._cursor.get(prefix)
        if hitlist is None or cursor is None:
            return  # gone with a reload
        before = self.beliefs.get(prefix, initial_belief())
        outcome = RoundOutcome(before, hitlist.availability, self.options.max_probes_per_block)
        started = time.time()
        local = False
        asking = True
        while asking:
            address, method = next(cursor)
            await self.budget.take(packets_of(method, self.liveness.timeout))
            answer = await self.liveness.probe(address, method)
            self._on_probe(method, answer)
            local = answer is Answer.LOCAL
            asking = not local and outcome.observe(answer is Answer.ALIVE)
        belief = before if local else outcome.belief
        self.beliefs[prefix] = belief
        self._on_result(
            BlockResult(prefix, belief, outcome.probes, outcome.replies, started, time.time(), local)
        )


def hitlist_usable(hitlist: Hitlist) -> bool:
    """A block nobody answered in at discovery cannot be watched (Trinocular leaves it out)."""
    return bool(hitlist.addresses) and hitlist.availability > 0


def _rotated(hitlist: Hitlist) -> list[tuple[str, str]]:
    """The hitlist from a stable, prefix-dependent start: consecutive rounds ask other addresses."""
    addresses = list(hitlist.addresses)
    start = int(slot_offset(hitlist.prefix, len(addresses)))
    return addresses[start:] + addresses[:start]
