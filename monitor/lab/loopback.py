"""Loopback-only socket helpers: address guards, shared free ports, and a listener that drops SYNs.

Everything in the lab binds and connects to 127.0.0.0/8 only; `require_loopback` is the guard.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Sequence

__all__ = [
    "BlackholeListener",
    "bind_reserved_port",
    "free_port_pair",
    "require_loopback",
]

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def require_loopback(ip: str) -> str:
    """Return `ip` if it is an IPv4 literal inside 127.0.0.0/8, else raise ValueError."""
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise ValueError(f"the lab only uses IPv4 loopback literals, not {ip!r}") from None
    if address not in _LOOPBACK:
        raise ValueError(f"{ip} is not in 127.0.0.0/8; the lab never leaves loopback")
    return ip


def _tcp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _port_is_free(ip: str, port: int) -> bool:
    with contextlib.closing(_tcp_socket()) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def free_port_pair(ips: Sequence[str], attempts: int = 200) -> tuple[int, int]:
    """Two distinct TCP ports that are free on every IP in `ips` (same numbers on all of them).

    Another process may still take them before they are bound; callers retry on EADDRINUSE.
    """
    if not ips:
        raise ValueError("need at least one IP")
    for ip in ips:
        require_loopback(ip)
    found: list[int] = []
    for _ in range(attempts):
        with contextlib.closing(_tcp_socket()) as probe:
            probe.bind((ips[0], 0))
            port = probe.getsockname()[1]
        if port not in found and all(_port_is_free(ip, port) for ip in ips):
            found.append(port)
            if len(found) == 2:
                return found[0], found[1]
    raise OSError("no port pair free on all of " + ", ".join(ips))


def bind_reserved_port(ip: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a fresh port but never listening: connecting to it is refused.

    Keeping the socket open stops anyone else from taking the port while a test relies on it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((require_loopback(ip), 0))
    return sock


class BlackholeListener:
    """A listener on ip:port whose accept queue is full, so the kernel silently drops new SYNs.

    This is how a dropped SYN (firewall DROP, dead route) is simulated without root: clients see
    their connect() time out rather than being refused. With backlog 0 Linux keeps exactly one
    completed connection in the queue; the filler connections take that slot and are never
    accepted.
    """

    FILLERS = 2

    def __init__(self, ip: str, port: int) -> None:
        self.ip = require_loopback(ip)
        self._listener = _tcp_socket()
        self._fillers: list[socket.socket] = []
        try:
            self._listener.bind((ip, port))
            self._listener.listen(0)
            self.port: int = self._listener.getsockname()[1]
            for _ in range(self.FILLERS):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                self._fillers.append(filler)
                # The first filler completes into the queue, the next ones hang in SYN_SENT.
                with contextlib.suppress(BlockingIOError):
                    filler.connect((ip, self.port))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()
        self._listener.close()

    def __enter__(self) -> BlackholeListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
