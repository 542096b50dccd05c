"""The real Prometheus and Alertmanager binaries on loopback, for the end-to-end tests.

A webhook that records what Alertmanager delivers; servers started as processes and waited for
on /-/ready; the shipped Alertmanager configuration sending to that webhook; the shipped rules with
their durations divided by a speed-up; and a TCP path the test can cut (remote-write).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web

from monitor.catalog.durations import format_duration, parse_duration
from tests.system.daemon_harness import free_port, until

__all__ = [
    "ALERTMANAGER",
    "PROMETHEUS",
    "CuttablePath",
    "Delivery",
    "QueryError",
    "Server",
    "Webhook",
    "alertmanager_alerts",
    "alertmanager_config",
    "fast_rules",
    "fast_seconds",
    "label_key",
    "query",
    "skip_unless_installed",
    "start_alertmanager",
    "start_server",
    "start_webhook",
]

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def skip_unless_installed() -> None:
    """At the top of a test module that needs both binaries."""
    if PROMETHEUS is None or ALERTMANAGER is None:
        pytest.skip(
            "needs the prometheus and alertmanager binaries (Debian: apt-get install prometheus "
            "prometheus-alertmanager)",
            allow_module_level=True,
        )


def label_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Delivery:
    receiver: str
    status: str
    labels: dict[str, str]

    def matches(self, **labels: str) -> bool:
        return all(self.labels.get(name, "") == value for name, value in labels.items())


@dataclass
class Webhook:
    """What Alertmanager's webhook_configs post, one Delivery per alert in each notification."""

    deliveries: list[Delivery] = field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        payload = await request.json()
        for alert in payload["alerts"]:
            self.deliveries.append(Delivery(payload["receiver"], alert["status"], alert["labels"]))
        return web.Response(text="ok")

    def since(self, mark: int, **labels: str) -> list[Delivery]:
        """Deliveries after the first `mark`; a label given as "" matches alerts without it."""
        return [delivery for delivery in self.deliveries[mark:] if delivery.matches(**labels)]

    def latest_status(self) -> dict[tuple[tuple[str, str], ...], str]:
        return {label_key(d.labels): d.status for d in self.deliveries}


async def start_webhook(exits: AsyncExitStack, webhook: Webhook) -> str:
    """Serve `webhook` at /alerts/{receiver} on a free loopback port; its base URL."""
    app = web.Application()
    app.router.add_post("/alerts/{receiver}", webhook.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    exits.push_async_callback(runner.cleanup)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}"


@dataclass
class Server:
    name: str
    process: asyncio.subprocess.Process
    base: str
    log: Path

    @property
    def address(self) -> str:
        """host:port, as a Prometheus configuration names a target."""
        return self.base.removeprefix("http://")


async def start_server(
    stack: AsyncExitStack,
    session: aiohttp.ClientSession,
    name: str,
    argv: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
) -> Server:
    with open(log, "wb") as out:  # the child keeps its own copy of the fd
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
        )
    stack.push_async_callback(_stop, process)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    await until(lambda: _ready(session, server), timeout=30, what=f"{name} to answer /-/ready")
    return server


async def _ready(session: aiohttp.ClientSession, server: Server) -> bool:
    if server.process.returncode is not None:
        raise AssertionError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
    try:
        async with session.get(server.base + "/-/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


async def start_alertmanager(
    exits: AsyncExitStack, session: aiohttp.ClientSession, workdir: Path, config: dict[str, Any]
) -> Server:
    """Alertmanager with `config` on a free loopback port, alone (no cluster gossip)."""
    assert ALERTMANAGER is not None
    port = free_port()
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return await start_server(exits, session, "alertmanager", [
        ALERTMANAGER, f"--config.file={path}", f"--storage.path={workdir / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ], port, workdir / "alertmanager.log")  # fmt: skip


def alertmanager_config(path: Path, webhook: str, timing: dict[str, str]) -> dict[str, Any]:
    """The Alertmanager configuration at `path` with its routes and inhibitions as shipped, its
    group timings set to `timing`, sending every receiver to `webhook`."""
    config = yaml.safe_load(path.read_text())
    routes = [config["route"]]
    config["route"].update(timing)
    while routes:
        route = routes.pop()
        for key in timing.keys() & route.keys():
            route[key] = timing[key]
        routes += route.get("routes", [])
    for receiver in config["receivers"]:
        assert set(receiver) == {"name", "webhook_configs"}, f"only webhooks are redirected: {receiver}"
        for hook in receiver["webhook_configs"]:
            hook["url"] = webhook + urlsplit(hook["url"]).path
    return config


def fast_rules(path: Path, speedup: float) -> dict[str, Any]:
    """The rules at `path` with every `for:` and `keep_firing_for:` divided by `speedup`."""
    rules = yaml.safe_load(path.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = format_duration(max(1.0, parse_duration(rule[key]) / speedup))
    return rules


def fast_seconds(path: Path, speedup: float, alert: str, key: str) -> float:
    """`for:` or `keep_firing_for:` of `alert` in the sped-up copy of the rules at `path`."""
    rules = {
        rule.get("alert"): rule for group in fast_rules(path, speedup)["groups"] for rule in group["rules"]
    }
    return parse_duration(rules[alert].get(key, "0s"))


class QueryError(AssertionError):
    pass


async def query(
    session: aiohttp.ClientSession, prometheus: Server, expr: str, at: float | None = None
) -> list[dict[str, Any]]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    async with session.get(prometheus.base + "/api/v1/query", params=params) as response:
        body = await response.json()
    if body.get("status") != "success":
        raise QueryError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return list(body["data"]["result"])


async def alertmanager_alerts(
    session: aiohttp.ClientSession, alertmanager: Server, **labels: str
) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds now (active, silenced or inhibited; resolved ones drop out)."""
    async with session.get(alertmanager.base + "/api/v2/alerts") as response:
        alerts = await response.json()
    return [a for a in alerts if all(a["labels"].get(k, "") == v for k, v in labels.items())]


class CuttablePath:
    """A TCP forwarder on loopback between a client and a server that the test cuts and mends:
    cut, the connections in flight are reset and new ones refused, as a dead route would."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def mend(self) -> None:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()
        for pipe in list(self._pipes):
            pipe.cancel()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.transport.abort()
