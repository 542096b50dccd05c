"""Hostile clients against the daemon's port: a crowd of idle connections at a 1,024 descriptor
limit, a client that never finishes its headers, a malformed request."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import shutil
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.lab.internet import SimulatedInternet
from tests.system.daemon_harness import controls_up, start_daemon, until, write_fast_config

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the lab (conftest's `net`) runs on the module's loop

IDLE_CLIENTS = 1200
DAEMON_OPEN_FILES = 1024


def _raise_own_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        if os.geteuid() != 0:
            pytest.skip(f"the test needs {needed} open files, the hard limit is {hard} (root can raise it)")
        hard = needed
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _connect_idle(port: int, count: int) -> list[socket.socket]:
    """Non-blocking connects: beyond the daemon's slots and backlog they wait in SYN retries."""
    clients = []
    for _ in range(count):
        client = socket.socket()
        client.setblocking(False)
        code = client.connect_ex(("127.0.0.1", port))
        assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code)
        clients.append(client)
    return clients


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")
async def test_1200_idle_connections_at_a_1024_limit_neither_block_scrapes_nor_open_outages(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    _raise_own_limit(IDLE_CLIENTS + 256)
    await net.restore_all()
    daemon = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"),
        tmp_path / "journal.sqlite",
        prefix=("prlimit", f"--nofile={DAEMON_OPEN_FILES}:{DAEMON_OPEN_FILES}"),  # no raising past 1,024
    )
    idle: list[socket.socket] = []
    try:
        await until(lambda: controls_up(daemon), timeout=30, what="every control up")
        lag_before = await daemon.schedule_lag()
        idle = _connect_idle(daemon.port, IDLE_CLIENTS)
        answered, slowest = 0, 0.0
        timeout = aiohttp.ClientTimeout(total=5)
        for _ in range(25):
            started = time.monotonic()
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(daemon.base + "/metrics") as response,
                ):
                    answered += response.status == 200 and b"probe_success" in await response.read()
            except (TimeoutError, aiohttp.ClientError):
                pass
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.4)
        lag_after = await daemon.schedule_lag()
        shed = await daemon.value("monitor_web_connections_shed_total")
        local_errors = await daemon.value("monitor_probe_local_errors_total")
        outages = await daemon.json("/api/outages?since=1h")
    finally:
        for client in idle:
            client.close()
        await daemon.stop()
    mean_lag = (lag_after[0] - lag_before[0]) / max(1.0, lag_after[1] - lag_before[1])
    print(
        f"scrapes answered {answered}/25, slowest {slowest:.2f}s, mean schedule lag {mean_lag * 1000:.1f}ms"
    )
    assert answered == 25
    assert mean_lag < 0.05
    assert shed is not None and shed > 0  # silent connections made room for the scrapes
    assert local_errors == 0  # the probes never ran short of descriptors
    assert outages["outages"] == []


async def test_a_client_that_never_finishes_its_headers_is_closed(
    net: SimulatedInternet, tmp_path: Path
) -> None:
    daemon = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"), tmp_path / "journal.sqlite"
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: monitor\r\n")
        started = time.monotonic()
        closed_after = None
        while time.monotonic() - started < 30:
            writer.write(b"X")  # one byte of a header every second: the request never completes
            try:
                await writer.drain()
                if await asyncio.wait_for(reader.read(1024), timeout=1.0) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed_after = time.monotonic() - started
                break
        writer.close()
    finally:
        await daemon.stop()
    assert closed_after is not None and closed_after < 20, closed_after


async def test_a_malformed_request_is_one_warning_line(net: SimulatedInternet, tmp_path: Path) -> None:
    daemon = await start_daemon(
        write_fast_config(net, tmp_path / "targets.yaml"), tmp_path / "journal.sqlite"
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: monitor\r\nthis is no header\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(4096), timeout=5)
        writer.close()
        status, _ = await daemon.get("/healthz")
    finally:
        await daemon.stop()  # also asserts that the log holds no traceback
    assert answer.split(b" ")[1] == b"400" and status == 200
    warnings = [line for line in daemon.log.read_text().splitlines() if "Error handling request" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "400" in warnings[0], warnings
