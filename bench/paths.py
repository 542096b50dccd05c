"""Path evidence cost, ours vs Debian's traceroute, on a chain of router namespaces (root).

monitor.lab.router_chain builds the prober, four routers (transit, border, core, access) and the
hosts; nothing is routed out of them. In the prober namespace, one process runs our tracer
(monitor.probing.traceroute, the daemon's options: 1 s a hop, 2 attempts, 3 silent hops) N
times in a row and reports its own CPU for the traces alone; then Debian's traceroute (UDP to
one port, one probe a hop, one at a time: `-U -p 33434 -q 1 -N 1 -w 1 -m 30`) runs N times,
its CPU read from the children's rusage (a C program's start is part of it). Twice: along the
intact path (five hops, the destination answers) and with the core router cutting the country
off (a blackhole route: two hops answer, the rest are silent).

Prints: packets and CPU per trace, wall time per trace, ours vs traceroute as ratios, and what
the usual paths of 100 networks cost per hour (a trace each per `paths.interval`, 1 h), with the
traces when an outage opens (3).

    python bench/paths.py [--traces 20] [--cut-traces 3] [--quick] [--no-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchError, default_json, machine_info, print_machine, table, write_json
from monitor.lab.router_chain import RouterChain

ROOT = Path(__file__).resolve().parent.parent
DESTINATION = "10.96.1.1"
NETWORKS, TRACES_PER_OUTAGE = 100, 3

_OURS = """
import asyncio, json, resource, sys, time, uvloop
from monitor.probing.traceroute import TraceOptions, trace
destination, count = sys.argv[1], int(sys.argv[2])
async def main():
    found = []
    for _ in range(count):
        found.append(await trace(destination, TraceOptions()))
    return found
before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
traces = uvloop.run(main())
after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - started
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"cpu": cpu, "wall": wall, "packets": sum(t.packets for t in traces),
                  "hops": [[h.address for h in t.hops] for t in traces[:1]]}))
"""


def _ours(chain: RouterChain, count: int) -> dict[str, Any]:
    argv = chain.in_prober(sys.executable, "-c", _OURS, DESTINATION, str(count))
    run = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if run.returncode != 0:
        raise BenchError(f"our tracer failed: {run.stderr[-2000:]}")
    measured = json.loads(run.stdout)
    return _row("ours (UDP, error queue)", count, measured["cpu"], measured["wall"], measured["packets"])


def _traceroute(chain: RouterChain, count: int) -> dict[str, Any]:
    argv = chain.in_prober(
        "traceroute", "-n", "-U", "-p", "33434", "-q", "1", "-N", "1", "-w", "1", "-m", "30"
    )
    before, started, packets = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic(), 0
    for _ in range(count):
        run = subprocess.run([*argv, DESTINATION], capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise BenchError(f"traceroute failed: {run.stderr[-2000:]}")
        packets += len(run.stdout.splitlines()) - 1  # a line a hop after the header, one probe each
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - started
    # `ip netns exec` is a child too: measured alone and taken off
    exec_cpu = _exec_cpu(chain, count)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) - exec_cpu
    return _row("traceroute (Debian)", count, max(cpu, 0.0), wall, packets)


def _exec_cpu(chain: RouterChain, count: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(count):
        subprocess.run(chain.in_prober("true"), check=True, timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _row(tracer: str, count: int, cpu: float, wall: float, packets: int) -> dict[str, Any]:
    return {
        "tracer": tracer,
        "traces": count,
        "packets_per_trace": packets / count,
        "cpu_ms_per_trace": 1000 * cpu / count,
        "wall_seconds_per_trace": wall / count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=20, help="traces along the intact path")
    parser.add_argument("--cut-traces", type=int, default=3, help="traces with the core router cutting")
    parser.add_argument("--quick", action="store_true", help="5 and 1 traces (the CI smoke run)")
    parser.add_argument("--no-reference", action="store_true", help="skip Debian's traceroute")
    parser.add_argument("--json-out", type=Path, default=default_json("paths"))
    args = parser.parse_args()
    if args.quick:
        args.traces, args.cut_traces = 5, 1
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise BenchError("bench/paths.py builds network namespaces: run it as root with iproute2")
    reference = not args.no_reference
    if reference and shutil.which("traceroute") is None:
        raise BenchError(
            "Debian's traceroute is not installed (scripts/setup-debian.sh), or pass --no-reference"
        )
    info = machine_info()
    print_machine(info)
    chain = RouterChain.build([DESTINATION])
    results: dict[str, Any] = {"machine": info, "paths": {}}
    try:
        for path, count in (("intact", args.traces), ("cut at the core", args.cut_traces)):
            if path != "intact":
                chain.cut("core")
            rows = [_ours(chain, count)] + ([_traceroute(chain, count)] if reference else [])
            results["paths"][path] = rows
            print(f"\n{path} path ({count} traces each)")
            print(
                table(
                    [
                        [
                            r["tracer"],
                            r["packets_per_trace"],
                            r["cpu_ms_per_trace"],
                            r["wall_seconds_per_trace"],
                        ]
                        for r in rows
                    ],
                    ["tracer", "packets/trace", "CPU ms/trace", "wall s/trace"],
                )
            )
            if reference:
                ratios = {
                    column: rows[0][key] / max(rows[1][key], 1e-9)
                    for column, key in (
                        ("packets", "packets_per_trace"),
                        ("CPU", "cpu_ms_per_trace"),
                        ("wall", "wall_seconds_per_trace"),
                    )
                }
                print(
                    "ours / traceroute: " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items())
                )
    finally:
        chain.close()
    intact, cut = (results["paths"][path][0] for path in ("intact", "cut at the core"))
    hourly = {
        "packets": NETWORKS * intact["packets_per_trace"],
        "cpu_seconds": NETWORKS * intact["cpu_ms_per_trace"] / 1000,
        "outage_packets": TRACES_PER_OUTAGE * cut["packets_per_trace"],
    }
    results["per_hour_100_networks"] = hourly
    share = hourly["cpu_seconds"] / 36  # percent of one core over an hour
    print(
        f"\n{NETWORKS} networks, a usual trace each an hour (a 5-hop path): {hourly['packets']:.0f} packets "
        f"and {hourly['cpu_seconds']:.2f} CPU seconds an hour ({share:.4f} % of a core); "
        f"an outage's {TRACES_PER_OUTAGE} traces to a cut network: {hourly['outage_packets']:.0f} packets"
    )
    write_json(args.json_out, results)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench/paths.py: {exc}", file=sys.stderr)
        sys.exit(1)
