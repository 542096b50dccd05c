#!/usr/bin/env python3
"""Scale: N targets at one interval on our daemon, for a few minutes.

The lab serves N synthetic sites (one shared server per network) in its own process; our
daemon probes them all on schedule. After a warm-up of one interval the benchmark samples
/proc every couple of seconds and scrapes /metrics at a Prometheus-like cadence, and reports
probes/s achieved vs scheduled, schedule lag p50/p99 (histogram deltas over the window,
interpolated like histogram_quantile), CPU as a fraction of one core, peak RSS (VmHWM), RSS
at the end, open fds, probes in flight and the success ratio. The lab's CPU is shown too: it
shares the machine.

    python bench/scale.py [--quick] [--targets 10000 --interval 60s --duration 180s] [--profile]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    Daemon,
    Profiler,
    Stack,
    SystemMeter,
    bucket_delta,
    cpu_seconds,
    default_json,
    fd_count,
    histogram_buckets,
    histogram_quantile,
    http_get,
    hwm_mib,
    machine_info,
    parse_samples,
    print_machine,
    print_profile,
    rss_mib,
    start_daemon,
    start_lab,
    table,
    total,
    value,
    verdict,
    write_json,
)
from monitor.catalog.durations import parse_duration

NAME = "scale"
GOALS = {"lag_p99_seconds": 1.0, "cpu_cores": 0.5, "rss_mib": 300.0}
_WANTED = ("monitor_probes", "monitor_schedule_lag", "monitor_targets")


def scrape(daemon: Daemon) -> dict[str, Any]:
    """Scrape /metrics; keep only the monitor's own families (parsing 100k series is slow)."""
    started = time.monotonic()
    status, body = http_get(daemon.base + "/metrics", timeout=120)
    seconds = time.monotonic() - started
    if status != 200:
        raise BenchError(f"/metrics answered {status}")
    text = body.decode()
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(_WANTED) or (line.startswith("# ") and line[7:].startswith(_WANTED))
    ]
    samples = parse_samples("\n".join(lines) + "\n")
    return {
        "t": time.monotonic(),
        "scrape_seconds": seconds,
        "bytes": len(body),
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "probes": total(samples, "monitor_probes_total"),
        "success": total(samples, "monitor_probes_total", result="success"),
        "skipped": total(samples, "monitor_probes_skipped_total"),
        "in_flight": value(samples, "monitor_probes_in_flight") or 0.0,
        "targets": value(samples, "monitor_targets") or 0.0,
        "lag": histogram_buckets(samples, "monitor_schedule_lag_seconds"),
    }


def proc_sample(daemon_pid: int, lab_pid: int) -> dict[str, float]:
    return {
        "t": time.monotonic(),
        "cpu": cpu_seconds(daemon_pid),
        "lab_cpu": cpu_seconds(lab_pid),
        "rss_mib": rss_mib(daemon_pid),
        "fds": fd_count(daemon_pid),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="500 targets, 10s interval, 30s")
    parser.add_argument("--targets", type=int, help="synthetic targets (default 10000; quick 500)")
    parser.add_argument("--interval", help="probe interval (default 60s; quick 10s)")
    parser.add_argument("--timeout", default="5s", help="probe timeout (default 5s)")
    parser.add_argument("--duration", help="measured window after the warm-up (default 180s; quick 30s)")
    parser.add_argument("--warmup", help="warm-up before measuring (default: one interval)")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between /proc samples")
    parser.add_argument("--scrape-every", type=float, help="seconds between /metrics scrapes (default 15)")
    parser.add_argument("--profile", action="store_true", help="py-spy on the daemon during the window")
    parser.add_argument("--json-out", type=Path, default=default_json(NAME))
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    args.targets = args.targets or (500 if args.quick else 10000)
    args.interval = args.interval or ("10s" if args.quick else "60s")
    args.duration = args.duration or ("30s" if args.quick else "180s")
    args.scrape_every = args.scrape_every or (5.0 if args.quick else 15.0)
    interval = parse_duration(args.interval)
    duration = parse_duration(args.duration)
    warmup = parse_duration(args.warmup) if args.warmup else interval

    info = machine_info()
    print_machine(info)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        result = run(args, info, workdir, interval, duration, warmup)
    finally:
        if not args.keep_workdir and not args.profile:
            shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.json_out, result)
    print(f"\nJSON: {args.json_out}")
    if result["problems"]:
        print("\nFAILED:\n  " + "\n  ".join(result["problems"]), file=sys.stderr)
        return 1
    return 0


