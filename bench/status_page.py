#!/usr/bin/env python3
"""The cost of the status page at `/` against `/api/status` over the same data, through the real
aiohttp app on loopback.

    python bench/status_page.py [--targets 1000] [--outages 200] [--requests 30] [--quick]

No probing: the catalog of the synthetic lab (`monitor.lab.presets.synthetic`, never started) is
fed a round of results on a fake clock with one network dark and a journal of `--outages` in the
last 7 days; then `/`, `/` with `--web.public`, and `/api/status` are each fetched `--requests`
times in turn. `/api/status` is the reference: the same targets and verdicts as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from bench.common import default_json, machine_info, print_machine, table, write_json
from monitor.catalog.catalog import parse_catalog
from monitor.lab.presets import KCELL, synthetic
from monitor.outages.analysis import Analyzer
from monitor.outages.journal import Journal
from monitor.outages.outage import Outage, Scope
from monitor.probing.failures import Failure
from monitor.probing.latest import LatestResults
from monitor.probing.prober import Prober
from monitor.probing.result import ProbeResult
from monitor.serving.web import build_app

NAME = "status_page"


class _Served:
    def __init__(self, analyzer: Analyzer, results: LatestResults) -> None:
        self.registry = CollectorRegistry()
        self.results = results
        self.analyzer = analyzer
        self.prober = cast(Prober, None)  # /probe is not measured
        self.catalog = analyzer.catalog
        self.started_at = time.time()
        self.vantage = "bench"

    def reload(self) -> bool:
        return False


def _monitor(targets: int, outages: int, journal_path: Path) -> _Served:
    net = synthetic(targets)
    net.http_port, net.https_port = 8080, 8443  # never started: the catalog only needs ports
    document = net.targets_config(interval="60s", timeout="5s")
    document["defaults"]["resolvers"] = ["127.0.0.1"]
    catalog = parse_catalog(yaml.safe_dump(document))
    now = time.time()
    journal = Journal(journal_path)
    history = [
        Outage(Scope.SITE, catalog.targets[i % len(catalog.targets)].name, now - 7 * 86400 + i * 3000,
               country="KZ", ended_at=now - 7 * 86400 + i * 3000 + 900)
        for i in range(outages)
    ]
    journal.sync(history, {})
    clock = [now - 600.0]
    analyzer = Analyzer(journal, clock=lambda: clock[0])
    analyzer.set_catalog(catalog)
    results = LatestResults()
    results.set_catalog(catalog)
    for _ in range(6):
        clock[0] += 60
        for target in catalog.targets:
            dark = target.asn == KCELL
            result = ProbeResult(target.name, clock[0], 0.01, not dark,
                                 failure=Failure.TCP_TIMEOUT if dark else None)
            analyzer.record(result)
            results.record(result)
        analyzer.evaluate()
    return _Served(analyzer, results)


async def _timings(base: str, path: str, requests: int) -> tuple[list[float], int]:
    seconds = []
    size = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            started = time.perf_counter()
            async with session.get(base + path) as response:
                body = await response.read()
                assert response.status == 200, (path, response.status)
            seconds.append(time.perf_counter() - started)
            size = len(body)
    return seconds, size


async def _measure(served: _Served, requests: int) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for public in (False, True):
        runner = web.AppRunner(build_app(served, public=public), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        try:
            paths = ("/",) if public else ("/", "/api/status")
            for path in paths:
                await _timings(base, path, 2)  # warm: templates compiled, journal cached by the OS
                seconds, size = await _timings(base, path, requests)
                name = "/ (public)" if public else path
                figures[name] = {
                    "median_ms": statistics.median(seconds) * 1000,
                    "max_ms": max(seconds) * 1000,
                    "kib": size / 1024,
                }
        finally:
            await runner.cleanup()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, help="synthetic targets (default 1000; quick 200)")
    parser.add_argument("--outages", type=int, default=200, help="outages in the journal's last 7 days")
    parser.add_argument("--requests", type=int, help="requests per path (default 30; quick 5)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json-out", type=Path, default=default_json(NAME))
    args = parser.parse_args()
    targets = args.targets or (200 if args.quick else 1000)
    requests = args.requests or (5 if args.quick else 30)
    info = machine_info()
    print_machine(info)
    with tempfile.TemporaryDirectory(prefix="bench-status-page-") as workdir:
        served = _monitor(targets, args.outages, Path(workdir) / "journal.sqlite")
        figures = asyncio.run(_measure(served, requests))
    reference = figures["/api/status"]["median_ms"]
    rows: list[list[Any]] = []
    for path, f in figures.items():
        ratio = f["median_ms"] / reference
        rows.append([path, *(f"{f[key]:.1f}" for key in ("median_ms", "max_ms", "kib")), f"{ratio:.2f}"])
    print(f"\nOne request, {targets} targets and {args.outages} journal outages (median of {requests}):")
    print(table(rows, ["path", "median ms", "max ms", "KiB", "vs /api/status"]))
    result = {"machine": info, "targets": targets, "outages": args.outages, "requests": requests, **figures}
    print(f"wrote {write_json(args.json_out, result)}")


if __name__ == "__main__":
    main()
