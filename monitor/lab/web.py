"""One simulated network's web server: an HTTP and an HTTPS port on one loopback IP, many
virtual hosts chosen by the Host header, and run-time switchable failure modes."""

from __future__ import annotations

import asyncio
import enum
import html
import ssl
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from monitor.lab.certs import DAYS_LEFT, LabPKI
from monitor.lab.loopback import BlackholeListener, require_loopback

__all__ = ["LabWebServer", "Mode", "VirtualHost"]

_SHUTDOWN_GRACE_SECONDS = 0.5
_TRICKLE_CHUNKS = 5
_WILDCARD_AFTER = 4  # hosts under one parent domain before a wildcard replaces their names


class Mode(enum.Enum):
    UP = "up"
    REFUSE = "refuse"  # nothing listens: connection refused
    BLACKHOLE = "blackhole"  # SYNs are dropped: connect times out
    HTTP_ERROR = "http_error"  # listening, but every host answers 503


@dataclass
class VirtualHost:
    name: str
    status: int = 200
    body: str | None = None
    redirect: str | None = None
    failing: bool = False  # answers 503 while the rest of the server is fine

    def page(self) -> str:
        if self.body is not None:
            return self.body
        name = html.escape(self.name)
        return (
            f"<!doctype html><html><head><title>{name}</title></head>"
            f"<body><h1>{name}</h1><p>Served by the shutdown-monitor lab.</p></body></html>"
        )


def _host_name(host_header: str) -> str:
    name = host_header.strip().lower()
    if name.startswith("["):  # [v6]:port; the lab is IPv4 but be tolerant of what clients send
        return name.split("]", 1)[0] + "]"
    return name.rsplit(":", 1)[0].rstrip(".")


class LabWebServer:
    """Virtual hosts on `ip`: plain HTTP on `http_port`, TLS on `https_port` (0 = pick one).

    The TLS certificate, from the lab CA, names every virtual host (and the IP), so any SNI
    a client sends validates. Ports chosen on the first start are kept across mode switches.
    """

    def __init__(
        self, ip: str, pki: LabPKI, *, http_port: int = 0, https_port: int = 0, hosts: Iterable[str] = ()
    ) -> None:
        self.ip = require_loopback(ip)
        self.http_port = http_port
        self.https_port = https_port
        self._pki = pki
        self._vhosts: dict[str, VirtualHost] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self.cert_days_left = DAYS_LEFT  # its certificate's: the soonest of its hosts'
        for name in hosts:
            self.add_host(name)
        self._mode = Mode.UP
        self.first_byte_delay = 0.0  # seconds every answer waits: a slow but working network
        self.trickle_seconds = 0.0  # ... and spends sending its body, a few bytes at a time
        self._started = False
        self._runner: web.AppRunner | None = None
        self._blackholes: list[BlackholeListener] = []
        self._lock = asyncio.Lock()
        self.requests = 0

    # --- virtual hosts -------------------------------------------------------------------

    def add_host(
        self,
        name: str,
        *,
        status: int = 200,
        body: str | None = None,
        redirect: str | None = None,
        cert_days_left: float = DAYS_LEFT,
    ) -> VirtualHost:
        vhost = VirtualHost(name.lower().rstrip("."), status, body, redirect)
        self._vhosts[vhost.name] = vhost
        self.cert_days_left = min(self.cert_days_left, cert_days_left)
        if self._ssl_context is not None:
            self._pki.reissue(self._ssl_context, self._cert_names(), self.cert_days_left)
        return vhost

    def host(self, name: str) -> VirtualHost:
        return self._vhosts[name.lower().rstrip(".")]

    @property
    def hosts(self) -> list[str]:
        return list(self._vhosts)

    def _cert_names(self) -> list[str]:
        """Names for the certificate: a wildcard for each parent domain with several hosts, so a
        server of thousands of synthetic sites presents a real-world-sized certificate (a SAN
        list of every host made handshakes twice as costly and skewed the benchmarks)."""
        parents = Counter(name.split(".", 1)[1] for name in self._vhosts if "." in name)
        names = {f"*.{parent}" for parent, count in parents.items() if count > _WILDCARD_AFTER}
        names.update(
            name
            for name in self._vhosts
            if "." not in name or parents[name.split(".", 1)[1]] <= _WILDCARD_AFTER
        )
        return [*sorted(names), self.ip]

    # --- modes ---------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    async def set_mode(self, mode: Mode) -> None:
        async with self._lock:
            if self._started and _listener_kind(mode) != _listener_kind(self._mode):
                await self._unbind()
                self._mode = mode
                await self._bind()
            self._mode = mode

    async def start(self) -> None:
        async with self._lock:
            if self._started:
                return
            self._ssl_context = self._pki.server_context(self._cert_names(), self.cert_days_left)
            await self._bind()
            self._started = True

    async def close(self) -> None:
        async with self._lock:
            if self._started:
                await self._unbind()
                self._started = False

    async def __aenter__(self) -> LabWebServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _bind(self) -> None:
        kind = _listener_kind(self._mode)
        if kind == "http":
            await self._start_runner()
        elif kind == "blackhole":
            try:
                self._blackholes = [BlackholeListener(self.ip, self.http_port)]
                self.http_port = self._blackholes[0].port
                self._blackholes.append(BlackholeListener(self.ip, self.https_port))
                self.https_port = self._blackholes[1].port
            except OSError:
                await self._unbind()
                raise

    async def _unbind(self) -> None:
        for blackhole in self._blackholes:
            blackhole.close()
        self._blackholes = []
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _start_runner(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE_SECONDS)
        await runner.setup()
        self._runner = runner
        try:
            http_site = web.TCPSite(runner, self.ip, self.http_port, reuse_address=True)
            await http_site.start()
            self.http_port = http_site.port
            https_site = web.TCPSite(
                runner, self.ip, self.https_port, reuse_address=True, ssl_context=self._ssl_context
            )
            await https_site.start()
            self.https_port = https_site.port
        except BaseException:
            await self._unbind()
            raise

    # --- requests ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        vhost = self._vhosts.get(_host_name(request.headers.get("Host", "")))
        if vhost is None:
            return web.Response(status=404, text="no such host in the lab\n")
        if self.first_byte_delay:
            await asyncio.sleep(self.first_byte_delay)
        if self._mode is Mode.HTTP_ERROR or vhost.failing:
            return web.Response(status=503, text=f"{vhost.name} is unavailable\n")
        if vhost.redirect is not None:
            status = vhost.status if 300 <= vhost.status < 400 else 302
            return web.Response(status=status, headers={"Location": vhost.redirect})
        if self.trickle_seconds:
            return await self._trickle(request, vhost)
        return web.Response(status=vhost.status, text=vhost.page(), content_type="text/html")

    async def _trickle(self, request: web.Request, vhost: VirtualHost) -> web.StreamResponse:
        body = vhost.page().encode()
        response = web.StreamResponse(status=vhost.status, headers={"Content-Type": "text/html"})
        response.content_length = len(body)
        await response.prepare(request)
        step = max(1, len(body) // _TRICKLE_CHUNKS)
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
            await asyncio.sleep(self.trickle_seconds / _TRICKLE_CHUNKS)
        await response.write_eof()
        return response

    def url(self, host: str, *, https: bool = True, path: str = "/") -> str:
        scheme, port = ("https", self.https_port) if https else ("http", self.http_port)
        return f"{scheme}://{host}:{port}{path}"


def _listener_kind(mode: Mode) -> str:
    if mode in (Mode.UP, Mode.HTTP_ERROR):
        return "http"
    return "blackhole" if mode is Mode.BLACKHOLE else "none"
