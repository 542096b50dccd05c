"""The daemon's listening socket, accepting at most `max_connections` clients at a time, like
Prometheus' `--web.max-connections` (Go's netutil.LimitListener): the others wait in the kernel's
backlog and hold none of our descriptors, so clients can never take the sockets probes need.

Unlike LimitListener, a client waiting for a slot does not wait behind connections that have
never sent a byte: the oldest of those is closed to make room. So a thousand idle connections
cannot keep Prometheus from scraping; they cycle through the slots and are shed.

asyncio's own server accepts as fast as clients connect and cannot be paused, hence this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

__all__ = ["LimitedListener"]

log = logging.getLogger(__name__)

_ACCEPT_BACKOFF = 0.1  # after EMFILE on accept, as Go's http.Server does (5 ms doubling to 1 s)
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Connection(asyncio.Protocol):
    """Passes everything to the HTTP protocol; frees the connection's slot when it ends, and knows
    whether the client has sent anything yet (a silent one cannot be in the middle of a request)."""

    def __init__(self, inner: asyncio.Protocol, release: Callable[[_Connection], None]) -> None:
        self._inner = inner
        self._release = release
        self.transport: asyncio.BaseTransport | None = None
        self.silent = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.silent = False
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            self._release(self)


class LimitedListener:
    def __init__(
        self,
        protocol_factory: Callable[[], Any],
        host: str,
        port: int,
        *,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        backlog: int = 512,
        on_shed: Callable[[], None] = lambda: None,
    ) -> None:
        self._factory = protocol_factory
        self.host, self.port = host, port
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self._backlog = backlog
        self._on_shed = on_shed  # a silent connection was closed to make room
        self._slots = asyncio.Semaphore(max_connections)
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: dict[_Connection, None] = {}  # in the order they came

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self._backlog)
                sock.setblocking(False)
            except OSError:
                sock.close()
                self._close_sockets()
                raise
            self._sockets.append(sock)
        for sock in self._sockets:
            self._spawn(self._accept_forever(sock))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        short_of_descriptors = False
        while True:
            if self._slots.locked():
                self._shed_oldest_silent()
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as exc:
                self._slots.release()
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    log.warning("accept on %s:%d failed: %s", self.host, self.port, exc)
                elif not short_of_descriptors:
                    log.warning("accept: %s; clients wait until descriptors are free again", exc)
                short_of_descriptors = exc.errno in _OUT_OF_DESCRIPTORS
                await asyncio.sleep(_ACCEPT_BACKOFF)
                continue
            short_of_descriptors = False
            self._spawn(self._serve(conn))

    def _shed_oldest_silent(self) -> None:
        for connection in self._live:  # oldest first
            if connection.silent and connection.transport is not None:
                connection.transport.close()
                self._on_shed()
                return

    async def _serve(self, conn: socket.socket) -> None:
        made: list[_Connection] = []

        def make() -> _Connection:
            connection = _Connection(self._factory(), self._release)
            self._live[connection] = None
            made.append(connection)
            return connection

        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                make,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            log.debug("client connection dropped before it began: %s", exc)
            conn.close()
            if made:
                self._release(made[0])
            else:
                self._slots.release()

    def _release(self, connection: _Connection) -> None:
        if connection in self._live:  # once per connection
            del self._live[connection]
            self._slots.release()

    @property
    def active(self) -> int:
        return len(self._live)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_sockets()