def run(
    args: argparse.Namespace,
    info: dict[str, Any],
    workdir: Path,
    interval: float,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"benchmark": NAME, "machine": info, "config": config, "problems": []}
    with Stack() as stack:
        started = time.monotonic()
        lab = start_lab(
            workdir,
            "--hosts",
            str(args.targets),
            "--interval",
            args.interval,
            "--timeout",
            args.timeout,
            timeout=600,
        )
        stack.callback(lab.proc.stop)
        lab_seconds = time.monotonic() - started
        started = time.monotonic()
        daemon = start_daemon(lab.config, workdir / "monitor.log", timeout=600)
        stack.callback(daemon.stop)
        daemon_seconds = time.monotonic() - started
        print(
            f"lab: {args.targets} synthetic targets (+5 controls) ready in {lab_seconds:.1f} s; "
            f"daemon ready in {daemon_seconds:.1f} s; interval {args.interval}, timeout {args.timeout}; "
            f"warm-up {warmup:g} s, then {duration:g} s measured",
            flush=True,
        )
        result["startup"] = {"lab_seconds": round(lab_seconds, 2), "daemon_seconds": round(daemon_seconds, 2)}
        time.sleep(warmup)
        daemon.check_alive()

        profiler = Profiler(daemon.pid, workdir / "profile-scale.svg").start() if args.profile else None
        procs: list[dict[str, float]] = []
        scrapes: list[dict[str, Any]] = []
        system = SystemMeter().start()
        bench_cpu0 = _self_cpu()
        first = proc_sample(daemon.pid, lab.proc.pid)
        scrapes.append(scrape(daemon))
        procs.append(first)
        end = first["t"] + duration
        next_scrape = first["t"] + args.scrape_every
        header_printed = False
        while True:
            now = time.monotonic()
            if now >= end:
                break
            time.sleep(min(args.sample_every, end - now))
            daemon.check_alive()
            lab.proc.check_alive()
            procs.append(proc_sample(daemon.pid, lab.proc.pid))
            if time.monotonic() >= next_scrape or time.monotonic() >= end:
                scrapes.append(scrape(daemon))
                next_scrape += args.scrape_every
                if not header_printed:
                    print("   t_s  probes/s  in_flight  cores  lab_cores  rss_MiB  fds  scrape_s", flush=True)
                    header_printed = True
                _progress(first, procs, scrapes)
        last = proc_sample(daemon.pid, lab.proc.pid)
        procs.append(last)
        scrapes.append(scrape(daemon))
        bench_cpu = _self_cpu() - bench_cpu0
        system.stop()
        if profiler is not None:
            profiler.stop()
        hwm = hwm_mib(daemon.pid)
        rss_end = rss_mib(daemon.pid)
        window = last["t"] - first["t"]
        summary = summarize(
            scrapes,
            procs,
            window,
            interval,
            hwm,
            rss_end,
            bench_cpu,
            args.scrape_every / 2,
            args.sample_every / 2,
        )
        result["summary"] = summary
        result["machine_during_window"] = system.as_dict()
        result["samples"] = [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items() if k != "lag"}
            for s in scrapes
        ]
        result["proc_samples"] = [{k: round(v, 4) for k, v in s.items()} for s in procs]
        if profiler is not None:
            result["profile"] = profiler.as_dict()
        if summary["probes"] <= 0:
            result["problems"].append("no probe finished in the measured window")
    report(result)
    return result


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _progress(first: dict[str, float], procs: list[dict[str, float]], scrapes: list[dict[str, Any]]) -> None:
    a, b = scrapes[-2], scrapes[-1]
    p0 = next(p for p in procs if p["t"] >= a["t"] - 3) if len(procs) > 1 else procs[0]
    p1 = procs[-1]
    span = max(p1["t"] - p0["t"], 1e-9)
    rate = (b["probes"] - a["probes"]) / max(b["t"] - a["t"], 1e-9)
    print(
        f"{p1['t'] - first['t']:6.0f}  {rate:8.1f}  {b['in_flight']:9.0f}  "
        f"{(p1['cpu'] - p0['cpu']) / span:5.2f}  "
        f"{(p1['lab_cpu'] - p0['lab_cpu']) / span:9.2f}  {p1['rss_mib']:7.1f}  {p1['fds']:3.0f}  "
        f"{b['scrape_seconds']:8.2f}",
        flush=True,
    )


