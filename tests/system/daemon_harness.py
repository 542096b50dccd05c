"""The daemon under test: started through monitor.lab.harness, read over HTTP from async tests."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from monitor.lab.harness import MonitorProcess, free_port, run_monitor
from monitor.lab.internet import SimulatedInternet

__all__ = ["Daemon", "controls_up", "free_port", "start_daemon", "until", "write_fast_config"]


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
    """A running `monitor run` (started by the lab's harness) with async HTTP helpers."""

    proc: MonitorProcess

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.proc.popen

    @property
    def port(self) -> int:
        return self.proc.port

    @property
    def config(self) -> Path:
        return self.proc.config

    @property
    def log(self) -> Path:
        """The daemon's stderr."""
        return self.proc.log

    @property
    def base(self) -> str:
        return self.proc.base

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + path, ssl=self.proc.tls or False, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def post(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.post(self.base + path) as response:
            return response.status, await response.text()

    async def metrics(
        self, headers: dict[str, str] | None = None
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        _, text = await self.get("/metrics", headers)
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    async def value(self, name: str, **labels: str) -> float | None:
        return (await self.metrics()).get((name, tuple(sorted(labels.items()))))

    async def json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + path, headers=headers) as response,
        ):
            return await response.json()

    async def schedule_lag(self, headers: dict[str, str] | None = None) -> tuple[float, float]:
        """monitor_schedule_lag_seconds: (sum, count) now."""
        samples = await self.metrics(headers)
        return (
            samples[("monitor_schedule_lag_seconds_sum", ())],
            samples[("monitor_schedule_lag_seconds_count", ())],
        )

    async def stop(self, sig: int = signal.SIGTERM) -> float:
        """Send `sig` and return how long the daemon took to exit; its log must hold no traceback."""
        elapsed = await asyncio.to_thread(self.proc.stop, sig)
        self.proc.assert_clean_log()
        return elapsed


async def start_daemon(
    config: Path, state: Path, *extra: str, tls: ssl.SSLContext | None = None, prefix: Sequence[str] = ()
) -> Daemon:
    daemon = Daemon(run_monitor(config, *extra, state=state, tls=tls, prefix=prefix))
    await asyncio.to_thread(daemon.proc.wait_healthy, 20)  # the lab keeps serving on this loop
    return daemon


async def controls_up(daemon: Daemon) -> bool:
    """The vantage online and every control up: the daemon sees out."""
    status = await daemon.json("/api/status")
    return status["vantage_online"] and all(t["state"] == "up" for t in status["targets"] if t["control"])


async def judging_with_all_up(daemon: Daemon, geo_blocked: str = "akorda") -> bool:
    """Every lab target has a state and is up (but the one geo-blocked from abroad), and verdicts
    are judged: a target still unknown was never up, so no outage would ever count it."""
    status = await daemon.json("/api/status")
    reachable = [t for t in status["targets"] if t["name"] != geo_blocked]
    return not status["verdicts_frozen"] and all(t["state"] == "up" for t in reachable)


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> float:
    """Poll `check` until it holds; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
