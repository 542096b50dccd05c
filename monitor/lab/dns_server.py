"""An authoritative DNS server for the lab, on UDP and TCP, with switchable fault behaviours."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import socket
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from monitor.lab.loopback import require_loopback

__all__ = ["Behavior", "LabDNSServer"]

TTL = 30
_CLASSIC_UDP_LIMIT = 512
_OVERSIZED_RECORDS = 200
_MAX_CNAME_CHAIN = 8
# Benchmarks send bursts of thousands of queries; the default receive buffer drops them.
_UDP_RECEIVE_BUFFER = 8 << 20


class Behavior(enum.Enum):
    NORMAL = "normal"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    DROP = "drop"  # never answer
    GARBAGE = "garbage"  # bytes that do not parse as DNS
    TRUNCATED = "truncated"  # UDP: TC bit and no records; TCP answers normally
    OVERSIZED = "oversized"  # UDP answer far over 512 bytes without TC
    WRONG_ID = "wrong_id"  # answer carries another message id


def _name(text: str | dns.name.Name) -> dns.name.Name:
    if isinstance(text, dns.name.Name):
        return text
    return dns.name.from_text(text)


class LabDNSServer:
    """Serves A, AAAA, TXT, CNAME, SOA and NS records for the zones given with `add_soa`.

    A name outside every zone gets REFUSED, an unknown name inside one NXDOMAIN with the SOA in
    the authority section, and a known name without the asked type NODATA. Names are
    case-insensitive (dnspython compares them that way) and may omit the trailing dot.
    """

    def __init__(self) -> None:
        self._records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._zones: set[dns.name.Name] = set()
        # Ancestors of owner names: existing names without records of their own (NODATA).
        self._empty_nonterminals: set[dns.name.Name] = set()
        self._behaviors: dict[dns.name.Name, Behavior] = {}
        self._default_behavior = Behavior.NORMAL
        self._override: Behavior | None = None
        self._spoofed: dict[dns.name.Name, list[str]] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._tcp_connections: set[asyncio.Transport] = set()
        self.queries = 0
        self.host = ""
        self.port = 0

    # --- records -------------------------------------------------------------------------

    def _put(self, name: str | dns.name.Name, rdtype: dns.rdatatype.RdataType, texts: Iterable[str]) -> None:
        owner = _name(name)
        rrset = dns.rrset.from_text_list(owner, TTL, dns.rdataclass.IN, rdtype, list(texts))
        self._records.setdefault(owner, {})[rdtype] = rrset
        self._add_ancestors(owner)

    def _add_ancestors(self, owner: dns.name.Name) -> None:
        for depth in range(1, len(owner.labels) - 1):
            self._empty_nonterminals.add(dns.name.Name(owner.labels[depth:]))

    def add_a(self, name: str, ips: Iterable[str]) -> None:
        self._put(name, dns.rdatatype.A, ips)

    def add_aaaa(self, name: str, ips: Iterable[str]) -> None:
        self._put(name, dns.rdatatype.AAAA, ips)

    def add_txt(self, name: str, strings: Iterable[str]) -> None:
        quoted = ['"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings]
        self._put(name, dns.rdatatype.TXT, quoted)

    def add_cname(self, name: str, target: str) -> None:
        self._put(name, dns.rdatatype.CNAME, [_name(target).to_text()])

    def add_soa(self, zone: str) -> None:
        """Make `zone` served here, with an SOA and an NS record at its apex."""
        apex = _name(zone)
        ns = dns.name.Name(("ns1", *apex.labels)).to_text()
        hostmaster = dns.name.Name(("hostmaster", *apex.labels)).to_text()
        self._put(apex, dns.rdatatype.SOA, [f"{ns} {hostmaster} 1 3600 600 86400 {TTL}"])
        self._put(apex, dns.rdatatype.NS, [ns])
        self._zones.add(apex)

    def remove(self, name: str) -> None:
        owner = _name(name)
        self._records.pop(owner, None)
        self._zones.discard(owner)
        self._empty_nonterminals.clear()
        for remaining in self._records:
            self._add_ancestors(remaining)

    # --- behaviours ----------------------------------------------------------------------

    def set_behavior(self, name: str, behavior: Behavior) -> None:
        """Fault for queries of exactly `name`; NORMAL clears it. Beats the default."""
        owner = _name(name)
        if behavior is Behavior.NORMAL:
            self._behaviors.pop(owner, None)
        else:
            self._behaviors[owner] = behavior

    def set_default_behavior(self, behavior: Behavior) -> None:
        """Fault for every name without its own behaviour (a whole-server blackout)."""
        self._default_behavior = behavior

    def set_override(self, behavior: Behavior | None) -> None:
        """Fault for every query, beating per-name behaviours too (our own uplink is down)."""
        self._override = behavior

    def set_spoof(self, name: str, ips: Iterable[str] | None) -> None:
        """Answer A queries of `name` with `ips` (a resolver that lies: a block page, a bogon);
        None answers the truth again."""
        if ips is None:
            self._spoofed.pop(_name(name), None)
        else:
            self._spoofed[_name(name)] = list(ips)

    def behavior_for(self, qname: dns.name.Name) -> Behavior:
        if self._override is not None:
            return self._override
        return self._behaviors.get(qname, self._default_behavior)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on UDP and TCP, both on the same port (a fresh one if `port` is 0)."""
        require_loopback(host)
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                tcp_socket.bind((host, port))
                udp_socket.bind((host, tcp_socket.getsockname()[1]))
            except OSError:
                tcp_socket.close()
                udp_socket.close()
                if port != 0 or attempt == 19:
                    raise
                continue
            break
        self.host, self.port = host, tcp_socket.getsockname()[1]
        _enlarge_receive_buffer(udp_socket)
        self._tcp = await loop.create_server(lambda: _TCPProtocol(self), sock=tcp_socket)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self), sock=udp_socket)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for transport in list(self._tcp_connections):
                transport.abort()
            await self._tcp.wait_closed()
            self._tcp = None
        # Let the transports run their connection_lost callbacks before the loop may close.
        await asyncio.sleep(0)

    async def __aenter__(self) -> LabDNSServer:
        if self._tcp is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # --- answering -----------------------------------------------------------------------

    def answer(self, wire: bytes, over_tcp: bool) -> bytes | None:
        """The reply to one query in wire format, or None to stay silent."""
        self.queries += 1
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return _rcode_only(query, dns.rcode.FORMERR).to_wire()
        question = query.question[0]
        behavior = self.behavior_for(question.name)
        if behavior is Behavior.DROP:
            return None
        if behavior is Behavior.GARBAGE:
            return _garbage(query.id)
        if behavior is Behavior.NXDOMAIN:
            response = _rcode_only(query, dns.rcode.NXDOMAIN)
            self._add_soa_authority(response, question.name)
            return response.to_wire()
        if behavior is Behavior.SERVFAIL:
            return _rcode_only(query, dns.rcode.SERVFAIL).to_wire()
        if behavior is Behavior.REFUSED:
            return _rcode_only(query, dns.rcode.REFUSED).to_wire()
        if behavior is Behavior.TRUNCATED and not over_tcp:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC | dns.flags.AA
            return response.to_wire()
        if behavior is Behavior.OVERSIZED and not over_tcp:
            return _oversized(query).to_wire(max_size=65535)

        response = self._resolve(query)
        if behavior is Behavior.WRONG_ID:
            response.id = (query.id + 1) & 0xFFFF
        return self._fit(query, response, over_tcp)

    def _resolve(self, query: dns.message.Message) -> dns.message.Message:
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        zone = self._zone_of(qname)
        if zone is None:
            return _rcode_only(query, dns.rcode.REFUSED)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if qtype == dns.rdatatype.A and qname in self._spoofed:
            response.answer.append(
                dns.rrset.from_text_list(qname, TTL, dns.rdataclass.IN, dns.rdatatype.A, self._spoofed[qname])
            )
            return response
        owner = qname
        for _ in range(_MAX_CNAME_CHAIN):
            rrsets = self._records.get(owner)
            if rrsets is None:
                if owner not in self._empty_nonterminals:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                break
            if qtype in rrsets:
                response.answer.append(rrsets[qtype])
                return response
            cname = rrsets.get(dns.rdatatype.CNAME)
            if cname is None:
                break
            response.answer.append(cname)
            owner = cname[0].target
            if self._zone_of(owner) is None:
                return response
        self._add_soa_authority(response, qname)
        return response

    def _zone_of(self, name: dns.name.Name) -> dns.name.Name | None:
        for depth in range(len(name.labels)):
            candidate = dns.name.Name(name.labels[depth:])
            if candidate in self._zones:
                return candidate
        return None

    def _add_soa_authority(self, response: dns.message.Message, qname: dns.name.Name) -> None:
        zone = self._zone_of(qname)
        if zone is not None:
            soa = self._records.get(zone, {}).get(dns.rdatatype.SOA)
            if soa is not None:
                response.authority.append(soa)

    @staticmethod
    def _fit(query: dns.message.Message, response: dns.message.Message, over_tcp: bool) -> bytes:
        limit = (
            65535
            if over_tcp
            else max(_CLASSIC_UDP_LIMIT, query.payload if query.edns >= 0 else _CLASSIC_UDP_LIMIT)
        )
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.id = response.id
            truncated.flags |= dns.flags.TC | dns.flags.AA
            return truncated.to_wire(max_size=limit)


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    # SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; plain SO_RCVBUF is capped.
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), _UDP_RECEIVE_BUFFER)
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RECEIVE_BUFFER)


