"""Block liveness cost, ours vs blackbox_exporter's icmp module, on namespaced addresses (root).

A world of N dense /24 blocks sits behind a router in network namespaces (monitor.lab.netns);
our daemon runs in the prober namespace with their hitlists already in its journal (16 addresses
a block, so no discovery runs) and probes every block once a round. An idle daemon (no blocks)
runs beside it for the baseline CPU of the process. Then blackbox_exporter, in the same namespace,
answers /probe?module=icmp for the same addresses at the same rate, driven by a client there.

Prints: packets per second sustained, CPU per probe, CPU per 1,000 blocks per round, what
10,000 blocks per 10-minute round would cost, and RSS; ours vs blackbox as a ratio.

    python bench/blocks.py [--blocks 2000 --round 20 --rounds 3] [--quick] [--no-blackbox]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    CpuMeter,
    Proc,
    Stack,
    SystemMeter,
    blackbox_binary,
    default_json,
    machine_info,
    parse_samples,
    print_machine,
    rss_mib,
    start_process,
    table,
    total,
    wait_until,
    write_json,
)
from monitor.lab.harness import MonitorProcess, free_port, run_monitor
from monitor.lab.netns import BlockWorld, LabBlock
from monitor.outages.block_store import BlockStore
from monitor.probing.discovery import Hitlist

ADDRESSES_PER_BLOCK = 16
NETWORKS = 10
TARGET_BLOCKS, TARGET_ROUND = 10_000, 600.0  # the goal: under 0.1 core

_CLIENT = """
import asyncio, sys, time, aiohttp
url, rate, seconds, addresses = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].split(",")
async def main():
    ok = failed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        async def one(address):
            nonlocal ok, failed
            async with session.get(url, params={"module": "icmp", "target": address}) as response:
                body = await response.text()
            if "probe_success 1" in body: ok += 1
            else: failed += 1
        tasks, start = [], time.monotonic()
        for index in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(addresses[index % len(addresses)])))
        await asyncio.gather(*tasks)
    print(ok, failed)
