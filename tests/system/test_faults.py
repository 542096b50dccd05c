"""The daemon under faults: SIGTERM mid-flight, an unwritable journal, /metrics under load."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from monitor.lab.internet import SimulatedInternet
from monitor.lab.presets import synthetic
from monitor.lab.web import Mode
from tests.system.daemon_harness import start_daemon, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOSTS = 400


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def net(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedInternet]:
    async with synthetic(HOSTS, workdir=tmp_path_factory.mktemp("lab")) as internet:
        yield internet


def slow_config(net: SimulatedInternet, path: Path) -> Path:
    return net.write_targets_yaml(
        path, interval="4s", timeout="4s", defaults={"down_after": 2, "up_after": 1}
    )


async def test_sigterm_with_hundreds_of_probes_in_flight_exits_quickly_with_a_consistent_journal(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    await net.set_country("KZ", Mode.BLACKHOLE)  # every probe now waits for its connect deadline
    state = tmp_path / "journal.sqlite"
    daemon = await start_daemon(slow_config(net, tmp_path / "targets.yaml"), state)
    try:
        await until(
            lambda: _in_flight_at_least(daemon, HOSTS // 2), timeout=20, what=f"{HOSTS // 2} probes in flight"
        )
    finally:
        seconds = await daemon.stop()
        await net.restore_all()
    assert daemon.process.returncode == 0
    assert seconds < 5
    log = daemon.log.read_text()
    assert "Traceback" not in log
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def _in_flight_at_least(daemon, count: int) -> bool:  # type: ignore[no-untyped-def]
    return (await daemon.value("monitor_probes_in_flight") or 0) >= count


async def test_an_unwritable_journal_is_reported_and_probing_goes_on(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    daemon = await start_daemon(
        slow_config(net, tmp_path / "targets.yaml"), not_a_directory / "journal.sqlite"
    )
    try:
        assert await daemon.value("monitor_journal_healthy") == 0
        before = await daemon.value("monitor_probes_total", result="success") or 0
        await until(lambda: _more_probes(daemon, before + 50), timeout=20, what="probing to go on")
    finally:
        await daemon.stop()
    text = daemon.log.read_text()
    assert "outage journal" in text and "cannot read" in text and "Traceback" not in text


async def _more_probes(daemon, count: float) -> bool:  # type: ignore[no-untyped-def]
    return (await daemon.value("monitor_probes_total", result="success") or 0) >= count


async def test_metrics_stay_correct_and_timely_under_a_wrk_load(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (Debian package wrk); .ci/run installs it")
    daemon = await start_daemon(slow_config(net, tmp_path / "targets.yaml"), tmp_path / "journal.sqlite")
    try:
        await until(lambda: _more_probes(daemon, HOSTS), timeout=20, what="a round of probes")
        load = await asyncio.create_subprocess_exec(
            wrk, "-t2", "-c8", "-d8s", "--latency", f"{daemon.base}/metrics", stdout=asyncio.subprocess.PIPE
        )
        before = await daemon.value("monitor_probes_total", result="success") or 0
        stdout, _ = await load.communicate()
        after = await daemon.value("monitor_probes_total", result="success") or 0
        report = stdout.decode()
        assert "Non-2xx" not in report and "Socket errors" not in report, report
        # 400 targets every 4 s is 100 probes/s: the scrapes must not starve the schedule.
        assert after - before >= 0.8 * HOSTS / 4 * 8, report
        lag_p99 = await _lag_quantile(daemon, 0.99)
        assert lag_p99 <= 1.0, f"p99 schedule lag {lag_p99}s under load\n{report}"
    finally:
        await daemon.stop()


async def _lag_quantile(daemon, quantile: float) -> float:  # type: ignore[no-untyped-def]
    metrics = await daemon.metrics()
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in metrics.items()
        if name == "monitor_schedule_lag_seconds_bucket"
    )
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= quantile * total:
            return bound
    return float("inf")
