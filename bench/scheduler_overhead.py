"""CPU per scheduled fire: the daemon's apscheduler jobs vs a bare event-loop timer per target.

    python bench/scheduler_overhead.py [--targets 2000] [--interval 10] [--quick]

Both fire a no-op probe for every target once per interval for two intervals (after one to warm
up), in one process, one after the other; only the scheduling machinery is measured (process CPU
per fire). "apscheduler" is what the daemon runs: monitor.probing.scheduler.ProbeSchedule on an
AsyncIOScheduler (one job per target, SlotTrigger, max_instances=1, coalesce, events for lag and
skips). "bare timer" is the least any scheduler can cost: one loop.call_at per target, re-armed
for its next slot when it fires (the daemon's own scheduler before it moved to apscheduler).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.catalog.catalog import Catalog, Target, parse_catalog
from monitor.probing.scheduler import ProbeSchedule, next_slot, quiet_apscheduler


def _catalog(count: int, interval: int) -> Catalog:
    lines = [f"defaults: {{interval: {interval}s, timeout: 1s, resolvers: ['127.0.0.1:1']}}", "targets:"]
    lines += [f"  - {{name: t{index:05d}, tcp: 'h:1', country: KZ, category: x}}" for index in range(count)]
    return parse_catalog("\n".join(lines) + "\n")


async def _measure(fires: list[int], interval: int) -> float:
    await asyncio.sleep(interval)  # the first interval warms up
    before_fires, before_cpu = fires[0], time.process_time()
    await asyncio.sleep(2 * interval)
    return (time.process_time() - before_cpu) / max(1, fires[0] - before_fires)


async def bare_timers(catalog: Catalog, interval: int) -> float:
    loop = asyncio.get_running_loop()
    fires = [0]
    handles: dict[str, asyncio.TimerHandle] = {}
    running: set[asyncio.Task[None]] = set()

    async def probe(target: Target) -> None:
        fires[0] += 1

    def fire(target: Target, slot: float) -> None:
        arm(target, slot)
        task = loop.create_task(probe(target))
        running.add(task)
        task.add_done_callback(running.discard)

    def arm(target: Target, after: float) -> None:
        slot = next_slot(target.name, interval, after)
        handles[target.name] = loop.call_at(loop.time() + slot - time.time(), fire, target, slot)

    now = time.time()
    for target in catalog.targets:
        arm(target, now)
    try:
        return await _measure(fires, interval)
    finally:
        for handle in handles.values():
            handle.cancel()


async def apscheduler_jobs(catalog: Catalog, interval: int) -> float:
    quiet_apscheduler()
    fires = [0]

    async def probe(target: Target) -> None:
        fires[0] += 1

    scheduler = AsyncIOScheduler(timezone=UTC)
    schedule = ProbeSchedule(scheduler, probe, max_concurrency=1000, on_lag=lambda lag: None)
    schedule.apply(catalog)
    scheduler.start()
    try:
        return await _measure(fires, interval)
    finally:
        scheduler.pause()
        await schedule.drain()
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--interval", type=int, default=10, help="seconds")
    parser.add_argument("--quick", action="store_true", help="300 targets, 2 s interval")
    parser.add_argument("--json-out", default="bench/results/scheduler_overhead.json")
    args = parser.parse_args()
    if args.quick:
        args.targets, args.interval = 300, 2
    catalog = _catalog(args.targets, args.interval)
    ours = asyncio.run(apscheduler_jobs(catalog, args.interval))
    bare = asyncio.run(bare_timers(catalog, args.interval))
    fires_per_second = args.targets / args.interval
    report = {
        "targets": args.targets,
        "interval_seconds": args.interval,
        "apscheduler_us_per_fire": round(ours * 1e6, 1),
        "bare_timer_us_per_fire": round(bare * 1e6, 1),
        "ratio_apscheduler_over_bare_timer": round(ours / bare, 3),
        "apscheduler_core_at_10000_targets_per_minute": round(ours * 10_000 / 60, 4),
    }
    print(
        f"{args.targets} targets every {args.interval}s ({fires_per_second:g} fires/s): apscheduler "
        f"{report['apscheduler_us_per_fire']} us CPU per fire, "
        f"bare timer {report['bare_timer_us_per_fire']} us; "
        f"ratio {report['ratio_apscheduler_over_bare_timer']}; at 10,000 targets per minute apscheduler "
        f"costs {report['apscheduler_core_at_10000_targets_per_minute']:.2%} of a core"
    )
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
