"""Traceroute without privilege, Paris-style: one UDP flow per trace (constant addresses and
ports, so a load balancer keeps every probe of it on one path), the TTL raised hop by hop, and
the routers' ICMP answers read from the socket's error queue (IP_RECVERR), as tracepath does.

One probe is in flight per trace. Each carries a token and its TTL in its payload; a router
that quotes the payload (Linux quotes up to 576 bytes) is matched by it, one that quotes only
the UDP header (RFC 792's minimum) is taken as answering the probe in flight. No privilege is
needed: any user may open a UDP socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["REPLIES", "Hop", "Trace", "TraceOptions", "trace", "unavailable_reason"]

# <linux/errqueue.h> and <linux/in.h>, <linux/in6.h>: not exported by the socket module
_IP_RECVERR, _IPV6_RECVERR, _MSG_ERRQUEUE = 11, 25, 0x2000
_ORIGIN_ICMP, _ORIGIN_ICMP6 = 2, 3
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Python 3.13 names it; asm-generic's value
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err; the offender's sockaddr follows
_MARK = struct.Struct("!4sBB")  # token, ttl, attempt
_FIRST_POLL, _LAST_POLL = 0.002, 0.1  # seconds between looks at the error queue, doubling
_MAX_DATAGRAMS = 64  # read at one look: a flood of datagrams never holds the event loop

# what a hop answered: a closed set, as the probes' failure strings
REPLIES = (
    "time_exceeded",  # a router on the way
    "reached",  # the destination itself (a closed port, or any answer from its address)
    "net_unreachable",
    "host_unreachable",
    "prohibited",  # administratively: a filter says so
    "unreachable",  # any other code of destination unreachable
    "silent",  # nothing within the timeout
)
_UNREACHABLE_V4 = {
    0: "net_unreachable",
    1: "host_unreachable",
    9: "prohibited",
    10: "prohibited",
    13: "prohibited",
}
_UNREACHABLE_V6 = {
    0: "net_unreachable",
    1: "prohibited",
    3: "host_unreachable",
    5: "prohibited",
    6: "prohibited",
}


@dataclass(frozen=True, slots=True)
class TraceOptions:
    max_hops: int = 30
    hop_timeout: float = 1.0
    attempts: int = 2  # probes to a hop that stays silent
    silent_hops: int = 3  # a trace ends after this many silent hops in a row
    port: int = 33434  # the destination port, the same for every probe (traceroute's first)


@dataclass(frozen=True, slots=True)
class Hop:
    ttl: int
    address: str | None  # None: silent
    rtt_seconds: float | None
    reply: str  # one of REPLIES
    asn: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ttl": self.ttl,
            "address": self.address,
            "asn": self.asn,
            "reply": self.reply,
            "rtt_seconds": self.rtt_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hop:
        return cls(
            int(data["ttl"]),
            data.get("address"),
            data.get("rtt_seconds"),
            str(data["reply"]),
            data.get("asn"),
        )


@dataclass(frozen=True, slots=True)
class Trace:
    destination: str
    started_at: float  # Unix time
    hops: tuple[Hop, ...]
    packets: int

    @property
    def reached(self) -> bool:
        return any(hop.reply == "reached" for hop in self.hops)

    @property
    def last_answer(self) -> Hop | None:
        """The last hop that answered (a router, or the destination)."""
        return next((hop for hop in reversed(self.hops) if hop.address is not None), None)

    @property
    def path(self) -> tuple[str | None, ...]:
        """The addresses hop by hop, silent hops as None: what makes two traces the same path."""
        return tuple(hop.address for hop in self.hops)

    def with_asns(self, asns: dict[str, int | None]) -> Trace:
        hops = tuple(replace(hop, asn=asns.get(hop.address)) if hop.address else hop for hop in self.hops)
        return replace(self, hops=hops)

    def as_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "started_at": self.started_at,
            "packets": self.packets,
            "hops": [hop.as_dict() for hop in self.hops],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        hops = tuple(Hop.from_dict(hop) for hop in data["hops"])
        return cls(str(data["destination"]), float(data["started_at"]), hops, int(data.get("packets", 0)))


def unavailable_reason() -> str | None:
    """Why this system cannot trace (None: it can): the error queue is Linux's."""
    if not sys.platform.startswith("linux"):
        return f"traceroute reads ICMP answers from the error queue (IP_RECVERR): {sys.platform} has none"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError as exc:
        return f"a UDP socket with IP_RECVERR cannot be opened: {exc}"
    return None


