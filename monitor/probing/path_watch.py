"""Traceroutes on apscheduler: whether this system can trace, said once; a trace to each network
every `paths.interval` (its usual path), the first as soon as an address in it is known; traces
on demand when an outage opens. Every probe of
every trace comes out of one packet budget, and at most a few traces run at once.

It owns no judgement: traces go to the caller, which holds what it cannot trust.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.catalog.schema import PathOptions
from monitor.probing.pacing import PacketBudget
from monitor.probing.traceroute import Trace, TraceOptions, trace, unavailable_reason

__all__ = ["PathWatch"]

log = logging.getLogger(__name__)

_USUAL_JOB = "paths:usual"
_AT_ONCE = 8  # traces in flight: each holds one socket and one probe
_LOOK_EVERY = 10.0  # seconds: a network is traced this soon after its first address is known


class PathWatch:
    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        destinations: Callable[[], Mapping[str, str]],  # network ("KZ/AS9198") -> an address in it
        hop_asns: Callable[[Sequence[str]], Awaitable[Mapping[str, int | None]]],
        on_usual: Callable[[str, Trace], None],
        on_trace: Callable[[str, Trace], None] = lambda purpose, trace: None,  # for the metrics
    ) -> None:
        self.scheduler = scheduler
        self._destinations = destinations
        self._hop_asns = hop_asns
        self._on_usual = on_usual
        self._on_trace = on_trace
        self.options = PathOptions()
        self.budget = PacketBudget(self.options.packets_per_second)
        self.unavailable: str | None = None
        self._said = False
        self._at_once = asyncio.Semaphore(_AT_ONCE)
        self._running: set[asyncio.Task[None]] = set()  # rounds of usual traces under way
        self._usual_at: dict[str, float] = {}  # network -> loop time of its last usual trace
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return self.options.enabled and self.unavailable is None

    def apply(self, options: PathOptions) -> None:
        self.options = options
        self.budget.rate = options.packets_per_second
        if not self._said and options.enabled:
            self._said = True
            self.unavailable = unavailable_reason()
            if self.unavailable is None:
                log.info(
                    "paths: UDP traceroute, ICMP answers read from the error queue (no privilege needed)"
                )
            else:
                log.warning("paths: no path evidence: %s", self.unavailable)
        if not self.enabled:
            if self.scheduler.get_job(_USUAL_JOB) is not None:
                self.scheduler.remove_job(_USUAL_JOB)
            return
        self.scheduler.add_job(
            self._trace_usual,
            IntervalTrigger(seconds=min(options.interval, _LOOK_EVERY)),
            id=_USUAL_JOB,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            replace_existing=True,
        )

    async def _trace_usual(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await self._trace_all_usual()
        except asyncio.CancelledError:  # ended by `stop`: quietly (apscheduler would log an error)
            if not self._stopping:
                raise
        finally:
            self._running.discard(task)

    async def _trace_all_usual(self) -> None:
        """A trace to each network not traced for `interval` (or ever)."""
        now = asyncio.get_running_loop().time()
        destinations = dict(self._destinations())
        networks = [
            network
            for network in sorted(destinations)
            if now - self._usual_at.get(network, -math.inf) >= self.options.interval
        ]
        for network in networks:
            self._usual_at[network] = now
        traces = await self.trace_now([destinations[network] for network in networks], "usual")
        for network, found in zip(networks, traces, strict=True):
            if found is not None:
                self._on_usual(network, found)

    async def trace_now(self, addresses: Sequence[str], purpose: str) -> list[Trace | None]:
        """A trace to each address (None where it failed), its hops' ASNs looked up."""
        traces = await asyncio.gather(*(self._one(address, purpose) for address in addresses))
        answering = sorted({hop.address for found in traces if found for hop in found.hops if hop.address})
        asns = dict(await self._hop_asns(answering)) if answering else {}
        return [found.with_asns(asns) if found is not None else None for found in traces]

    async def _one(self, address: str, purpose: str) -> Trace | None:
        options = self.options
        trace_options = TraceOptions(
            options.max_hops, options.hop_timeout, options.attempts, options.silent_hops, options.port
        )
        async with self._at_once:
            try:
                found = await trace(address, trace_options, self.budget.take)
            except OSError as exc:  # out of descriptors, no route from here: nothing about the world
                log.warning("paths: cannot trace %s: %s", address, exc)
                return None
        self._on_trace(purpose, found)
        return found

    async def stop(self) -> None:
        """No more traces; those under way end now."""
        self._stopping = True
        if self.scheduler.get_job(_USUAL_JOB) is not None:
            self.scheduler.remove_job(_USUAL_JOB)
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
