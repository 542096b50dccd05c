"""Block liveness on apscheduler: the method said once, discovery of each /24's responsive
addresses (at once for blocks without a hitlist, then on the catalog's crontab, at its own low
rate), and a round of every watched block every `round`.

It owns no judgement: each block's result and each round's end go to the daemon, which holds
what it cannot trust (our uplink down, our event loop stalled) before the analysis sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.catalog.schema import LivenessOptions
from monitor.probing.block_rounds import BlockResult, BlockRounds, hitlist_usable
from monitor.probing.discovery import Hitlist, discover_all
from monitor.probing.liveness import Answer, Liveness
from monitor.probing.pacing import PacketBudget

__all__ = ["BlockWatch", "HitlistStore"]

log = logging.getLogger(__name__)

_ROUND_JOB, _DISCOVERY_JOB, _FIRST_DISCOVERY_JOB = (
    "blocks:round",
    "blocks:discovery",
    "blocks:first-discovery",
)


class HitlistStore(Protocol):
    def hitlists(self) -> dict[str, Hitlist]: ...
    def save_hitlist(self, hitlist: Hitlist) -> None: ...


class BlockWatch:
    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        store: HitlistStore | None,
        on_result: Callable[[BlockResult], None],
        on_round: Callable[[float, float], None],  # (started, ended) in Unix time
        on_watched: Callable[[Sequence[str]], None],  # the /24s with a usable hitlist
        on_probe: Callable[[str, Answer], None] = lambda method, answer: None,
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self._on_round = on_round
        self._on_watched = on_watched
        self._on_result = on_result
        self._on_probe = on_probe
        self.liveness: Liveness | None = None
        self.rounds: BlockRounds | None = None
        self.prefixes: tuple[str, ...] = ()
        self.hitlists: dict[str, Hitlist] = {}
        self._queued: set[str] = set()  # waiting for, or in, a discovery pass
        self._running: set[asyncio.Task[None]] = set()  # rounds and discovery passes under way
        self._stopping = False

    def apply(self, prefixes: Sequence[str], options: LivenessOptions) -> None:
        """Watch these /24s as `options` say; nothing (and no job) without blocks."""
        self.prefixes = tuple(prefixes)
        if not prefixes:
            for job in (_ROUND_JOB, _DISCOVERY_JOB, _FIRST_DISCOVERY_JOB):
                if self.scheduler.get_job(job) is not None:
                    self.scheduler.remove_job(job)
            self.rounds = None
            return
        liveness = Liveness.detect(options.method, tuple(options.tcp_ports), options.timeout)
        if self.liveness is None or (liveness.name, liveness.reason) != (
            self.liveness.name,
            self.liveness.reason,
        ):
            log.info("block liveness: %s", liveness.reason)
        self.liveness = liveness
        rounds = BlockRounds(liveness, options, self._on_result, self._on_probe)
        if self.rounds is not None:
            rounds.beliefs = self.rounds.beliefs  # kept across a reload
        self.rounds = rounds
        if not self.hitlists and self.store is not None:
            self.hitlists = self.store.hitlists()
        self._watch()
        self.scheduler.add_job(
            self._round,
            IntervalTrigger(seconds=options.round, timezone=UTC),
            id=_ROUND_JOB,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.discover,
            CronTrigger.from_crontab(options.discovery, timezone=UTC),
            id=_DISCOVERY_JOB,
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )
        missing = [
            prefix for prefix in self.prefixes if prefix not in self.hitlists and prefix not in self._queued
        ]
        if missing:
            self._queued.update(missing)
            log.info(
                "block discovery: %d of %d blocks have no hitlist yet; looking now",
                len(missing),
                len(prefixes),
            )
            self.scheduler.add_job(
                self.discover,
                kwargs={"prefixes": missing},
                id=_FIRST_DISCOVERY_JOB,
                next_run_time=datetime.now(UTC),
                replace_existing=True,
            )

    def _watch(self) -> None:
        watched = {prefix: self.hitlists[prefix] for prefix in self.prefixes if prefix in self.hitlists}
        if self.rounds is not None:
            self.rounds.set_hitlists(watched)
        self._on_watched([prefix for prefix, hitlist in watched.items() if hitlist_usable(hitlist)])

    async def _round(self) -> None:
        rounds = self.rounds
        if rounds is None or not rounds.hitlists:
            return
        started = time.time()
        with self._tracked():
            await rounds.run_round()
            self._on_round(started, time.time())

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Register the running job so that `stop` can end it; its cancellation ends it quietly
        (apscheduler would log it as the job's error)."""
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self._running.discard(task)

    async def stop(self) -> None:
        """End the round or discovery under way: a half round teaches nothing."""
        self._stopping = True
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(set(self._running), timeout=5)

    async def discover(self, prefixes: Sequence[str] | None = None) -> None:
        """One pass over `prefixes` (all the catalog's by default), at the discovery rate; each
        block's hitlist is stored and watched as soon as it is found."""
        liveness, rounds = self.liveness, self.rounds
        if liveness is None or rounds is None:
            return
        with self._tracked():
            await self._discover(liveness, rounds.options, prefixes)

    async def _discover(
        self, liveness: Liveness, options: LivenessOptions, prefixes: Sequence[str] | None
    ) -> None:
        budget = PacketBudget(options.discovery_packets_per_second)
        todo = list(prefixes if prefixes is not None else self.prefixes)
        self._queued.update(todo)
        started = time.monotonic()

        async def found(hitlist: Hitlist) -> None:
            self._queued.discard(hitlist.prefix)
            self.hitlists[hitlist.prefix] = hitlist
            if self.store is not None:
                await asyncio.to_thread(self.store.save_hitlist, hitlist)
            self._watch()

        def still_watched() -> Iterator[str]:
            for prefix in todo:
                if prefix in self.prefixes:
                    yield prefix
                else:  # gone with a reload
                    self._queued.discard(prefix)

        await discover_all(still_watched(), liveness, budget, found)
        usable = sum(
            1 for prefix in todo if prefix in self.hitlists and hitlist_usable(self.hitlists[prefix])
        )
        log.info(
            "block discovery: %d blocks in %.0fs, %d with responsive addresses, %d packets",
            len(todo),
            time.monotonic() - started,
            usable,
            budget.sent,
        )
