#!/usr/bin/env python3
"""Detection latency: how long after a country, or one network, goes dark does the daemon say so?

The lab's Kazakhstan preset (25 targets on six networks, five controls abroad) runs in its own
process; our daemon probes it at a 15 s interval. Once every reachable target is up and the
country is `normal`, the benchmark blackholes Kazakhstan through the lab's control API
(nationalbank and primeminister stay up, as in January 2022) and polls /metrics every 0.5 s
until monitor_country_state{country="KZ",state="shutdown"} is 1. Then it restores the lab,
waits for `normal` again, blackholes one network (Kcell: kcell and zakon) until a network outage
opens, restores, and repeats. Goals: a country within 2 intervals, a network within 3 (median).
Every run also counts the outages opened by scope: anything but the one expected is a false one.

    python bench/detection.py [--quick] [--repeats 3] [--interval 15s --timeout 5s]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchError,
    Daemon,
    Lab,
    Stack,
    SystemMeter,
    default_json,
    machine_info,
    print_machine,
    start_daemon,
    start_lab,
    table,
    value,
    verdict,
    wait_until,
    write_json,
)
from monitor.catalog.durations import parse_duration

NAME = "detection"
COUNTRY = "KZ"
STAYS_UP = ["nationalbank", "primeminister"]
GOAL_INTERVALS = 2.0
NETWORK_GOAL_INTERVALS = 3.0
NETWORK_ASN = 29355  # Kcell: kcell.kz and zakon.kz in the preset
SCOPES = ("site", "network", "country", "vantage", "self")
POLL_SECONDS = 0.5


def reachable_targets(lab: Lab) -> list[str]:
    """Targets whose lab host is up now (akorda is geo-blocked from the start)."""
    return sorted(name for name, host in lab.state()["hosts"].items() if host["mode"] == "up")


def is_normal(daemon: Daemon, reachable: list[str], since: float | None = None) -> bool:
    """The country normal and every reachable target up; with `since`, each also probed with
    success after it: a target that never reached `down_after` failures is up throughout, and a
    new blackout before its next probe would find it still failing from the last one."""
    status = daemon.status()
    targets = {target["name"]: target for target in status["targets"]}
    country = status["countries"].get(COUNTRY, {})

    def fresh(name: str) -> bool:
        probe = targets[name]["last_probe"]
        return since is None or (probe is not None and probe["success"] and probe["started_at"] > since)

    return (
        bool(status["vantage_online"])
        and country.get("state") == "normal"
        and all(name in targets and targets[name]["state"] == "up" and fresh(name) for name in reachable)
    )


def country_state(daemon: Daemon) -> dict[str, float]:
    samples = daemon.metrics()
    return {
        state: value(samples, "monitor_country_state", country=COUNTRY, state=state) or 0.0
        for state in ("normal", "degraded", "shutdown")
    }


def _down_targets(samples: dict[Any, float], reachable: list[str]) -> list[str]:
    """Targets that were reachable before the blackout and are down now."""
    return [
        dict(labels)["target"]
        for (name, labels), v in samples.items()
        if name == "monitor_target_up" and v == 0.0 and dict(labels).get("target") in reachable
    ]


def _country_outage_start(samples: dict[Any, float]) -> float | None:
    for (name, labels), v in samples.items():
        if name == "monitor_outage_start_timestamp_seconds":
            lab = dict(labels)
            if lab.get("scope") == "country" and lab.get("country", lab.get("key")) == COUNTRY:
                return v
    return None


def opened_by_scope(daemon: Daemon) -> dict[str, float]:
    samples = daemon.metrics()
    return {scope: value(samples, "monitor_outages_total", scope=scope) or 0.0 for scope in SCOPES}


def opened_since(daemon: Daemon, before: dict[str, float]) -> dict[str, float]:
    """Outages opened by scope since `before` (an earlier opened_by_scope)."""
    return {scope: n - before[scope] for scope, n in opened_by_scope(daemon).items()}


def _false_outages(opened: dict[str, float], expected: str) -> int:
    """Outages opened beside the one expected outage of scope `expected`."""
    return int(sum(n for scope, n in opened.items() if scope != expected) + max(0.0, opened[expected] - 1))


def _network_outage_open(daemon: Daemon) -> bool:
    return any(
        outage["scope"] == "network" and outage["asn"] == NETWORK_ASN
        for outage in daemon.status()["open_outages"]
    )


def network_run(
    index: int, lab: Lab, daemon: Daemon, reachable: list[str], interval: float, limit: float
) -> dict[str, Any]:
    before = opened_by_scope(daemon)
    lab.post(f"/network/{NETWORK_ASN}/blackhole")
    detected = wait_until(
        lambda: _network_outage_open(daemon), timeout=limit, what="a network outage", every=0.25
    )
    restored_at = time.time()
    lab.post("/restore")
    wait_until(
        lambda: is_normal(daemon, reachable, since=restored_at),
        timeout=limit,
        what="every reachable target probed up again",
    )
    wait_until(lambda: not daemon.status()["open_outages"], timeout=limit, what="no outage open")
    opened = opened_since(daemon, before)
    false_ones = _false_outages(opened, "network")
    print(
        f"  run {index}: network AS{NETWORK_ASN} outage after {detected:.1f} s "
        f"({detected / interval:.2f} intervals); false outages: {false_ones}",
        flush=True,
    )
    return {
        "run": index,
        "detection_seconds": round(detected, 2),
        "detection_intervals": round(detected / interval, 3),
        "opened_by_scope": opened,
        "false_outages": false_ones,
        "within_goal": detected / interval <= NETWORK_GOAL_INTERVALS,
    }


def one_run(
    index: int, lab: Lab, daemon: Daemon, reachable: list[str], interval: float, limit: float
) -> dict[str, Any]:
    before = opened_by_scope(daemon)
    t0 = time.time()
    lab.post(f"/country/{COUNTRY}/blackhole", {"except": STAYS_UP})
    applied = time.time() - t0
    first_down: float | None = None
    first_down_names: list[str] = []
    detected: float | None = None
    samples: dict[Any, float] = {}
    while time.time() - t0 < limit:
        daemon.check_alive()
        samples = daemon.metrics()
        now = time.time()
        if first_down is None and _down_targets(samples, reachable):
            first_down = now - t0
            first_down_names = _down_targets(samples, reachable)
        if value(samples, "monitor_country_state", country=COUNTRY, state="shutdown") == 1.0:
            detected = now - t0
            break
        time.sleep(POLL_SECONDS)
    if detected is None:
        raise BenchError(f"run {index}: no shutdown detected within {limit:g} s of the blackout")
    start = _country_outage_start(samples)
    opened = detected if start is not None else None
    while start is None and time.time() - t0 < detected + 10:  # the outage opens at an evaluation
        time.sleep(POLL_SECONDS)
        start = _country_outage_start(daemon.metrics())
        opened = time.time() - t0 if start is not None else None
    ratio = value(samples, "monitor_group_reachable_ratio", country=COUNTRY, category="all")
    down = _down_targets(samples, reachable)
    first = (
        f"; first reachable target down: {', '.join(first_down_names)} at {first_down:.1f} s"
        if first_down
        else ""
    )
    print(
        f"  run {index}: shutdown after {detected:.1f} s ({detected / interval:.2f} intervals){first}",
        flush=True,
    )

    restored_at = time.time()
    lab.post("/restore")
    back_to_normal = wait_until(
        lambda: country_state(daemon)["normal"] == 1.0,
        timeout=limit,
        what="the country state to be normal after the restore",
        every=POLL_SECONDS,
    )
    wait_until(
        lambda: is_normal(daemon, reachable, since=restored_at),
        timeout=limit,
        what="every reachable target probed up again",
    )
    all_up = time.time() - restored_at
    wait_until(lambda: not daemon.status()["open_outages"], timeout=limit, what="no outage open")
    opened_outages = opened_since(daemon, before)
    print(
        f"         normal again {back_to_normal:.1f} s after the restore,"
        f" every target probed up after {all_up:.1f} s",
        flush=True,
    )
    return {
        "run": index,
        "detection_seconds": round(detected, 2),
        "detection_intervals": round(detected / interval, 3),
        "first_target_down_seconds": round(first_down, 2) if first_down is not None else None,
        "country_outage_open_seconds": round(opened, 2) if opened is not None else None,
        "outage_dated_start_after_blackout_seconds": round(start - t0, 2) if start is not None else None,
        "reachable_ratio_at_detection": ratio,
        "targets_down_at_detection": len(down),
        "first_targets_down": first_down_names,
        "blackhole_request_seconds": round(applied, 3),
        "normal_after_restore_seconds": round(back_to_normal, 2),
        "all_up_after_restore_seconds": round(all_up, 2),
        "opened_by_scope": opened_outages,
        "false_outages": _false_outages(opened_outages, "country"),
        "within_goal": detected / interval <= GOAL_INTERVALS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one run at a 5 s interval (timeout 2s)")
    parser.add_argument("--repeats", type=int, help="blackouts (default 3; quick 1)")
    parser.add_argument("--interval", help="probe interval (default 15s; quick 5s)")
    parser.add_argument("--timeout", help="probe timeout (default 5s; quick 2s)")
    parser.add_argument("--down-after", type=int, help="failures before a target is down (daemon default 3)")
    parser.add_argument("--up-after", type=int, help="successes before a target is up (daemon default 2)")
    parser.add_argument("--json-out", type=Path, default=default_json(NAME))
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.interval = args.interval or ("5s" if args.quick else "15s")
    args.timeout = args.timeout or ("2s" if args.quick else "5s")

    info = machine_info()
    print_machine(info)
    workdir = Path(tempfile.mkdtemp(prefix="bench-detection-"))
    try:
        result = run(args, info, workdir)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.json_out, result)
    print(f"\nJSON: {args.json_out}")
    return 0


def run(args: argparse.Namespace, info: dict[str, Any], workdir: Path) -> dict[str, Any]:
    interval = parse_duration(args.interval)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"benchmark": NAME, "machine": info, "config": config}
    with Stack() as stack:
        lab = start_lab(
            workdir, "--preset", "kazakhstan", "--interval", args.interval, "--timeout", args.timeout
        )
        stack.callback(lab.proc.stop)
        catalog = lab.config
        overrides = {
            key: v
            for key, v in (("down_after", args.down_after), ("up_after", args.up_after))
            if v is not None
        }
        if overrides:
            document = yaml.safe_load(lab.config.read_text())
            document["defaults"].update(overrides)
            catalog = workdir / "targets-detection.yaml"
            catalog.write_text(yaml.safe_dump(document, sort_keys=False))
        daemon = start_daemon(catalog, workdir / "monitor.log")
        stack.callback(daemon.stop)
        reachable = reachable_targets(lab)
        down_after = args.down_after or 3
        up_after = args.up_after or 2
        limit = interval * (down_after + up_after + 6) + 60
        print(
            f"kazakhstan preset: {len(reachable)} reachable targets and controls; interval {args.interval}, "
            f"timeout {args.timeout}, down_after {down_after}, up_after {up_after}; {args.repeats} blackouts",
            flush=True,
        )
        started = time.monotonic()
        wait_until(
            lambda: is_normal(daemon, reachable), timeout=limit, what="every reachable target up, KZ normal"
        )
        result["initially_normal_after_seconds"] = round(time.monotonic() - started, 2)
        waited = wait_until(
            lambda: not daemon.status()["verdicts_frozen"], timeout=limit, what="the daemon's warm-up to end"
        )
        result["daemon_warmup_seconds"] = round(time.monotonic() - started, 2)
        print(f"waited {waited:.0f} s more for the daemon's warm-up (outages may open only after it)")
        system = SystemMeter().start()
        runs, network_runs = [], []
        for i in range(args.repeats):
            runs.append(one_run(i + 1, lab, daemon, reachable, interval, limit))
            network_runs.append(network_run(i + 1, lab, daemon, reachable, interval, limit))
        result["machine_during_runs"] = system.stop().as_dict()
    seconds = [r["detection_seconds"] for r in runs]
    result["runs"] = runs
    result["summary"] = {
        "interval_seconds": interval,
        "detection_seconds_median": round(statistics.median(seconds), 2),
        "detection_seconds_max": max(seconds),
        "detection_intervals_median": round(statistics.median(seconds) / interval, 3),
        "detection_intervals_max": round(max(seconds) / interval, 3),
        "goal_intervals": GOAL_INTERVALS,
        "all_within_goal": all(r["within_goal"] for r in runs),
        "network_detection_intervals_median": round(
            statistics.median(r["detection_seconds"] for r in network_runs) / interval, 3
        ),
        "network_goal_intervals": NETWORK_GOAL_INTERVALS,
        "false_outages": sum(r["false_outages"] for r in [*runs, *network_runs]),
    }
    result["network_runs"] = network_runs
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    c = result["config"]
    print(
        f"\nDetection latency: kazakhstan preset, interval {c['interval']}, timeout {c['timeout']}, "
        f"blackhole KZ except {', '.join(STAYS_UP)}"
    )
    rows = [
        [
            r["run"],
            r["detection_seconds"],
            r["detection_intervals"],
            verdict(r["within_goal"]),
            r["first_target_down_seconds"],
            r["country_outage_open_seconds"],
            r["outage_dated_start_after_blackout_seconds"],
            r["targets_down_at_detection"],
            r["reachable_ratio_at_detection"],
            r["normal_after_restore_seconds"],
        ]
        for r in result["runs"]
    ]
    header = [
        "run",
        "detect_s",
        "intervals",
        "<=2 int",
        "1st_down_s",
        "outage_open_s",
        "dated_start_s",
        "down",
        "ratio",
        "recover_s",
    ]
    print(table(rows, header))
    s = result["summary"]
    print(
        f"median {s['detection_seconds_median']} s = {s['detection_intervals_median']} intervals; "
        f"max {s['detection_seconds_max']} s = {s['detection_intervals_max']} intervals; "
        f"goal within {s['goal_intervals']:g} intervals: {verdict(s['all_within_goal'])}"
    )
    network = s["network_detection_intervals_median"]
    print(
        f"network AS{NETWORK_ASN}: median {network} intervals (goal {s['network_goal_intervals']:g}: "
        f"{verdict(network <= s['network_goal_intervals'])}); false outages in all runs: {s['false_outages']}"
    )
    print(
        f"(initially normal {result['initially_normal_after_seconds']} s after the daemon started; "
        f"its warm-up ended after {result['daemon_warmup_seconds']:g} s)"
    )
    m = result["machine_during_runs"]
    print(
        f"whole machine during the runs: {m['machine_busy_cores']:.2f} cores busy; load average "
        f"{m['loadavg_start']} -> {m['loadavg_end']}"
    )
    print(
        "detect_s: blackout request -> monitor_country_state{state=shutdown} 1 (polled every 0.5 s); "
        "1st_down_s: first reachable target's monitor_target_up 0; outage_open_s: country outage in "
        "/metrics; dated_start_s: its start timestamp minus the blackout time; recover_s: restore -> normal"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        sys.exit(2)