async def trace(
    destination: str,
    options: TraceOptions,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> Trace:
    """The path to `destination`, hop by hop; `pace` is awaited before each probe (a budget)."""
    address = ipaddress.ip_address(destination)
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    started_at = time.time()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)  # when each answer arrived
        sock.bind(("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0))  # one source port: one flow
        tracer = _Tracer(sock, str(address), options, pace)
        hops = await tracer.run()
    return Trace(str(address), started_at, tuple(hops), tracer.packets)


class _Tracer:
    """The error queue is polled, not awaited: a readiness callback would need the loop to
    report EPOLLERR as readable, and uvloop (libuv) takes it for a broken descriptor and stops
    watching. Each answer carries the kernel's time of arrival, so the poll delay costs no
    precision."""

    def __init__(
        self,
        sock: socket.socket,
        destination: str,
        options: TraceOptions,
        pace: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self.sock = sock
        self.destination = destination
        self.options = options
        self.pace = pace
        self.token = os.urandom(4)
        self.packets = 0

    async def run(self) -> list[Hop]:
        hops: list[Hop] = []
        silent = 0
        for ttl in range(1, self.options.max_hops + 1):
            hop = await self._hop(ttl)
            hops.append(hop)
            if hop.reply not in ("time_exceeded", "silent"):
                break  # the destination, or a router that says it cannot go on
            silent = silent + 1 if hop.reply == "silent" else 0
            if silent >= self.options.silent_hops:
                del hops[len(hops) - silent + 1 :]  # one silent hop says where it stops
                break
        return hops

    async def _hop(self, ttl: int) -> Hop:
        for attempt in range(self.options.attempts):
            if self.pace is not None:
                await self.pace()
            sent = self._send(ttl, attempt)
            deadline, delay = time.monotonic() + self.options.hop_timeout, _FIRST_POLL
            while True:
                answer = self._drain(ttl)
                if answer is not None:
                    reply, address, arrived = answer
                    return Hop(ttl, address, round(max(arrived - sent, 0.0), 6), reply)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, _LAST_POLL)
        return Hop(ttl, None, None, "silent")

    def _send(self, ttl: int, attempt: int) -> float:
        level, option = (
            (socket.IPPROTO_IP, socket.IP_TTL)
            if self.sock.family == socket.AF_INET
            else (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
        )
        self.sock.setsockopt(level, option, ttl)
        payload = _MARK.pack(self.token, ttl, attempt).ljust(32, b"\0")
        self._drain(None)  # late answers to earlier probes, and the error they left pending
        sent = time.time()  # before: a hop in a namespace answers before sendto returns
        self.sock.sendto(payload, (self.destination, self.options.port))
        self.packets += 1
        return sent

    def _drain(self, ttl: int | None) -> tuple[str, str, float] | None:
        """Read every answer queued; the first for the probe to `ttl` in flight (None: only drain).
        An answer that quotes no payload is taken as the one in flight's."""
        found = None
        for _ in range(_MAX_DATAGRAMS):
            try:
                data, ancillary, _, _ = self.sock.recvmsg(512, 512, _MSG_ERRQUEUE)
            except OSError:  # empty (EAGAIN)
                break
            answer = self._answer(data, ancillary)
            if answer is not None and ttl is not None and answer[0] in (None, ttl) and found is None:
                found = answer[1:]
        for _ in range(_MAX_DATAGRAMS):  # a destination that answers UDP, and the error an answer left
            try:
                _, source = self.sock.recvfrom(512)
            except BlockingIOError:
                break
            except OSError:  # the pending error, reported once
                continue
            if source[0] == self.destination and ttl is not None and found is None:
                found = ("reached", self.destination, time.time())
        return found

    def _answer(
        self, data: bytes, ancillary: list[tuple[int, int, bytes]]
    ) -> tuple[int | None, str, str, float] | None:
        """(ttl quoted or None, reply, who answered, when it arrived) from one queued error."""
        arrived, error = time.time(), None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanoseconds = struct.unpack_from("=qq", payload)
                arrived = seconds + nanoseconds / 1e9
            elif (level, kind) in ((socket.IPPROTO_IP, _IP_RECVERR), (socket.IPPROTO_IPV6, _IPV6_RECVERR)):
                error = payload
        if error is None or len(error) < _EXTENDED_ERR.size + 8:
            return None
        _, origin, icmp_type, code, _, _, _ = _EXTENDED_ERR.unpack_from(error)
        offender = _sockaddr(error[_EXTENDED_ERR.size :])
        if origin not in (_ORIGIN_ICMP, _ORIGIN_ICMP6) or offender is None:
            return None
        ttl = None
        if len(data) >= _MARK.size:
            token, ttl, _ = _MARK.unpack_from(data)
            if token != self.token:
                return None
        return ttl, _reply(origin, icmp_type, code, offender == self.destination), offender, arrived


def _reply(origin: int, icmp_type: int, code: int, from_destination: bool) -> str:
    if from_destination:
        return "reached"
    if origin == _ORIGIN_ICMP:
        if icmp_type == 11:
            return "time_exceeded"
        return _UNREACHABLE_V4.get(code, "unreachable") if icmp_type == 3 else "unreachable"
    if icmp_type == 3:
        return "time_exceeded"
    return _UNREACHABLE_V6.get(code, "unreachable") if icmp_type == 1 else "unreachable"


def _sockaddr(raw: bytes) -> str | None:
    """The offender: a sockaddr_in or sockaddr_in6 after the extended error."""
    family = struct.unpack_from("=H", raw)[0]
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None
