"""A running `monitor run` subprocess against the lab, and helpers to read its metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from monitor.lab.internet import SimulatedInternet


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_fast_config(net: SimulatedInternet, path: Path) -> Path:
    return net.write_targets_yaml(
        path,
        interval="1s",
        timeout="900ms",
        defaults={"down_after": 2, "up_after": 1},
        analysis={"evaluate_every": "250ms"},
    )


@dataclass
class Daemon:
    process: asyncio.subprocess.Process
    port: int
    config: Path
    state: Path
    tls: ssl.SSLContext | None = None  # the client side, when the daemon serves TLS

    @property
    def log(self) -> Path:
        """The daemon's stderr."""
        return self.config.with_suffix(".log")

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + path, ssl=self.tls or False, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def post(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.post(self.base + path) as response:
            return response.status, await response.text()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        _, text = await self.get("/metrics")
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    async def value(self, name: str, **labels: str) -> float | None:
        return (await self.metrics()).get((name, tuple(sorted(labels.items()))))

    async def json(self, path: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(self.base + path) as response:
            return await response.json()

    async def stop(self, sig: int = signal.SIGTERM) -> float:
        """Send `sig` and return how long the daemon took to exit."""
        started = time.monotonic()
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise
        elapsed = time.monotonic() - started
        log = self.log.read_text(errors="replace")
        assert "Traceback" not in log and "Logging error" not in log, f"the daemon logged a traceback:\n{log}"
        return elapsed


async def start_daemon(config: Path, state: Path, *extra: str, tls: ssl.SSLContext | None = None) -> Daemon:
    port = free_port()
    with open(config.with_suffix(".log"), "wb") as log:  # the child keeps its own copy of the fd
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
            "--state",
            str(state),
            *extra,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    daemon = Daemon(process, port, config, state, tls)
    await until(lambda: _healthy(daemon), timeout=20, what="the daemon to serve /healthz")
    return daemon


async def _healthy(daemon: Daemon) -> bool:
    if daemon.process.returncode is not None:
        raise AssertionError(f"the daemon exited: {daemon.log.read_text()}")
    try:
        status, _ = await daemon.get("/healthz")
    except aiohttp.ClientError:
        return False
    return status == 200


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> float:
    """Poll `check` until it holds; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
