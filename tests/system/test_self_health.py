"""Our own shortages are not the world's outages: with every descriptor of the daemon taken by
idle clients, probes fail locally, and no outage of any scope opens."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from monitor.lab.internet import SimulatedInternet
from tests.system.daemon_harness import start_daemon, until, write_fast_config

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),  # the lab (conftest's `net`) runs on the module's loop
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed"),
]

OPEN_FILES = 128


async def _all_up(daemon, net: SimulatedInternet) -> bool:  # type: ignore[no-untyped-def]
    status = await daemon.json("/api/status")
    return status["vantage_online"] and all(t["state"] == "up" for t in status["targets"] if t["control"])


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
        await until(lambda: _all_up(daemon, net), timeout=30, what="every control up")
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