def _rcode_only(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response


def _garbage(query_id: int) -> bytes:
    # Right id and QR bit so clients do not just skip it as unrelated, then a question count
    # that the remaining random bytes can never satisfy: a parse error every time.
    return struct.pack("!HHH", query_id, 0x8180, 0xFFFF) + os.urandom(24)


def _oversized(query: dns.message.Message) -> dns.message.Message:
    question = query.question[0]
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if question.rdtype == dns.rdatatype.A:
        # Loopback addresses only: a client that uses this answer must not leave the machine.
        texts = [f"127.200.{i // 250}.{i % 250 + 1}" for i in range(_OVERSIZED_RECORDS)]
        rdtype = dns.rdatatype.A
    else:
        texts = [f'"oversized record {i:04d} {"x" * 40}"' for i in range(_OVERSIZED_RECORDS)]
        rdtype = dns.rdatatype.TXT
    response.answer.append(dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, rdtype, texts))
    return response


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: LabDNSServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self._server.answer(data, over_tcp=False)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from clients that went away; nothing to do for a UDP server.
        pass


class _TCPProtocol(asyncio.Protocol):
    """RFC 7766 framing: a two-byte length before each message, several per connection."""

    def __init__(self, server: LabDNSServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server._tcp_connections.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server._tcp_connections.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            (length,) = struct.unpack_from("!H", self._buffer)
            if len(self._buffer) < 2 + length:
                return
            wire = bytes(self._buffer[2 : 2 + length])
            del self._buffer[: 2 + length]
            reply = self._server.answer(wire, over_tcp=True)
            if reply is not None and self._transport is not None:
                with contextlib.suppress(ConnectionError):
                    self._transport.write(struct.pack("!H", len(reply)) + reply)
