"""CPU per scheduled fire: one apscheduler job per target vs one event-loop timer per target.

    python bench/scheduler_overhead.py [--targets 2000] [--interval 10] [--quick]

Both fire a no-op probe for every target once per interval for two intervals, in one process,
one after the other; only the scheduling machinery is measured (process CPU per fire). This is
the measurement behind monitor/scheduler.py's design. apscheduler comes with `pip install .[bench]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.catalog.catalog import Catalog, Target, parse_catalog
from monitor.probing.scheduler import Scheduler, next_slot


def _catalog(count: int, interval: int) -> Catalog:
    lines = [f"defaults: {{interval: {interval}s, timeout: 1s, resolvers: ['127.0.0.1:1']}}", "targets:"]
    lines += [f"  - {{name: t{index:05d}, tcp: 'h:1', country: KZ, category: x}}" for index in range(count)]
    return parse_catalog("\n".join(lines) + "\n")


async def _measure(start: object, fires: list[int], interval: int) -> float:
    await asyncio.sleep(interval)  # the first interval warms up
    before_fires, before_cpu = fires[0], time.process_time()
    await asyncio.sleep(2 * interval)
    return (time.process_time() - before_cpu) / max(1, fires[0] - before_fires)


async def timer_heap(catalog: Catalog, interval: int) -> float:
    fires = [0]

    async def probe(target: Target) -> None:
        fires[0] += 1

    scheduler = Scheduler(probe, max_concurrency=1000)
    scheduler.apply(catalog)
    scheduler.start()
    try:
        return await _measure(scheduler, fires, interval)
    finally:
        await scheduler.stop()


async def apscheduler_jobs(catalog: Catalog, interval: int) -> float:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    fires = [0]

    async def probe(name: str) -> None:
        fires[0] += 1

    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True})
    now = time.time()
    for target in catalog.targets:
        first = datetime.fromtimestamp(next_slot(target.name, interval, now), UTC)
        scheduler.add_job(
            probe,
            IntervalTrigger(seconds=interval, start_date=first - timedelta(seconds=interval)),
            args=(target.name,),
            id=target.name,
        )
    scheduler.start()
    try:
        return await _measure(scheduler, fires, interval)
    finally:
        scheduler.shutdown(wait=False)


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
    ours = asyncio.run(timer_heap(catalog, args.interval))
    try:
        theirs: float | None = asyncio.run(apscheduler_jobs(catalog, args.interval))
    except ImportError:
        theirs = None
    report = {
        "targets": args.targets,
        "interval_seconds": args.interval,
        "timer_heap_us_per_fire": round(ours * 1e6, 1),
        "apscheduler_us_per_fire": round(theirs * 1e6, 1) if theirs else None,
        "ratio_timer_heap_over_apscheduler": round(ours / theirs, 3) if theirs else None,
    }
    print(
        f"{args.targets} targets every {args.interval}s: timer heap {report['timer_heap_us_per_fire']} us "
        f"CPU per fire; apscheduler {report['apscheduler_us_per_fire'] or 'not installed'} us; "
        f"ratio {report['ratio_timer_heap_over_apscheduler']}"
    )
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
