"""The benchmarks in bench/ run (in --quick mode) and write sane JSON.

Each script is started as a subprocess, exactly as a person would run it; everything it starts
(the lab, our daemon, blackbox_exporter) listens on loopback only. About two minutes in all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.system.netns_monitor import skip_without_namespaces

ROOT = Path(__file__).resolve().parents[2]
BLACKBOX = "prometheus-blackbox-exporter"


def _blackbox_unavailable() -> str | None:
    if shutil.which(BLACKBOX) is None and not Path(f"/usr/bin/{BLACKBOX}").exists():
        return f"{BLACKBOX} is not installed (the Debian package; scripts/setup-debian.sh installs it)"
    if os.geteuid() != 0:
        return "not root: the lab DNS cannot bind port 53 for blackbox_exporter's resolver"
    if shutil.which("unshare") is None:
        return "unshare(1) is missing (Debian package util-linux): no private resolv.conf for blackbox"
    return None


def _run(script: str, out: Path, *extra: str, timeout: float = 150) -> tuple[dict[str, Any], str]:
    command = [
        sys.executable,
        str(ROOT / "bench" / f"{script}.py"),
        "--quick",
        "--json-out",
        str(out),
        *extra,
    ]
    # Its own session: a benchmark that overruns is stopped with the lab and daemon it started,
    # which would otherwise go on loading the machine under the tests that follow.
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        printed = f"{stdout[-4000:]}\n{stderr[-4000:]}"
        raise AssertionError(f"{' '.join(command)} took over {timeout:g} s; it printed:\n{printed}") from None
    printed = f"{stdout[-4000:]}\n{stderr[-4000:]}"
    assert proc.returncode == 0, f"{' '.join(command)} exited {proc.returncode}\n{printed}"
    return json.loads(out.read_text()), stdout


def _machine_ok(result: dict[str, Any]) -> None:
    machine = result["machine"]
    assert machine["cores"] >= 1
    assert machine["cpu_model"]
    assert machine["python"].startswith("3.")
    assert "blackbox_exporter" in machine


@pytest.fixture(scope="module")
def per_probe(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str | None]:
    out = tmp_path_factory.mktemp("bench") / "per_probe_cpu.json"
    missing = _blackbox_unavailable()
    extra = ("--no-blackbox",) if missing else ("--blackbox-dns", "namespace")
    result, stdout = _run("per_probe_cpu", out, *extra)
    return result, stdout, missing


def test_per_probe_cpu_ours(per_probe: tuple[dict[str, Any], str, str | None]) -> None:
    result, stdout, _ = per_probe
    _machine_ok(result)
    assert result["problems"] == []
    ours = result["probe_endpoint"]["ours"]
    for kind in ("http", "https"):
        assert ours[kind]["probes"] == 100
        assert ours[kind]["succeeded"] == 100
    assert ours["all"]["probes"] == 200
    assert ours["all"]["cpu_seconds"] > 0
    assert 0 < ours["all"]["cpu_seconds_per_1000"] < 100
    assert ours["all"]["probes_per_second"] > 0
    scheduled = result["ours_scheduled"]
    for kind in ("http", "https", "all"):
        assert scheduled[kind]["probes"] > 0
        assert scheduled[kind]["succeeded"] == scheduled[kind]["probes"]
    assert scheduled["all"]["cpu_seconds"] > 0
    assert "CPU per 1,000 probes" in stdout


def test_per_probe_cpu_blackbox_side_by_side(per_probe: tuple[dict[str, Any], str, str | None]) -> None:
    result, stdout, missing = per_probe
    if missing:
        pytest.skip(f"blackbox comparison not run: {missing}")
    assert result["blackbox_mode"] == "namespace"
    blackbox = result["probe_endpoint"]["blackbox"]
    assert blackbox["all"]["probes"] == 200
    assert blackbox["all"]["succeeded"] == 200
    assert blackbox["all"]["cpu_seconds"] > 0
    ratio = result["ratio_ours_over_blackbox"]
    assert set(ratio) == {"http", "https", "all"}
    assert 0 < ratio["all"] < 100
    assert "ratio ours/blackbox" in stdout


def test_scale_quick(tmp_path: Path) -> None:
    result, stdout = _run("scale", tmp_path / "scale.json")
    _machine_ok(result)
    assert result["problems"] == []
    summary = result["summary"]
    assert summary["targets"] == 505  # 500 synthetic + 5 controls
    assert summary["probes"] > 0
    assert summary["probes_per_second"] > 0
    assert summary["probes_per_second_scheduled"] == pytest.approx(50.5)
    assert summary["cpu_cores"] > 0
    assert summary["cpu_seconds_per_1000_probes"] > 0
    assert 0 < summary["rss_peak_vmhwm_mib"] < 4096
    assert summary["rss_end_mib"] > 0
    assert summary["fds_max"] > 0
    assert 0 < summary["success_ratio"] <= 1
    assert summary["lag_p50_seconds"] is not None and summary["lag_p99_seconds"] >= summary["lag_p50_seconds"]
    assert summary["lab_cpu_cores"] > 0
    assert "schedule lag p99" in stdout


def test_detection_quick(tmp_path: Path) -> None:
    result, stdout = _run("detection", tmp_path / "detection.json")
    _machine_ok(result)
    assert len(result["runs"]) == 1
    run = result["runs"][0]
    assert 0 < run["detection_seconds"] < 120
    assert run["detection_intervals"] == pytest.approx(run["detection_seconds"] / 5, abs=0.01)
    assert run["normal_after_restore_seconds"] > 0
    summary = result["summary"]
    assert summary["interval_seconds"] == 5
    assert (summary["goal_intervals"], summary["network_goal_intervals"]) == (2, 3)
    assert summary["network_detection_intervals_median"] > 0
    assert summary["false_outages"] == 0  # a correctness figure, not a timing one
    assert "Detection latency" in stdout


def test_scheduler_overhead_quick(tmp_path: Path) -> None:
    result, stdout = _run("scheduler_overhead", tmp_path / "scheduler_overhead.json")
    assert (result["targets"], result["interval_seconds"]) == (300, 2)
    assert result["apscheduler_us_per_fire"] > 0 and result["bare_timer_us_per_fire"] > 0
    assert result["ratio_apscheduler_over_bare_timer"] > 0
    assert "apscheduler" in stdout and "bare timer" in stdout


def test_verdict_quick_side_by_side_with_a_commit(tmp_path: Path) -> None:
    result, stdout = _run("verdict", tmp_path / "verdict.json", "--ref", "HEAD")
    assert (result["targets"], result["rounds"], result["ref"]["commit"]) == (500, 3, "HEAD")
    for side in ("this", "ref"):
        assert set(result[side]) >= {"all up", "one network dark", "country dark"}
        assert all(figures["evaluate"] > 0 for figures in result[side].values() if isinstance(figures, dict))
    assert "ratio" in stdout


def test_status_page_quick_against_the_json_of_the_same_data(tmp_path: Path) -> None:
    result, stdout = _run("status_page", tmp_path / "status_page.json")
    assert (result["targets"], result["requests"]) == (200, 5)
    for path in ("/", "/ (public)", "/api/status"):
        assert result[path]["median_ms"] > 0 and result[path]["kib"] > 0
    assert result["/ (public)"]["kib"] < result["/"]["kib"]  # no target table
    assert "vs /api/status" in stdout


def test_blocks_bench_measures_ours_and_blackbox_icmp_on_namespaced_blocks(tmp_path: Path) -> None:
    skip_without_namespaces("bench/blocks.py's network namespaces")
    missing = _blackbox_unavailable()
    result, stdout = _run("blocks", tmp_path / "blocks.json", *(("--no-blackbox",) if missing else ()))
    _machine_ok(result)
    ours, *reference = result["rows"]
    assert ours["probes"] >= 200 and ours["rounds"] >= 1  # 200 blocks, every probe answered
    assert 0 < ours["cpu_ms_per_probe"] < 50 and ours["packets_per_second"] > 0
    assert "goal, 10,000 blocks per 10-minute round under 0.1 core" in stdout
    if not missing:
        assert reference[0]["prober"] == "blackbox_exporter icmp" and reference[0]["probes"] > 0
        assert "ours / blackbox_exporter" in stdout


def test_paths_bench_measures_ours_and_traceroute_on_a_chain_of_routers(tmp_path: Path) -> None:
    skip_without_namespaces("bench/paths.py's network namespaces")
    missing = shutil.which("traceroute") is None  # scripts/setup-debian.sh installs it
    result, stdout = _run("paths", tmp_path / "paths.json", *(("--no-reference",) if missing else ()))
    _machine_ok(result)
    intact, cut = result["paths"]["intact"], result["paths"]["cut at the core"]
    assert (
        intact[0]["packets_per_trace"] >= 5 and cut[0]["packets_per_trace"] >= 2 + 6
    )  # 3 silent hops, twice
    assert 0 < intact[0]["cpu_ms_per_trace"] < 100
    assert "100 networks, a usual trace each an hour" in stdout
    if not missing:
        assert cut[1]["tracer"] == "traceroute (Debian)" and cut[1]["packets_per_trace"] == 30
        assert "ours / traceroute" in stdout
