#!/usr/bin/env python3
"""The cost of one verdict: snapshot, rule table and book over N targets, this checkout side by
side with another commit (`--ref`, checked out with `git worktree` into a temporary directory).

    python bench/verdict.py [--targets 10000] [--rounds 7] [--ref COMMIT] [--quick]

No network and no daemon: each checkout runs in its own Python process, builds the catalog of
the synthetic lab (`monitor.lab.presets.synthetic`, never started), feeds its Analyzer six
rounds of results on a fake clock, and times `snapshot()`, `judge()` and `evaluate()` (all
three: snapshot, judge, reconcile) in three states: all up, one network dark, the country dark.
The daemon evaluates every `evaluate_every` (2 s) and at once on a change (at most every 250 ms),
so at 10,000 targets this is the analysis' share of a core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, default_json, machine_info, print_machine, table, write_json

NAME = "verdict"
STATES = ("all up", "one network dark", "country dark")

# Runs inside the measured checkout (its path first on sys.path); only APIs both sides have.
_MEASURE = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import yaml
from monitor.catalog.catalog import parse_catalog
from monitor.lab.presets import KCELL, synthetic
from monitor.outages.analysis import Analyzer
from monitor.outages.rules import judge
from monitor.probing.failures import Failure
from monitor.probing.result import ProbeResult

count, rounds = int(sys.argv[2]), int(sys.argv[3])
net = synthetic(count)
net.http_port, net.https_port = 8080, 8443  # never started: the catalog only needs ports
document = net.targets_config(interval="60s", timeout="5s")
document["defaults"]["resolvers"] = ["127.0.0.1"]
catalog = parse_catalog(yaml.safe_dump(document))
now = [1_000_000.0]
analyzer = Analyzer(clock=lambda: now[0])
analyzer.set_catalog(catalog)
asn_of = {target.name: target.asn for target in catalog.targets}
dark_share = {"all up": 0.0, "one network dark": None, "country dark": 0.8}


def feed(state):
    for index, target in enumerate(catalog.targets):
        share = dark_share[state]
        if share is None:
            dark = asn_of[target.name] == KCELL
        else:
            dark = not target.is_control and index % 10 < share * 10
        failure = Failure.TCP_TIMEOUT if dark else None
        analyzer.record(ProbeResult(target.name, now[0], 0.01, not dark, failure=failure))


figures = {}
for state in ("all up", "one network dark", "country dark"):
    for _ in range(6):
        now[0] += 60
        feed(state)
    now[0] += 5
    analyzer.evaluate()
    timings = {"snapshot": [], "judge": [], "evaluate": []}
    for _ in range(rounds):
        now[0] += 1
        started = time.perf_counter()
        snapshot = analyzer.snapshot()
        snapped = time.perf_counter()
        judge(snapshot)
        judged = time.perf_counter()
        analyzer.evaluate()
        timings["snapshot"].append(snapped - started)
        timings["judge"].append(judged - snapped)
        timings["evaluate"].append(time.perf_counter() - judged)
    figures[state] = {name: statistics.median(values) * 1000 for name, values in timings.items()}
print(json.dumps(figures))
"""


def measure(tree: Path, targets: int, rounds: int) -> dict[str, dict[str, float]]:
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(tree), str(targets), str(rounds)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tree,
    )
    if run.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{run.stderr[-2000:]}")
    figures: dict[str, dict[str, float]] = json.loads(run.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, help="synthetic targets (default 10000; quick 500)")
    parser.add_argument("--rounds", type=int, help="timed verdicts per state (default 7; quick 3)")
    parser.add_argument("--ref", help="another commit to measure side by side (e.g. HEAD~5)")
    parser.add_argument("--quick", action="store_true", help="500 targets, 3 rounds")
    parser.add_argument("--json-out", type=Path, default=default_json(NAME))
    args = parser.parse_args()
    targets = args.targets or (500 if args.quick else 10_000)
    rounds = args.rounds or (3 if args.quick else 7)
    info = machine_info()
    print_machine(info)
    results: dict[str, Any] = {"targets": targets, "rounds": rounds, "this": measure(ROOT, targets, rounds)}
    if args.ref:
        with tempfile.TemporaryDirectory(prefix="bench-verdict-") as workdir:
            tree = Path(workdir) / "ref"
            git = ["git", "-C", str(ROOT), "worktree"]
            subprocess.run([*git, "add", "-q", "--detach", str(tree), args.ref], check=True)
            try:
                results["ref"] = {"commit": args.ref, **measure(tree, targets, rounds)}
            finally:
                subprocess.run([*git, "remove", "--force", str(tree)], check=False)
    rows = []
    for state in STATES:
        for step in ("snapshot", "judge", "evaluate"):
            ours = results["this"][state][step]
            row: list[Any] = [state, step, f"{ours:.1f}"]
            if "ref" in results:
                theirs = results["ref"][state][step]
                row += [f"{theirs:.1f}", f"{ours / theirs:.2f}"]
            rows.append(row)
    header = ["state", "step", "ms (this)"] + (["ms (ref)", "ratio"] if "ref" in results else [])
    print(f"\nOne verdict over {targets} targets (median of {rounds}):")
    print(table(rows, header))
    print(f"wrote {write_json(args.json_out, {'machine': info, **results})}")


if __name__ == "__main__":
    main()
