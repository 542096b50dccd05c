"""Is anybody there: one address, one answer, by ICMP echo (icmplib) or a TCP connect.

ICMP goes through a raw socket when the process may open one (root or CAP_NET_RAW), else through
an unprivileged ICMP datagram socket when `net.ipv4.ping_group_range` admits our group; TCP
connects to the catalog's ports (443, 80) where neither is possible, and for addresses that only
answer TCP (a RST says a host is there as well as a SYN-ACK does). `Liveness.detect` says which,
and why, once at start.

What fails on our side (no descriptor left, no buffer, no route of our own) is `LOCAL`: never
evidence that a block is dark.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from dataclasses import dataclass
from enum import StrEnum

from icmplib import ICMPLibError, async_ping

__all__ = ["LOCAL_ERRNOS", "Answer", "Liveness"]

# errors of our own machine, not of the path or the host
LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EPERM, errno.EACCES}
)
_SILENT_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT})
ICMP = "icmp"


class Answer(StrEnum):
    ALIVE = "alive"  # an echo reply, a SYN-ACK or a RST: a host is there
    SILENT = "silent"  # nothing in time, or a router saying it cannot reach it
    LOCAL = "local"  # we could not send: our problem, not evidence


def tcp_method(port: int) -> str:
    return f"tcp:{port}"


@dataclass(frozen=True, slots=True)
class Liveness:
    """How this process probes addresses: ICMP (raw or datagram socket) if it may, and TCP."""

    icmp_privileged: bool | None  # True: raw socket; False: datagram socket; None: no ICMP
    tcp_ports: tuple[int, ...]
    timeout: float
    reason: str  # why this method, said once at start

    @classmethod
    def detect(cls, method: str, tcp_ports: tuple[int, ...], timeout: float) -> Liveness:
        """The best method this process is allowed, within what the catalog asks (`auto`, `icmp`
        or `tcp`)."""
        if method == "tcp":
            return cls(None, tcp_ports, timeout, "the catalog asks for TCP only (liveness.method: tcp)")
        raw = _can_open(socket.SOCK_RAW)
        if raw is None:
            reason = "ICMP through a raw socket (root or CAP_NET_RAW)"
            return cls(True, _ports(method, tcp_ports), timeout, reason)
        datagram = _can_open(socket.SOCK_DGRAM)
        if datagram is None:
            reason = "ICMP through an unprivileged datagram socket (net.ipv4.ping_group_range admits us)"
            return cls(False, _ports(method, tcp_ports), timeout, reason)
        reason = (
            f"TCP connects only: no raw ICMP socket ({raw}) and no ICMP datagram socket ({datagram}); "
            "give the process CAP_NET_RAW or widen net.ipv4.ping_group_range"
        )
        return cls(None, tcp_ports, timeout, reason)

    @property
    def methods(self) -> tuple[str, ...]:
        """Ways to ask an address, cheapest first."""
        icmp = (ICMP,) if self.icmp_privileged is not None else ()
        return icmp + tuple(tcp_method(port) for port in self.tcp_ports)

    @property
    def name(self) -> str:
        if self.icmp_privileged is None:
            return "tcp"
        return "icmp_raw" if self.icmp_privileged else "icmp_datagram"

    async def probe(self, address: str, method: str) -> Answer:
        if method == ICMP:
            return await self._echo(address)
        return await self._connect(address, int(method.partition(":")[2]))

    async def _echo(self, address: str) -> Answer:
        if self.icmp_privileged is None:
            return Answer.LOCAL  # a hitlist from a run that could use ICMP
        try:
            host = await async_ping(address, count=1, timeout=self.timeout, privileged=self.icmp_privileged)
        except (ICMPLibError, OSError):
            return Answer.LOCAL  # the socket could not be opened (descriptors, permission)
        if host.packets_sent == 0:
            return Answer.LOCAL  # the echo request could not leave this machine
        return Answer.ALIVE if host.is_alive else Answer.SILENT

    async def _connect(self, address: str, port: int) -> Answer:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), self.timeout)
        except (ConnectionRefusedError, ConnectionResetError):
            return Answer.ALIVE
        except TimeoutError:
            return Answer.SILENT
        except OSError as exc:
            if exc.errno in _SILENT_ERRNOS:
                return Answer.SILENT
            return Answer.LOCAL
        writer.close()
        return Answer.ALIVE


def _ports(method: str, tcp_ports: tuple[int, ...]) -> tuple[int, ...]:
    return () if method == "icmp" else tcp_ports


def _can_open(kind: int) -> str | None:
    """None when an ICMP socket of `kind` opens; else why not."""
    try:
        socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
