#!/usr/bin/env python3
"""CPU per 1,000 probes: our daemon's /probe vs prometheus-blackbox-exporter, side by side.

One lab process (simulated internet on loopback) serves the same HTTP and HTTPS sites to both
probers; both resolve the sites' names through the lab's DNS. The benchmark itself is the
client: it sends the same number of /probe requests, with the same concurrency, to one prober
and then the other, in interleaved rounds, and charges each prober only the utime+stime of its
own process. A second figure runs our daemon *without* the /probe HTTP layer: the catalog's
targets on a 1 s schedule, counted by monitor_probes_total.

    python bench/per_probe_cpu.py [--quick] [--probes 3000] [--concurrency 8] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    CpuMeter,
    Daemon,
    Lab,
    Proc,
    Profiler,
    Stack,
    SystemMeter,
    blackbox_binary,
    cpu_seconds,
    default_json,
    exe_of,
    http_get,
    machine_info,
    port_is_free,
    print_machine,
    print_profile,
    probe_succeeded,
    start_daemon,
    start_lab,
    start_process,
    table,
    total,
    wait_until,
    write_json,
)
from monitor.lab.harness import free_port

NAME = "per_probe_cpu"
KINDS = ("http", "https")


@dataclass
class Site:
    name: str
    kind: str  # http or https
    url: str
    fqdn: str
    ip: str
    port: int


@dataclass
class Tally:
    probes: int = 0
    succeeded: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.probes += other.probes
        self.succeeded += other.succeeded
        self.cpu += other.cpu
        self.wall += other.wall
        self.failures.extend(other.failures[: max(0, 5 - len(self.failures))])

    def figures(self, idle_cores: float = 0.0) -> dict[str, Any]:
        per_1000 = self.cpu / self.probes * 1000 if self.probes else None
        net = (self.cpu - idle_cores * self.wall) / self.probes * 1000 if self.probes else None
        return {
            "probes": self.probes,
            "succeeded": self.succeeded,
            "cpu_seconds": round(self.cpu, 3),
            "wall_seconds": round(self.wall, 3),
            "cpu_seconds_per_1000": round(per_1000, 4) if per_1000 is not None else None,
            "cpu_seconds_per_1000_net_of_idle": round(net, 4) if net is not None else None,
            "probes_per_second": round(self.probes / self.wall, 1) if self.wall else None,
            "cpu_cores_while_probing": round(self.cpu / self.wall, 3) if self.wall else None,
        }


# --- set-up --------------------------------------------------------------------------------------


def pick_sites(lab: Lab, per_kind: int) -> list[Site]:
    document = yaml.safe_load(lab.config.read_text())
    hosts = lab.state()["hosts"]
    chosen: dict[str, list[Site]] = {kind: [] for kind in KINDS}
    for entry in document["targets"]:
        url = entry.get("url")
        if not url:
            continue
        kind = url.split("://", 1)[0]
        if len(chosen[kind]) < per_kind:
            host = hosts[entry["name"]]
            port = int(url.rsplit(":", 1)[1].strip("/"))
            chosen[kind].append(Site(entry["name"], kind, url, host["fqdn"], host["ip"], port))
    for kind, sites in chosen.items():
        if len(sites) < per_kind:
            raise BenchError(f"the lab has only {len(sites)} {kind} sites; raise --hosts")
    return [*chosen["http"], *chosen["https"]]


def dns_address_for_blackbox() -> tuple[str | None, str]:
    """A loopback IP whose port 53 is free (Go's resolver only talks to port 53), or why not."""
    if blackbox_binary() is None:
        return None, "prometheus-blackbox-exporter is not installed"
    if os.geteuid() != 0:
        return None, "not root: cannot bind port 53 nor bind-mount /etc/resolv.conf in a mount namespace"
    if shutil.which("unshare") is None:
        return None, "unshare(1) is missing (Debian package util-linux)"
    for last in range(2, 30):
        ip = f"127.0.0.{last}"
        if port_is_free(ip, 53):
            return ip, "namespace"
    return None, "port 53 is taken on 127.0.0.2-29"


def blackbox_config(path: Path, lab: Lab, sites: list[Site], mode: str) -> dict[str, str]:
    """Write blackbox.yml; return the module of each site."""
    common = {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False, "valid_status_codes": []}
    modules: dict[str, Any] = {}
    module_of: dict[str, str] = {}
    if mode == "namespace":
        modules["http_lab"] = {
            "prober": "http",
            "timeout": "5s",
            "http": {**common, "tls_config": {"ca_file": str(lab.ca_file)}},
        }
        module_of = {site.name: "http_lab" for site in sites}
    else:  # ip-literal: no DNS at all for blackbox; Host header and SNI set per module
        for site in sites:
            module = f"http_{site.name}"
            modules[module] = {
                "prober": "http",
                "timeout": "5s",
                "http": {
                    **common,
                    "headers": {"Host": f"{site.fqdn}:{site.port}"},
                    "tls_config": {"ca_file": str(lab.ca_file), "server_name": site.fqdn},
                },
            }
            module_of[site.name] = module
    path.write_text(yaml.safe_dump({"modules": modules}, sort_keys=False))
    return module_of


def start_blackbox(workdir: Path, config: Path, resolver_ip: str | None) -> tuple[Proc, int]:
    binary = blackbox_binary()
    assert binary is not None
    port = free_port()
    listen = f"--web.listen-address=127.0.0.1:{port}"
    if resolver_ip is not None:
        resolv = workdir / "resolv.conf"
        resolv.write_text(f"nameserver {resolver_ip}\noptions timeout:2 attempts:1\n")
        # A private mount namespace: only blackbox_exporter sees this resolv.conf.
        script = f"mount --bind {resolv} /etc/resolv.conf && exec {binary} --config.file={config} {listen}"
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    else:
        argv = [binary, f"--config.file={config}", listen]
    proc = start_process("blackbox_exporter", argv, workdir / "blackbox.log")
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        proc.check_alive()
        return http_get(base + "/-/healthy", timeout=5)[0] == 200 and exe_of(proc.pid).endswith(
            "blackbox-exporter"
        )

    try:
        wait_until(ready, timeout=30, what="blackbox_exporter to answer /-/healthy")
    except BaseException:
        proc.stop()
        raise
    return proc, port


# --- load ----------------------------------------------------------------------------------------


async def drive(session: aiohttp.ClientSession, urls: list[str], count: int, concurrency: int) -> Tally:
    """`count` GETs of `urls` in turn, `concurrency` at a time; probe_success must be 1."""
    tally = Tally()
    pending = iter(itertools.islice(itertools.cycle(urls), count))

    async def worker() -> None:
        for url in pending:
            try:
                async with session.get(url) as response:
                    text = await response.text()
                    ok = response.status == 200 and probe_succeeded(text)
            except aiohttp.ClientError as exc:
                ok, text = False, f"{type(exc).__name__}: {exc}"
            tally.probes += 1
            if ok:
                tally.succeeded += 1
            elif len(tally.failures) < 5:
                tally.failures.append(f"{url}: {text[-400:]}")

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.wall = time.monotonic() - started
    return tally


async def measured(
    pid: int, session: aiohttp.ClientSession, urls: list[str], count: int, concurrency: int
) -> Tally:
    meter = CpuMeter(pid).start()
    tally = await drive(session, urls, count, concurrency)
    meter.stop()
    tally.cpu, tally.wall = meter.cpu, meter.wall
    return tally


def idle_cores(pid: int, seconds: float) -> float:
    meter = CpuMeter(pid).start()
    time.sleep(seconds)
    meter.stop()
    return meter.cpu / meter.wall


async def run_rounds(
    args: argparse.Namespace, probers: dict[str, tuple[int, dict[str, list[str]]]]
) -> dict[str, dict[str, Tally]]:
    per_phase = max(1, args.probes // len(KINDS) // args.rounds)
    tallies = {name: {kind: Tally() for kind in KINDS} for name in probers}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up: every URL a few times through each prober, not measured.
        for _name, (_pid, urls) in probers.items():
            for kind in KINDS:
                warm = await drive(session, urls[kind], len(urls[kind]) * 3, args.concurrency)
                if warm.succeeded != warm.probes:
                    raise BenchError(f"warm-up through {_name} failed:\n" + "\n".join(warm.failures))
        names = list(probers)
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for kind in KINDS:
                for name in order:
                    pid, urls = probers[name]
                    tally = await measured(pid, session, urls[kind], per_phase, args.concurrency)
                    tallies[name][kind].add(tally)
                    print(
                        f"  round {round_index + 1}/{args.rounds} {kind:5} {name:8} {tally.probes} probes "
                        f"{tally.cpu:.2f} s CPU in {tally.wall:.1f} s",
                        flush=True,
                    )
    return tallies


# --- ours without the /probe layer -----------------------------------------------------------------


def scheduled_config(lab: Lab, active: list[Site], path: Path) -> Path:
    document = yaml.safe_load(lab.config.read_text())
    document["defaults"]["interval"] = "1h"
    document["defaults"]["timeout"] = "5s"
    wanted = {site.name for site in active}
    for section in ("targets", "controls"):
        for entry in document.get(section) or []:
            if entry["name"] in wanted:
                entry["interval"], entry["timeout"] = "1s", "1s"
            else:
                entry.pop("interval", None)
                entry.pop("timeout", None)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    tmp.replace(path)
    return path


def run_scheduled(
    args: argparse.Namespace, lab: Lab, sites: list[Site], workdir: Path, stack: Stack
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    config = workdir / "scheduled.yaml"
    by_kind = {kind: [site for site in sites if site.kind == kind] for kind in KINDS}
    scheduled_config(lab, [], config)  # first nothing at 1 s: the daemon's idle baseline
    daemon = start_daemon(config, workdir / "monitor-scheduled.log")
    stack.callback(daemon.stop)
    time.sleep(args.settle)
    idle = scheduled_phase(daemon, args.idle_seconds * 2)
    idle_rate = idle.cpu / idle.wall
    profiler = Profiler(daemon.pid, workdir / "profile-scheduled.svg").start() if args.profile else None
    results: dict[str, Any] = {"idle_cpu_cores": round(idle_rate, 4), "idle_probes": idle.probes}
    all_tally = Tally()
    try:
        for kind in KINDS:
            scheduled_config(lab, by_kind[kind], config)
            daemon.reload()
            time.sleep(args.settle)  # the first slots of the (re)scheduled targets come within 1 s
            tally = scheduled_phase(daemon, args.scheduled_seconds)
            all_tally.add(tally)
            results[kind] = tally.figures(idle_rate)
            results[kind]["targets_at_1s"] = len(by_kind[kind])
            print(
                f"  scheduled {kind:5} {tally.probes} probes {tally.cpu:.2f} s CPU in {tally.wall:.1f} s",
                flush=True,
            )
    finally:
        if profiler is not None:
            profiler.stop()
    results["all"] = all_tally.figures(idle_rate)
    daemon.stop()
    return results, profiler.as_dict() if profiler else None


def scheduled_phase(daemon: Daemon, seconds: float) -> Tally:
    before = daemon.metrics()  # scrape first, then read the CPU: the scrape is not charged
    meter = CpuMeter(daemon.pid).start()
    time.sleep(seconds)
    meter.stop()
    after = daemon.metrics()
    probes = int(total(after, "monitor_probes_total") - total(before, "monitor_probes_total"))
    failed = int(
        total(after, "monitor_probes_total", result="failure")
        - total(before, "monitor_probes_total", result="failure")
    )
    tally = Tally(probes=probes, succeeded=probes - failed, cpu=meter.cpu, wall=meter.wall)
    if failed:
        tally.failures.append(f"{failed} scheduled probes failed; see /api/status of the daemon")
    return tally


# --- report --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 probes each, 2 rounds, short scheduled run")
    parser.add_argument("--probes", type=int, help="probes per prober, half HTTP half HTTPS (default 3000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="client requests in flight (default 8)")
    parser.add_argument("--hosts", type=int, default=40, help="synthetic lab hosts (default 40)")
    parser.add_argument(
        "--per-kind", type=int, default=8, help="HTTP sites and HTTPS sites used (default 8 each)"
    )
    parser.add_argument(
        "--scheduled-seconds", type=float, help="measured seconds per scheduled phase (default 45)"
    )
    parser.add_argument("--no-blackbox", action="store_true", help="measure ours only")
    parser.add_argument(
        "--blackbox-dns",
        choices=("auto", "namespace", "ip-literal"),
        default="auto",
        help="how blackbox_exporter finds the lab sites (default: namespace if possible)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="attach py-spy to our daemon (perturbs the figures)"
    )
    parser.add_argument("--json-out", type=Path, default=default_json(NAME))
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    args.probes = args.probes or (200 if args.quick else 3000)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.scheduled_seconds = args.scheduled_seconds or (8.0 if args.quick else 45.0)
    args.settle = 2.0
    args.idle_seconds = 2.0 if args.quick else 5.0

    info = machine_info()
    print_machine(info)
    workdir = Path(tempfile.mkdtemp(prefix="bench-per-probe-"))
    try:
        result = run(args, info, workdir)
    finally:
        if not args.keep_workdir and not args.profile:
            shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.json_out, result)
    print(f"\nJSON: {args.json_out}")
    problems = result["problems"]
    if problems:
        print("\nFAILED: not every probe succeeded:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, info: dict[str, Any], workdir: Path) -> dict[str, Any]:
    blackbox_mode, why = "off", "--no-blackbox"
    resolver_ip: str | None = None
    if not args.no_blackbox:
        resolver_ip, why = dns_address_for_blackbox()
        if args.blackbox_dns == "ip-literal" or (resolver_ip is None and blackbox_binary() is not None):
            blackbox_mode = "ip-literal"
            resolver_ip = None
        elif resolver_ip is not None:
            blackbox_mode = "namespace"
        if args.blackbox_dns == "namespace" and blackbox_mode != "namespace":
            raise BenchError(f"--blackbox-dns namespace is impossible: {why}")
    notes = {
        "namespace": f"blackbox_exporter resolves the lab names through the lab DNS on {resolver_ip}:53 "
        "(private mount namespace with its own /etc/resolv.conf); ours through the same server",
        "ip-literal": "blackbox_exporter gets IP-literal URLs with Host header and SNI set per module, "
        f"so it does NO DNS lookup while ours does ({why}); this favours blackbox",
        "off": f"blackbox_exporter not measured: {why}",
    }
    print(f"blackbox resolution: {notes[blackbox_mode]}")

    result: dict[str, Any] = {
        "benchmark": NAME,
        "machine": info,
        "problems": [],
        "config": {k: v for k, v in vars(args).items() if k != "json_out"},
        "blackbox_mode": blackbox_mode,
        "blackbox_note": notes[blackbox_mode],
    }
    result["config"]["json_out"] = str(args.json_out)
    with Stack() as stack:
        dns = f"{resolver_ip}:53" if resolver_ip else "127.0.0.1:0"
        lab = start_lab(
            workdir, "--hosts", str(args.hosts), "--dns", dns, "--interval", "1h", "--timeout", "5s"
        )
        stack.callback(lab.proc.stop)
        sites = pick_sites(lab, args.per_kind)
        print(
            f"lab: {args.hosts} synthetic hosts, DNS {lab.dns}; using {args.per_kind} HTTP + {args.per_kind} "
            f"HTTPS sites; {args.probes} probes per prober in {args.rounds} rounds, "
            f"concurrency {args.concurrency}"
        )

        ours = start_daemon(lab.config, workdir / "monitor-probe.log")
        stack.callback(ours.stop)
        probers: dict[str, tuple[int, dict[str, list[str]]]] = {
            "ours": (
                ours.pid,
                {
                    kind: [f"{ours.base}/probe?target={s.name}" for s in sites if s.kind == kind]
                    for kind in KINDS
                },
            )
        }
        if blackbox_mode != "off":
            module_of = blackbox_config(workdir / "blackbox.yml", lab, sites, blackbox_mode)
            bb_proc, bb_port = start_blackbox(workdir, workdir / "blackbox.yml", resolver_ip)
            stack.callback(bb_proc.stop)
            base = f"http://127.0.0.1:{bb_port}/probe"
            urls = {}
            for kind in KINDS:
                urls[kind] = []
                for s in sites:
                    if s.kind != kind:
                        continue
                    target = s.url if blackbox_mode == "namespace" else f"{s.kind}://{s.ip}:{s.port}/"
                    urls[kind].append(f"{base}?module={module_of[s.name]}&target={target}")
            probers["blackbox"] = (bb_proc.pid, urls)

        idle = {name: idle_cores(pid, args.idle_seconds) for name, (pid, _) in probers.items()}
        before = ours.metrics()
        profiler = Profiler(ours.pid, workdir / "profile-probe.svg").start() if args.profile else None
        system = SystemMeter().start()
        try:
            tallies = asyncio.run(run_rounds(args, probers))
            system.stop()
        finally:
            if profiler is not None:
                profiler.stop()
        scheduled_meanwhile = int(
            total(ours.metrics(), "monitor_probes_total") - total(before, "monitor_probes_total")
        )
        cpu_total = {name: round(cpu_seconds(pid), 3) for name, (pid, _) in probers.items()}
        # Quiet machine for the scheduled phase: stop both probers now.
        ours.stop()
        if blackbox_mode != "off":
            bb_proc.stop()

        figures: dict[str, Any] = {}
        for name, by_kind in tallies.items():
            everything = Tally()
            figures[name] = {
                "idle_cpu_cores": round(idle[name], 4),
                "process_cpu_seconds_total": cpu_total[name],
            }
            for kind in KINDS:
                everything.add(by_kind[kind])
                figures[name][kind] = by_kind[kind].figures(idle[name])
            figures[name]["all"] = everything.figures(idle[name])
            for tally in (*by_kind.values(),):
                for failure in tally.failures:
                    result["problems"].append(f"{name}: {failure}")
            if everything.succeeded != everything.probes:
                result["problems"].append(
                    f"{name}: {everything.probes - everything.succeeded} of {everything.probes} probes failed"
                )
        figures["ours"]["scheduled_probes_during_rounds"] = scheduled_meanwhile
        result["machine_during_rounds"] = system.as_dict()
        result["probe_endpoint"] = figures
        if "blackbox" in figures:
            result["ratio_ours_over_blackbox"] = {
                kind: _ratio(
                    figures["ours"][kind]["cpu_seconds_per_1000"],
                    figures["blackbox"][kind]["cpu_seconds_per_1000"],
                )
                for kind in (*KINDS, "all")
            }

        print(
            f"\nours without the /probe layer: {args.per_kind} targets at a 1 s interval, "
            f"{args.scheduled_seconds:g} s per phase"
        )
        scheduled, scheduled_profile = run_scheduled(args, lab, sites, workdir, stack)
        result["ours_scheduled"] = scheduled
        for kind in (*KINDS, "all"):
            tally = scheduled[kind]
            if tally["succeeded"] != tally["probes"]:
                result["problems"].append(
                    f"ours-scheduled {kind}: {tally['probes'] - tally['succeeded']} failed"
                )
            if tally["probes"] == 0:
                result["problems"].append(f"ours-scheduled {kind}: no probe counted")
        if args.profile:
            result["profiles"] = {
                "probe_endpoint": profiler.as_dict() if profiler else None,
                "scheduled": scheduled_profile,
            }
    report(result)
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


_ROW_FIGURES = (
    "probes",
    "succeeded",
    "cpu_seconds",
    "cpu_seconds_per_1000",
    "cpu_seconds_per_1000_net_of_idle",
    "probes_per_second",
    "cpu_cores_while_probing",
)


def _row(label: str, kind: str, figures: dict[str, Any]) -> list[Any]:
    return [label, kind, *(figures[key] for key in _ROW_FIGURES)]


def report(result: dict[str, Any]) -> None:
    figures = result["probe_endpoint"]
    rows = [_row(f"{name} /probe", kind, figures[name][kind]) for name in figures for kind in (*KINDS, "all")]
    rows += [_row("ours scheduled", kind, result["ours_scheduled"][kind]) for kind in (*KINDS, "all")]
    header = [
        "prober",
        "kind",
        "probes",
        "ok",
        "cpu_s",
        "cpu_s/1000",
        "net_of_idle/1000",
        "probes/s",
        "cores",
    ]
    print("\nCPU per 1,000 probes (each prober's own process, utime+stime)")
    print(table(rows, header))
    idle = ", ".join(f"{name} {figures[name]['idle_cpu_cores']:.4f}" for name in figures)
    print(f"idle CPU before the rounds (cores): {idle}")
    print(
        "idle CPU of the scheduled daemon with nothing at 1 s (cores): "
        f"{result['ours_scheduled']['idle_cpu_cores']}"
    )
    print(
        f"scheduled probes by ours during the /probe rounds (1 h interval): "
        f"{figures['ours']['scheduled_probes_during_rounds']}"
    )
    if "ratio_ours_over_blackbox" in result:
        ratio = result["ratio_ours_over_blackbox"]
        goal = ratio["all"] is not None and ratio["all"] <= 1.0
        print(
            f"ratio ours/blackbox CPU per probe: http {ratio['http']}, https {ratio['https']}, "
            f"all {ratio['all']}"
            f"   goal <= 1.0: {'PASS' if goal else 'FAIL'}"
        )
    m = result["machine_during_rounds"]
    print(
        f"whole machine during the rounds: {m['machine_busy_cores']:.2f} cores busy (all processes: probers, "
        f"lab, client, anything else); load average {m['loadavg_start']} -> {m['loadavg_end']}"
    )
    print(f"note: {result['blackbox_note']}")
    for name, profile in (result.get("profiles") or {}).items():
        if profile:
            print_profile(f"profile of ours ({name})", profile)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        sys.exit(2)
