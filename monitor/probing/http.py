"""HTTP layer: GET with aiohttp through our own resolver and a connector that times the TCP and
TLS phases separately (aiohttp alone reports them as one), so each error is classified by its phase."""

from __future__ import annotations

import re
import socket
from contextvars import ContextVar
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor import __version__
from monitor.catalog.catalog import HTTPSpec, Target
from monitor.probing.context import ProbeContext
from monitor.probing.dns import addresses_of
from monitor.probing.failures import Failure, Phase, ProbeFailure
from monitor.probing.result import ProbeTrace
from monitor.probing.tcp import connect
from monitor.probing.tls import client_context, record_peer

__all__ = ["HTTPClient", "probe_http"]

_READ_CHUNK = 64 << 10
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


_current: ContextVar[tuple[Target, ProbeContext]] = ContextVar("probe_context")


class _CatalogResolver(AbstractResolver):
    """Answers aiohttp's lookups with our DNS layer (configured resolvers, bogon checks)."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        addresses = await addresses_of(host, *_current.get())
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses[:1]
        ]

    async def close(self) -> None:
        return None


class _PhasedConnector(aiohttp.TCPConnector):
    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[Any],
        req: Any,
        timeout: Any,
        client_error: Any = None,
        **kwargs: Any,
    ) -> Any:
        trace = _current.get()[1].trace
        address, port = addr_infos[0][4][:2]
        sock = await connect(address, port, trace)
        secure = bool(kwargs.get("ssl"))
        if secure:
            trace.enter(Phase.TLS)
            trace.note(f"TLS handshake, SNI {kwargs.get('server_hostname')}")
        try:
            transport, protocol = await self._loop.create_connection(*args, sock=sock, **kwargs)
        except BaseException:
            sock.close()
            raise
        if secure:
            record_peer(transport.get_extra_info("ssl_object"), trace)
        trace.enter(Phase.PROCESSING)
        return transport, protocol


class HTTPClient:
    """One aiohttp session shared by all probes; connections are never reused between probes."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self, max_header_bytes: int) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = _PhasedConnector(
                resolver=_CatalogResolver(), force_close=True, limit=0, use_dns_cache=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                max_line_size=max_header_bytes,
                max_field_size=max_header_bytes,
                max_headers=128,
                headers={"User-Agent": f"shutdown-monitor/{__version__}"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def probe_http(target: Target, context: ProbeContext) -> None:
    spec = target.spec_as(HTTPSpec)
    options, trace, url = spec.http, context.trace, spec.url
    trace.http_status = 0  # what an HTTP probe reports until a response arrives (blackbox does too)
    await addresses_of(spec.host, target, context)
    token = _current.set((target, context))
    session = context.http.session(options.max_header_bytes)
    try:
        while True:
            trace.note(f"GET {url}")
            async with session.get(
                url,
                allow_redirects=False,
                ssl=_ssl_for(url, spec),
                server_hostname=spec.tls.server_name,
                headers=options.headers,
            ) as response:
                trace.enter(Phase.TRANSFER)
                trace.http_status = response.status
                trace.note(f"{response.status} {response.reason}")
                location = response.headers.get("Location")
                if response.status in _REDIRECT_CODES and location and options.max_redirects >= 0:
                    if trace.redirects >= options.max_redirects:
                        raise ProbeFailure(
                            Failure.HTTP_TOO_MANY_REDIRECTS,
                            Phase.PROCESSING,
                            f"more than {options.max_redirects} redirects",
                        )
                    trace.redirects += 1
                    url = urljoin(url, location)
                    continue
                body = await _read_capped(response, options.max_body_bytes, trace)
            break
    finally:
        _current.reset(token)
    if not options.accepts(trace.http_status or 0):
        raise ProbeFailure(Failure.HTTP_STATUS, Phase.PROCESSING, f"unexpected status {trace.http_status}")
    if options.body_regex is not None and not re.search(options.body_regex.encode(), body):
        raise ProbeFailure(
            Failure.HTTP_BODY_MISMATCH, Phase.TRANSFER, f"body does not match {options.body_regex!r}"
        )


def _ssl_for(url: str, spec: HTTPSpec) -> Any:
    return client_context(spec.tls) if url.startswith("https:") else False


async def _read_capped(response: aiohttp.ClientResponse, limit: int, trace: ProbeTrace) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = await response.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        trace.body_bytes += len(chunk)
        if trace.body_bytes > limit:
            response.close()
            raise ProbeFailure(Failure.HTTP_TOO_LARGE, Phase.TRANSFER, f"body larger than {limit} bytes")
        chunks.append(chunk)
