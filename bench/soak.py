"""Soak test: many targets, a third flapping, some hostile, for a long time; resources must stay flat.

    python bench/soak.py                       # 1,000 targets, 2 s interval, 10 minutes
    python bench/soak.py --quick               # 200 targets, 1 s interval, 45 s (CI)

Runs the simulated internet in this process and the real daemon as a subprocess, samples the
daemon's RSS, open file descriptors and event-loop tasks, and checks at the end that no probe
overran its deadline and nothing was logged as a traceback. Prints a table and writes JSON.
Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_seconds, fd_count, rss_mib
from monitor.lab.harness import run_monitor
from monitor.lab.hostile import HostileKind, HostileServer
from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import synthetic
from monitor.lab.topology import HostKind

HOSTILE_KINDS = (
    HostileKind.TRICKLE,
    HostileKind.RESET_MID_RESPONSE,
    HostileKind.ENDLESS_BODY,
    HostileKind.SILENT,
    HostileKind.NEVER_ACCEPTS,
    HostileKind.HUGE_HEADERS,
    HostileKind.TLS_HANDSHAKE_RESET,
    HostileKind.REDIRECT_LOOP,
)
FLAP_EVERY = 3.0


def _process_sample(pid: int) -> dict[str, float]:
    return {"rss_mb": rss_mib(pid), "fds": fd_count(pid), "cpu_seconds": cpu_seconds(pid)}


async def _metrics(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(base + "/metrics") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels or sample.name == "monitor_probes_total":
                key = sample.name + (f"_{sample.labels['result']}" if "result" in sample.labels else "")
                values[key] = sample.value
    return values


async def _add_hostile(net: SimulatedInternet, document: dict[str, Any], count: int) -> list[HostileServer]:
    servers = []
    for index, kind in zip(range(count), itertools.cycle(HOSTILE_KINDS), strict=False):
        name = f"hostile{index:03d}"
        server = HostileServer(kind, pki=net.pki, hostname=f"{name}.lab.test")
        await server.start()
        servers.append(server)
        net.dns.add_a(f"{name}.lab.test", ["127.0.0.1"])
        scheme = "https" if kind.uses_tls else "http"
        document["targets"].append(
            {
                "name": name,
                "url": f"{scheme}://{name}.lab.test:{server.port}/",
                "country": "KZ",
                "category": "hostile",
                "http": {"max_body_bytes": 65536},
            }
        )
    return servers


async def _flap(net: SimulatedInternet, names: list[str]) -> None:
    """A third of the sites answer 503 for a few seconds, then 200, over and over."""
    failing = False
    while True:
        failing = not failing
        for name in names:
            site = net.site(name)
            if site.server is not None:
                site.server.host(site.fqdn).failing = failing
        await asyncio.sleep(FLAP_EVERY)


async def soak(targets: int, interval: str, duration: float, hostile: int, workdir: Path) -> dict[str, Any]:
    async with synthetic(targets, workdir=workdir) as net:
        document = net.targets_config(
            interval=interval, timeout=interval, defaults={"down_after": 2, "up_after": 1}
        )
        servers = await _add_hostile(net, document, hostile)
        config = workdir / "targets.yaml"
        config.write_text(yaml.safe_dump(document), encoding="utf-8")
        web_sites = [
            name
            for name, site in net.sites.items()
            if site.host.kind in (HostKind.HTTP, HostKind.HTTPS) and not site.host.is_control
        ]
        flapping = asyncio.create_task(_flap(net, web_sites[::3]))
        log_path = workdir / "daemon.log"
        daemon = run_monitor(config, state=workdir / "journal.sqlite", log=log_path)
        base = daemon.base
        samples: list[dict[str, float]] = []
        try:
            async with aiohttp.ClientSession() as session:
                started = time.monotonic()
                await asyncio.sleep(min(10.0, duration / 4))  # warm-up: imports, first round, caches
                while time.monotonic() - started < duration:
                    sample = {
                        "t": round(time.monotonic() - started, 1),
                        **_process_sample(daemon.pid),
                        **await _metrics(session, base),
                    }
                    samples.append(sample)
                    await asyncio.sleep(max(1.0, duration / 40))
        finally:
            flapping.cancel()
            await asyncio.to_thread(daemon.stop, signal.SIGTERM, 30)
            for server in servers:
                await server.close()
    log_text = log_path.read_text(errors="replace")
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    return {
        "targets": targets + hostile,
        "hostile": hostile,
        "flapping": len(web_sites[::3]),
        "interval": interval,
        "duration_seconds": duration,
        "start": {key: first.get(key) for key in ("rss_mb", "fds", "monitor_asyncio_tasks")},
        "end": {key: last.get(key) for key in ("rss_mb", "fds", "monitor_asyncio_tasks")},
        "max": {
            key: max(sample.get(key, 0) for sample in samples)
            for key in ("rss_mb", "fds", "monitor_asyncio_tasks", "monitor_probes_in_flight")
        },
        "middle": {key: middle.get(key) for key in ("rss_mb", "fds", "monitor_asyncio_tasks")},
        "rss_mb_by_time": [(sample["t"], round(sample["rss_mb"], 1)) for sample in samples],
        "probes": (last.get("monitor_probes_total_success", 0) + last.get("monitor_probes_total_failure", 0)),
        "failed_probes": last.get("monitor_probes_total_failure", 0),
        "deadline_overruns": last.get("monitor_probe_deadline_overruns_total", 0),
        "daemon_cpu_core_fraction": (last["cpu_seconds"] - first["cpu_seconds"])
        / max(last["t"] - first["t"], 1),
        "tracebacks_in_log": log_text.count("Traceback"),
        "exit_code": daemon.popen.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 targets, 1s interval, 45 s")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", default="2s")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--hostile", type=int, default=24, help="hostile servers among the targets")
    parser.add_argument("--json-out", default="bench/results/soak.json")
    args = parser.parse_args()
    if args.quick:
        args.targets, args.interval, args.duration, args.hostile = 200, "1s", 45.0, 16
    import tempfile

    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        report = asyncio.run(
            soak(args.targets - args.hostile, args.interval, args.duration, args.hostile, Path(workdir))
        )
    print(
        f"soak: {report['targets']} targets ({report['flapping']} flapping, {report['hostile']} hostile), "
        f"interval {report['interval']}, {report['duration_seconds']:.0f} s, {report['probes']:.0f} probes"
    )
    print(f"{'':18}{'start':>10}{'middle':>10}{'end':>10}{'max':>10}")
    for key, label in (
        ("rss_mb", "RSS (MB)"),
        ("fds", "open fds"),
        ("monitor_asyncio_tasks", "asyncio tasks"),
    ):
        print(
            f"{label:18}{report['start'][key]:>10.1f}{report['middle'][key]:>10.1f}"
            f"{report['end'][key]:>10.1f}{report['max'][key]:>10.1f}"
        )
    print(
        f"deadline overruns {report['deadline_overruns']:.0f}, "
        f"tracebacks in log {report['tracebacks_in_log']}, "
        f"daemon CPU {report['daemon_cpu_core_fraction']:.2f} core, exit code {report['exit_code']}"
    )
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=1))
    healthy = (
        report["deadline_overruns"] == 0 and report["tracebacks_in_log"] == 0 and report["exit_code"] == 0
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
