"""Our own trouble is not the world's outage: with every descriptor of the daemon taken by idle
clients no outage opens; with the whole process stopped for seconds, only our own `self` one."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from monitor.lab.internet import SimulatedInternet
from monitor.probing.loop_health import LoopHealth
from tests.system.daemon_harness import controls_up, start_daemon, until, write_fast_config

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),  # the lab (conftest's `net`) runs on the module's loop
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed"),
]

OPEN_FILES = 128


async def test_descriptors_exhausted_by_idle_clients_open_no_outage(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    await net.restore_all()
    daemon = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"),
        tmp_path / "journal.sqlite",
        prefix=("prlimit", f"--nofile={OPEN_FILES}:{OPEN_FILES}"),
    )
    idle: list[socket.socket] = []
    try:
        await until(lambda: controls_up(daemon), timeout=30, what="every control up")
        for _ in range(OPEN_FILES + 20):  # more than the daemon can hold: it runs out of descriptors
            client = socket.create_connection(("127.0.0.1", daemon.port))
            idle.append(client)
        await asyncio.sleep(6)  # six probe rounds with no descriptor to spare
        for client in idle:
            client.close()
        idle.clear()
        await asyncio.sleep(3)
        status = await daemon.json("/api/status")
        outages = await daemon.json("/api/outages?since=1h")
        local_errors = await daemon.value("monitor_probe_local_errors_total")
    finally:
        for client in idle:
            client.close()
        await daemon.stop()
    assert local_errors is not None and local_errors > 0
    assert status["vantage_online"] is True
    assert outages["outages"] == []
    log = daemon.log.read_text()
    assert "not counted as evidence" in log and "vantage point offline" not in log


async def test_the_loop_timer_sees_a_real_blocked_loop() -> None:
    health = LoopHealth(period=0.01, stall_threshold=0.1)
    task = asyncio.create_task(health.run())
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # block the loop
    await asyncio.sleep(0.05)
    task.cancel()
    assert not health.healthy() and health.stalled_during(time.monotonic() - 1, time.monotonic())


async def test_a_daemon_stopped_for_seconds_reports_one_self_outage_and_nothing_else(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    await net.restore_all()
    config = write_fast_config(net, tmp_path / "targets.yaml")
    daemon = await start_daemon(config, tmp_path / "journal.sqlite")
    for server in net.web_servers:  # slow but in time: most probes are in flight at any moment
        server.first_byte_delay = 0.6
    try:
        await until(lambda: controls_up(daemon), timeout=30, what="every control up")
        for _ in range(4):  # each time, most controls are waiting for their answer
            daemon.process.send_signal(signal.SIGSTOP)  # no timer, no socket read, for 2.5 s
            await asyncio.sleep(2.5)
            daemon.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(1.5)
        healthy = await daemon.value("monitor_self_healthy")
        stalls = await daemon.value("monitor_event_loop_stalls_total")
        outages = await daemon.json("/api/outages?since=1h")
        status = await daemon.json("/api/status")
    finally:
        for server in net.web_servers:
            server.first_byte_delay = 0.0
        await daemon.stop()
    assert healthy == 0 and stalls is not None and stalls >= 4
    assert status["vantage_online"] is True
    # Four stalls less than a minute apart: one blind spell of our own, never the world's outage.
    assert [(o["scope"], o["key"], o["ended_at"]) for o in outages["outages"]] == [("self", "self", None)]
    assert "event loop stalled" in daemon.log.read_text()
