"""Servers that misbehave in one specific way each, for the probes' failure tests."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from types import TracebackType

from monitor.lab.certs import LabPKI
from monitor.lab.loopback import BlackholeListener, bind_reserved_port, require_loopback

__all__ = ["HostileKind", "HostileServer"]

_HEAD_END = b"\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
_HUGE_HEADER_BYTES = 1 << 20
_ENDLESS_CHUNK = b"x" * 65536


class HostileKind(enum.Enum):
    NEVER_ACCEPTS = "never_accepts"  # accept queue full: connect times out
    SILENT = "silent"  # accepts, reads, never answers: read times out
    TLS_HANDSHAKE_RESET = "tls_handshake_reset"  # reads the ClientHello, then RST
    RESET_MID_RESPONSE = "reset_mid_response"  # headers and part of the body, then RST
    TRICKLE = "trickle"  # a valid response, one byte per `trickle_interval`
    ENDLESS_BODY = "endless_body"  # 200 without a length, streaming forever
    REDIRECT_LOOP = "redirect_loop"  # /a -> /b -> /a -> ...
    HUGE_HEADERS = "huge_headers"  # one header line of 1 MiB
    EXPIRED_CERT = "expired_cert"
    WRONG_HOST_CERT = "wrong_host_cert"
    UNKNOWN_CA_CERT = "unknown_ca_cert"
    CLOSED_PORT = "closed_port"  # nothing listens: connection refused

    @property
    def uses_tls(self) -> bool:
        return self in _TLS_KINDS


_TLS_KINDS = {
    HostileKind.TLS_HANDSHAKE_RESET,
    HostileKind.EXPIRED_CERT,
    HostileKind.WRONG_HOST_CERT,
    HostileKind.UNKNOWN_CA_CERT,
}

_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, which makes the kernel send RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(_HEAD_END)


class HostileServer:
    """One misbehaving server on `ip` (a fresh port), chosen by `kind`.

    `hostname` is the name a client is expected to ask for: the certificate kinds are built
    around it (expired for it, issued for another name, or signed by an unknown CA). Those
    kinds and TLS_HANDSHAKE_RESET are TLS on the wire; `url` says which scheme to use.
    """

    def __init__(
        self,
        kind: HostileKind,
        *,
        pki: LabPKI | None = None,
        hostname: str = "hostile.lab.test",
        ip: str = "127.0.0.1",
        trickle_interval: float = 1.0,
    ) -> None:
        self.kind = kind
        self.hostname = hostname
        self.host = require_loopback(ip)
        self.port = 0
        self.trickle_interval = trickle_interval
        self._pki = pki
        self._server: asyncio.AbstractServer | None = None
        self._blackhole: BlackholeListener | None = None
        self._reserved: socket.socket | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        scheme = "https" if self.kind.uses_tls else "http"
        return f"{scheme}://{self.host}:{self.port}/"

    async def start(self) -> None:
        if self.kind is HostileKind.NEVER_ACCEPTS:
            self._blackhole = BlackholeListener(self.host, 0)
            self.port = self._blackhole.port
            return
        if self.kind is HostileKind.CLOSED_PORT:
            self._reserved = bind_reserved_port(self.host)
            self.port = self._reserved.getsockname()[1]
            return
        handler = self._handler()
        self._server = await asyncio.start_server(
            lambda reader, writer: self._serve(handler, reader, writer), self.host, 0, ssl=self._server_ssl()
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HostileServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _server_ssl(self) -> ssl.SSLContext | None:
        if self.kind not in (
            HostileKind.EXPIRED_CERT,
            HostileKind.WRONG_HOST_CERT,
            HostileKind.UNKNOWN_CA_CERT,
        ):
            return None  # TLS_HANDSHAKE_RESET speaks raw TCP: it never answers the hello
        if self._pki is None:
            raise ValueError(f"{self.kind.value} needs a LabPKI")
        names = [self.hostname, self.host]
        if self.kind is HostileKind.EXPIRED_CERT:
            return self._pki.expired_context(names)
        if self.kind is HostileKind.WRONG_HOST_CERT:
            return self._pki.wrong_host_context()
        return self._pki.unknown_ca_context(names)

    async def _serve(
        self, handler: _Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass  # the client gave up or broke the connection: that is what these are for
        except asyncio.CancelledError:
            # Only close() cancels these; finishing normally keeps asyncio's stream callback
            # from logging the cancellation as an unhandled error.
            pass
        finally:
            self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    def _handler(self) -> _Handler:
        return {
            HostileKind.SILENT: self._silent,
            HostileKind.TLS_HANDSHAKE_RESET: self._tls_handshake_reset,
            HostileKind.RESET_MID_RESPONSE: self._reset_mid_response,
            HostileKind.TRICKLE: self._trickle,
            HostileKind.ENDLESS_BODY: self._endless_body,
            HostileKind.REDIRECT_LOOP: self._redirect_loop,
            HostileKind.HUGE_HEADERS: self._huge_headers,
            HostileKind.EXPIRED_CERT: self._ok,
            HostileKind.WRONG_HOST_CERT: self._ok,
            HostileKind.UNKNOWN_CA_CERT: self._ok,
        }[self.kind]

    # --- one handler per kind ------------------------------------------------------------

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    async def _tls_handshake_reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the ClientHello
        _reset(writer)

    async def _reset_mid_response(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n"
            b"\r\n<html><body><p>the first part of a page that never "
        )
        await writer.drain()
        await asyncio.sleep(0.05)  # let the client start on the body before the reset
        _reset(writer)

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        for index in range(len(_OK)):
            writer.write(_OK[index : index + 1])
            await writer.drain()
            await asyncio.sleep(self.trickle_interval)

    async def _endless_body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
        while True:
            writer.write(_ENDLESS_CHUNK)
            await writer.drain()

    async def _redirect_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await _read_head(reader)
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            location = b"/b" if path == b"/a" else b"/a"
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def _huge_headers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * _HUGE_HEADER_BYTES + b"\r\nContent-Length: 3\r\n\r\nok\n"
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _ok(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(_OK)
        await writer.drain()