asyncio.run(main())
"""


def _blocks(count: int) -> list[str]:
    space = ipaddress.IPv4Network("10.64.0.0/12")
    if count > 2 ** (24 - space.prefixlen):
        raise BenchError(f"at most {2 ** (24 - space.prefixlen)} blocks fit in {space}")
    return [str(subnet) for _, subnet in zip(range(count), space.subnets(new_prefix=24), strict=False)]


def _addresses(prefix: str) -> list[str]:
    network = ipaddress.IPv4Network(prefix)
    return [str(network[host]) for host in range(1, ADDRESSES_PER_BLOCK + 1)]


def _config(path: Path, prefixes: list[str], round_seconds: float) -> Path:
    entries = "".join(
        f"  - {{prefix: {prefix}, asn: {64500 + index % NETWORKS}, country: KZ}}\n"
        for index, prefix in enumerate(prefixes)
    )
    rate = max(10.0, 3 * len(prefixes) / round_seconds)  # room for the round's slots to keep pace
    path.write_text(
        f"blocks:\n{entries}liveness: {{round: {round_seconds:g}s, timeout: 1s, "
        f"packets_per_second: {rate:g}, discovery: '0 0 1 1 *'}}\n"
        if prefixes
        else "targets: []\n"
    )
    return path


def _seed(state: Path, prefixes: list[str]) -> None:
    store = BlockStore(state)
    now = time.time()
    for prefix in prefixes:
        addresses = tuple((address, "icmp") for address in _addresses(prefix))
        store.save_hitlist(Hitlist(prefix, addresses, 1.0, now))


def _metrics(world: BlockWorld, monitor: MonitorProcess) -> dict[str, float]:
    samples = parse_samples(world.get(f"http://127.0.0.1:{monitor.port}/metrics"))
    return {
        "probes": total(samples, "monitor_block_probes_total"),
        "alive": total(samples, "monitor_block_probes_total", answer="alive"),
        "packets": total(samples, "monitor_block_packets_total"),
        "rounds": total(samples, "monitor_block_rounds_total", result="complete"),
    }


def _ours(world: BlockWorld, workdir: Path, prefixes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    state = workdir / "journal.sqlite"
    _seed(state, prefixes)
    monitor = run_monitor(
        _config(workdir / "blocks.yaml", prefixes, args.round), state=state, prefix=world.in_prober()
    )
    idle = run_monitor(_config(workdir / "idle.yaml", [], args.round), prefix=world.in_prober())
    try:
        wait_until(lambda: _ready(world, monitor) and _ready(world, idle), timeout=60, what="both daemons")
        first = _metrics(world, monitor)["rounds"]
        wait_until(
            lambda: _metrics(world, monitor)["rounds"] > first,
            timeout=3 * args.round + 30,
            what="a warm-up round",
        )
        before, rss_before = _metrics(world, monitor), rss_mib(monitor.pid)
        ours, baseline, machine = (
            CpuMeter(monitor.pid).start(),
            CpuMeter(idle.pid).start(),
            SystemMeter().start(),
        )
        time.sleep(args.rounds * args.round)
        ours.stop(), baseline.stop(), machine.stop()
        after, rss_after = _metrics(world, monitor), rss_mib(monitor.pid)
        monitor.assert_clean_log()
    finally:
        monitor.stop()
        idle.stop()
    probes = after["probes"] - before["probes"]
    if probes <= 0 or after["alive"] - before["alive"] != probes:
        raise BenchError(f"every probe of an up block should answer: {before} -> {after}\n{monitor.tail()}")
    net = ours.cpu - baseline.cpu * ours.wall / baseline.wall
    return {
        "prober": "ours (monitor run)",
        "probes": probes,
        "seconds": ours.wall,
        "packets": after["packets"] - before["packets"],
        "rounds": after["rounds"] - before["rounds"],
        "cpu_seconds": ours.cpu,
        "idle_cpu_seconds": baseline.cpu * ours.wall / baseline.wall,
        "net_cpu_seconds": net,
        "rss_mib_start": rss_before,
        "rss_mib_end": rss_after,
        **machine.as_dict(),
    }


def _ready(world: BlockWorld, monitor: MonitorProcess) -> bool:
    monitor.check_alive()
    try:
        return bool(world.get(f"http://127.0.0.1:{monitor.port}/healthz"))
    except OSError:
        return False


def _blackbox(
    world: BlockWorld, workdir: Path, prefixes: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    binary = blackbox_binary()
    assert binary is not None
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n  icmp:\n    prober: icmp\n    timeout: 2s\n"
        "    icmp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}\n"
    )
    port = free_port()
    listen = f"127.0.0.1:{port}"
    argv = world.in_prober(binary, f"--config.file={config}", f"--web.listen-address={listen}")
    addresses = ",".join(_addresses(prefix)[0] for prefix in prefixes)
    with Stack() as stack:
        exporter: Proc = stack.add(start_process("blackbox_exporter", argv, workdir / "blackbox.log"))
        wait_until(lambda: _answers(world, f"http://{listen}/metrics"), timeout=30, what="blackbox_exporter")
        client = world.in_prober(
            sys.executable, "-c", _CLIENT, f"http://{listen}/probe", f"{rate:g}", "2", addresses
        )
        start_process("warm-up", client, workdir / "warmup.log").popen.wait(60)
        rss_before = rss_mib(exporter.pid)
        meter, machine = CpuMeter(exporter.pid).start(), SystemMeter().start()
        client[-2] = f"{seconds:g}"
        driver = start_process("client", client, workdir / "client.log")
        driver.popen.wait(seconds + 120)
        meter.stop(), machine.stop()
        ok, failed = (int(word) for word in driver.log.read_text().split()[-2:])
        exporter.check_alive()
        rss_after = rss_mib(exporter.pid)
    if failed or not ok:
        raise BenchError(f"blackbox_exporter: {ok} probes succeeded, {failed} failed ({driver.log})")
    return {
        "prober": "blackbox_exporter icmp",
        "probes": ok,
        "seconds": meter.wall,
        "packets": ok,
        "rounds": None,
        "cpu_seconds": meter.cpu,
        "idle_cpu_seconds": 0.0,
        "net_cpu_seconds": meter.cpu,
        "rss_mib_start": rss_before,
        "rss_mib_end": rss_after,
        **machine.as_dict(),
    }


def _answers(world: BlockWorld, url: str) -> bool:
    try:
        return bool(world.get(url))
    except OSError:
        return False


def _derived(row: dict[str, Any], blocks: int, round_seconds: float) -> dict[str, Any]:
    per_probe = row["net_cpu_seconds"] / row["probes"]
    probes_per_block = row["probes"] / (blocks * row["seconds"] / round_seconds)
    per_round_per_1000 = per_probe * probes_per_block * 1000
    return {
        **row,
        "packets_per_second": row["packets"] / row["seconds"],
        "cpu_ms_per_probe": per_probe * 1000,
        "cpu_ms_per_1000_blocks_per_round": per_round_per_1000 * 1000,
        "cores_at_10000_blocks_per_10min": per_round_per_1000 * TARGET_BLOCKS / 1000 / TARGET_ROUND,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--round", type=float, default=20.0, help="seconds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds measured after one warm-up round")
    parser.add_argument("--quick", action="store_true", help="200 blocks, 5 s rounds, 2 rounds")
    parser.add_argument("--no-blackbox", action="store_true")
    parser.add_argument("--json-out", type=Path, default=default_json("blocks"))
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.round, args.rounds = 200, 5.0, 2
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("bench/blocks.py needs root and iproute2: it builds network namespaces", file=sys.stderr)
        return 2
    # stopped by SIGTERM (the smoke test's timeout), the namespaces are removed on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    info = machine_info()
    print_machine(info)
    prefixes = _blocks(args.blocks)
    print(f"{args.blocks} blocks ({ADDRESSES_PER_BLOCK} answering addresses each), {args.round:g} s rounds")
    # a /27 answers on the loopback of the world: the 16 hitlist addresses (.1 to .16) and more
    world = BlockWorld.build([LabBlock(prefix, f"{prefix.split('/')[0]}/27") for prefix in prefixes])
    try:
        with tempfile.TemporaryDirectory(prefix="bench-blocks-") as tmp:
            rows = [_derived(_ours(world, Path(tmp), prefixes, args), args.blocks, args.round)]
            if not args.no_blackbox and blackbox_binary() is not None:
                rate = rows[0]["probes"] / rows[0]["seconds"]
                blackbox = _blackbox(world, Path(tmp), prefixes, rate, args.rounds * args.round)
                rows.append(_derived(blackbox, args.blocks, args.round))
    finally:
        world.close()
    header = [
        "prober",
        "probes",
        "packets/s",
        "CPU s",
        "idle CPU s",
        "ms/probe",
        "ms/1k blocks/round",
        "cores@10k/10min",
        "RSS MiB",
    ]
    print(
        table(
            [
                [
                    row["prober"],
                    int(row["probes"]),
                    row["packets_per_second"],
                    row["cpu_seconds"],
                    row["idle_cpu_seconds"],
                    row["cpu_ms_per_probe"],
                    row["cpu_ms_per_1000_blocks_per_round"],
                    row["cores_at_10000_blocks_per_10min"],
                    f"{row['rss_mib_start']:.0f} -> {row['rss_mib_end']:.0f}",
                ]
                for row in rows
            ],
            header,
        )
    )
    ours = rows[0]
    goal = ours["cores_at_10000_blocks_per_10min"] < 0.1
    print(f"goal, 10,000 blocks per 10-minute round under 0.1 core: {'met' if goal else 'NOT met'}")
    if len(rows) > 1:
        ratio = ours["cpu_ms_per_probe"] / rows[1]["cpu_ms_per_probe"]
        print(f"CPU per probe, ours / blackbox_exporter: {ratio:.2f}")
    print(f"machine busy during ours: {ours['machine_busy_cores']:.2f} cores (load {ours['loadavg_end']})")
    path = write_json(
        args.json_out, {"machine": info, "args": vars(args) | {"json_out": str(args.json_out)}, "rows": rows}
    )
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
