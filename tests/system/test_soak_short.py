"""The soak test's short mode: resources stay bounded, no deadline overruns, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_short_soak_keeps_resources_flat_and_deadlines_kept(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, "bench/soak.py", "--quick", "--json-out", str(report_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    assert report["probes"] > report["targets"] * 20
    assert report["deadline_overruns"] == 0 and report["tracebacks_in_log"] == 0
    assert report["max"]["rss_mb"] < 200
    assert report["end"]["fds"] <= report["start"]["fds"] + 20
    assert report["end"]["monitor_asyncio_tasks"] <= report["start"]["monitor_asyncio_tasks"] + 50
