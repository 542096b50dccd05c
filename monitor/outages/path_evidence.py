"""Path evidence for the outages that darken a network or more (network, region, the mobile
networks, a country): the usual path of every network, from a trace now and then, and traces at
once to a few of an outage's addresses when it opens, compared with it (outages/paths.py).

An address comes from a target's latest probe or a watched block's hitlist. A trace that
overlapped our uplink going down or our event loop stalling is no evidence: it is dropped, and
an outage's traces are taken again at the next verdict.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import chain, zip_longest

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.catalog.catalog import Catalog
from monitor.catalog.schema import PathOptions
from monitor.outages.analysis import Analyzer
from monitor.outages.asn import IPASNFile
from monitor.outages.block_store import BlockStore
from monitor.outages.outage import Outage, Scope
from monitor.outages.paths import PathBook, stopping_point, summarize
from monitor.probing.discovery import Hitlist
from monitor.probing.latest import LatestResults
from monitor.probing.path_watch import PathWatch
from monitor.probing.traceroute import Trace

__all__ = ["PATH_SCOPES", "PathEvidence"]

log = logging.getLogger(__name__)

PATH_SCOPES = (Scope.NETWORK, Scope.REGION, Scope.MOBILE, Scope.COUNTRY)


class PathEvidence:
    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        analyzer: Analyzer,
        results: LatestResults,
        hitlists: Callable[[], Mapping[str, Hitlist]],
        seen_clearly_since: Callable[[float], bool],  # our uplink and loop fine since (Unix time)
        store: BlockStore | None = None,
        on_trace: Callable[[str, Trace], None] = lambda purpose, trace: None,
    ) -> None:
        self.analyzer = analyzer
        self.results = results
        self.hitlists = hitlists
        self.seen_clearly_since = seen_clearly_since
        self.store = store
        self.book = PathBook()
        self.watch = PathWatch(scheduler, self.usual_destinations, self._hop_asns, self._usual, on_trace)
        self.catalog: Catalog | None = None
        self.ipasn: IPASNFile | None = None
        self._tracing: dict[str, asyncio.Task[None]] = {}  # outage id -> its traces under way
        self._traced: set[str] = set()  # outage ids with path evidence, or given up on
        self._writes: set[asyncio.Task[None]] = set()  # usual traces being saved

    def apply(self, catalog: Catalog) -> None:
        self.catalog = catalog
        options = catalog.paths
        if options.ipasn_file is None:
            self.ipasn = None
        elif self.ipasn is None or self.ipasn.path != options.ipasn_file:
            try:
                self.ipasn = IPASNFile(options.ipasn_file)
            except (OSError, RuntimeError) as exc:  # pyasn: RuntimeError names the bad record
                fallback = f"the previous {self.ipasn.path}" if self.ipasn else "the Team Cymru lookup"
                log.error("paths.ipasn_file %s: %s; hop ASNs come from %s", options.ipasn_file, exc, fallback)
        self.book.set_recent(options.recent)
        self.watch.apply(options)

    async def restore(self) -> None:
        """The usual paths an earlier run traced (a restart during a shutdown still has them)."""
        if self.store is None or self.catalog is None:
            return
        options = self.catalog.paths
        found = await asyncio.to_thread(self.store.traces, time.time() - _kept_for(options))
        for network, traces in found.items():
            for trace in traces:
                self.book.add(network, trace)

    # -- addresses -----------------------------------------------------------------------------

    def _addresses(self, members: Sequence[str] | None = None) -> dict[str, list[str]]:
        """Network ("KZ/AS9198") -> addresses known in it: of targets (their latest probe) and of
        watched blocks (their hitlist); of `members` only (targets and cells) when given."""
        wanted = set(members) if members is not None else None
        found: dict[str, list[str]] = {}
        for name, target in sorted(self.analyzer.targets.items()):
            result = self.results.latest.get(name)
            asn = self.analyzer.asn_of(target)
            if target.is_control or asn is None or result is None or not result.addresses:
                continue
            if wanted is None or name in wanted:
                found.setdefault(f"{target.country}/AS{asn}", []).append(result.addresses[0])
        cell_of = self.analyzer.blocks.cell_of
        for prefix, hitlist in sorted(self.hitlists().items()):
            cell = cell_of.get(prefix)
            if cell is None or not hitlist.addresses or (wanted is not None and cell.name not in wanted):
                continue
            found.setdefault(f"{cell.country}/AS{cell.asn}", []).append(hitlist.addresses[0][0])
        return found

    def usual_destinations(self) -> dict[str, str]:
        return {network: addresses[0] for network, addresses in self._addresses().items()}

    def _country_asns(self, country: str | None) -> set[int]:
        assert self.catalog is not None
        asns = {asn for asn, network in self.catalog.networks.items() if network.country == country}
        asns |= {block.asn for block in self.catalog.blocks if block.country == country}
        targets = self.analyzer.targets.values()
        return asns | {
            asn for target in targets if target.country == country and (asn := self.analyzer.asn_of(target))
        }

    async def _hop_asns(self, addresses: Sequence[str]) -> dict[str, int | None]:
        if self.ipasn is not None:
            return {address: self.ipasn.lookup(address) for address in addresses}
        resolver = self.analyzer.asn_resolver
        if resolver is None:
            return {}
        found = await asyncio.gather(*(resolver.lookup(address) for address in addresses))
        return dict(zip(addresses, found, strict=True))

    # -- traces --------------------------------------------------------------------------------

    def _usual(self, network: str, trace: Trace) -> None:
        """A usual path is learnt in calm times: not while an outage darkens its country."""
        country = network.partition("/")[0]
        calm = not any(
            outage.scope in PATH_SCOPES and outage.country == country
            for outage in self.analyzer.book.open.values()
        )
        if not calm or not self.seen_clearly_since(trace.started_at):
            return
        self.book.add(network, trace)
        if self.store is not None and self.catalog is not None:
            keep_since = time.time() - _kept_for(self.catalog.paths)
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self.store.save_trace, network, trace, keep_since)
            )
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    def trace_new_outages(self) -> None:
        """Start the traces of each open outage of PATH_SCOPES that has none yet."""
        if not self.watch.enabled or not self.analyzer.vantage_online:
            return
        open_outages = list(self.analyzer.book.open.values())
        self._traced &= {outage.id for outage in open_outages}
        for outage in open_outages:
            traced = outage.path or outage.id in self._traced or outage.id in self._tracing
            if outage.scope in PATH_SCOPES and not traced:  # a restart keeps what was traced
                task = asyncio.get_running_loop().create_task(self._trace(outage))
                self._tracing[outage.id] = task
                task.add_done_callback(functools.partial(self._done, outage.id))

    def _done(self, outage_id: str, task: asyncio.Task[None]) -> None:
        del self._tracing[outage_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("paths: tracing outage %s failed", outage_id, exc_info=task.exception())

    async def _trace(self, outage: Outage) -> None:
        assert self.catalog is not None
        picked = _spread(self._addresses(outage.targets), self.catalog.paths.traces_per_outage)
        if not picked:
            self._traced.add(outage.id)  # no address known in it: nothing to trace
            return
        started_at = time.time()
        traces = await self.watch.trace_now([address for _, address in picked], "outage")
        if not self.seen_clearly_since(started_at):
            return  # taken again at the next verdict
        country = self._country_asns(outage.country)
        entries = [
            stopping_point(found, self.book.usual(network), country)
            for (network, _), found in zip(picked, traces, strict=True)
            if found is not None
        ]
        if entries and self.analyzer.book.attach_path(outage.id, summarize(entries, started_at)):
            log.info("%s outage %s: %s", outage.scope.value, outage.key, outage.path["said"])
        self._traced.add(outage.id)

    async def stop(self) -> None:
        await self.watch.stop()
        tracing = list(self._tracing.values())
        for task in tracing:
            task.cancel()
        await asyncio.gather(*tracing, return_exceptions=True)
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=5)


def _kept_for(options: PathOptions) -> float:
    """How long saved traces are kept: enough for `recent` of them, twice over."""
    return 2 * options.recent * options.interval


def _spread(addresses: Mapping[str, list[str]], count: int) -> list[tuple[str, str]]:
    """Up to `count` (network, address) pairs, taking from each network in turn."""
    rounds = zip_longest(
        *([(network, address) for address in found] for network, found in sorted(addresses.items()))
    )
    return [pair for pair in chain.from_iterable(rounds) if pair is not None][:count]