def summarize(
    scrapes: list[dict[str, Any]],
    procs: list[dict[str, float]],
    window: float,
    interval: float,
    hwm: float,
    rss_end: float,
    bench_cpu: float,
    min_scrape_span: float,
    min_sample_span: float,
) -> dict[str, Any]:
    """Figures over the window; per-step rates skip the short last step (noisy)."""
    a, b = scrapes[0], scrapes[-1]
    scrape_window = b["t"] - a["t"]
    probes = b["probes"] - a["probes"]
    success = b["success"] - a["success"]
    lag = bucket_delta(b["lag"], a["lag"])
    rates = [
        (y["probes"] - x["probes"]) / (y["t"] - x["t"])
        for x, y in itertools.pairwise(scrapes)
        if y["t"] - x["t"] >= min_scrape_span
    ]
    cores = [
        (y["cpu"] - x["cpu"]) / (y["t"] - x["t"])
        for x, y in itertools.pairwise(procs)
        if y["t"] - x["t"] >= min_sample_span
    ]
    lag_max_bucket = None
    previous = 0.0
    for le, count in lag:
        if count > previous:
            lag_max_bucket = le
        previous = count
    targets = b["targets"]
    p50, p99 = histogram_quantile(0.5, lag), histogram_quantile(0.99, lag)
    cpu_cores = (procs[-1]["cpu"] - procs[0]["cpu"]) / window
    rss_max = max(p["rss_mib"] for p in procs)
    return {
        "targets": int(targets),
        "window_seconds": round(window, 2),
        "probes": int(probes),
        "probes_per_second": round(probes / scrape_window, 2) if scrape_window else None,
        "probes_per_second_scheduled": round(targets / interval, 2),
        "probes_per_second_min_max": [round(min(rates), 2), round(max(rates), 2)] if rates else None,
        "success_ratio": round(success / probes, 5) if probes else None,
        "skipped": int(b["skipped"] - a["skipped"]),
        "lag_p50_seconds": round(p50, 5) if p50 is not None else None,
        "lag_p99_seconds": round(p99, 5) if p99 is not None else None,
        "lag_observations": int(lag[-1][1]) if lag else 0,
        "lag_highest_bucket_le": lag_max_bucket,
        "cpu_cores": round(cpu_cores, 4),
        "cpu_cores_peak_sample": round(max(cores), 3) if cores else None,
        "cpu_seconds_per_1000_probes": round((procs[-1]["cpu"] - procs[0]["cpu"]) / probes * 1000, 4)
        if probes
        else None,
        "lab_cpu_cores": round((procs[-1]["lab_cpu"] - procs[0]["lab_cpu"]) / window, 4),
        "bench_client_cpu_cores": round(bench_cpu / window, 4),
        "rss_peak_vmhwm_mib": round(hwm, 1),
        "rss_max_sampled_mib": round(rss_max, 1),
        "rss_end_mib": round(rss_end, 1),
        "fds_max": int(max(p["fds"] for p in procs)),
        "in_flight_max": int(max(s["in_flight"] for s in scrapes)),
        "in_flight_mean": round(sum(s["in_flight"] for s in scrapes) / len(scrapes), 2),
        "scrapes": len(scrapes),
        "scrape_seconds_max": round(max(s["scrape_seconds"] for s in scrapes), 3),
        "scrape_bytes": scrapes[-1]["bytes"],
        "scrape_series": scrapes[-1]["series"],
    }


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    c = result["config"]
    print(
        f"\nScale: {s['targets']} targets every {c['interval']} (timeout {c['timeout']}), "
        f"{s['window_seconds']:.0f} s measured"
    )
    lag_p99 = s["lag_p99_seconds"]
    rows = [
        ["probes/s achieved", s["probes_per_second"], f"scheduled {s['probes_per_second_scheduled']}", ""],
        ["probes/s min..max per scrape", " .. ".join(map(str, s["probes_per_second_min_max"] or [])), "", ""],
        ["probes in window", s["probes"], f"skipped slots {s['skipped']}", ""],
        ["success ratio", f"{s['success_ratio']:.5f}" if s["success_ratio"] is not None else None, "", ""],
        ["schedule lag p50 (s)", s["lag_p50_seconds"], "", ""],
        [
            "schedule lag p99 (s)",
            lag_p99,
            "< 1",
            verdict(lag_p99 is not None and lag_p99 < GOALS["lag_p99_seconds"]),
        ],
        ["lag: highest non-empty bucket (le)", s["lag_highest_bucket_le"], "", ""],
        ["daemon CPU (cores)", s["cpu_cores"], "< 0.5", verdict(s["cpu_cores"] < GOALS["cpu_cores"])],
        ["daemon CPU peak 2 s sample (cores)", s["cpu_cores_peak_sample"], "", ""],
        ["daemon CPU s per 1,000 probes", s["cpu_seconds_per_1000_probes"], "", ""],
        [
            "daemon RSS peak VmHWM (MiB)",
            s["rss_peak_vmhwm_mib"],
            "< 300",
            verdict(s["rss_peak_vmhwm_mib"] < GOALS["rss_mib"]),
        ],
        ["daemon RSS at end (MiB)", s["rss_end_mib"], "< 300", verdict(s["rss_end_mib"] < GOALS["rss_mib"])],
        ["open fds (max seen)", s["fds_max"], "", ""],
        ["in flight max / mean (scrapes)", f"{s['in_flight_max']} / {s['in_flight_mean']}", "", ""],
        ["lab process CPU (cores)", s["lab_cpu_cores"], "shares the 2 cores", ""],
        ["bench client CPU (cores)", s["bench_client_cpu_cores"], "", ""],
        [
            "/metrics scrape: slowest s, bytes, series",
            f"{s['scrape_seconds_max']}, {s['scrape_bytes']}, {s['scrape_series']}",
            f"{s['scrapes']} scrapes",
            "",
        ],
    ]
    print(table(rows, ["figure", "value", "goal / note", "verdict"]))
    print(
        f"start-up: lab {result['startup']['lab_seconds']} s, daemon {result['startup']['daemon_seconds']} s"
    )
    m = result["machine_during_window"]
    print(
        f"whole machine during the window: {m['machine_busy_cores']:.2f} cores busy (daemon + lab + client + "
        f"anything else); load average {m['loadavg_start']} -> {m['loadavg_end']}"
    )
    if result.get("profile"):
        print_profile("profile of our daemon during the window", result["profile"])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        sys.exit(2)
