"""DNS layer: queries through the configured resolvers only, and host-name resolution."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver

from monitor.catalog.catalog import DNSSpec, Target
from monitor.catalog.schema import Nameserver, Resolver
from monitor.probing.context import ProbeContext
from monitor.probing.dnswire import (
    TYPE_A,
    TYPE_AAAA,
    AddressAnswer,
    build_query,
    parse_address_answer,
)
from monitor.probing.failures import Failure, Phase, ProbeFailure, classify_resolver_error, failure_for_rcode
from monitor.probing.result import ProbeTrace, ResolverAnswer

__all__ = ["addresses_of", "is_bogon", "probe_dns", "query", "resolve_host"]
_MIN_ATTEMPT_SECONDS = 0.05
_DEFINITIVE = frozenset({dns.rcode.NOERROR, dns.rcode.NXDOMAIN})
_Answer = TypeVar("_Answer")


@functools.cache
def _system_nameservers() -> tuple[Nameserver, ...]:
    """The nameservers of /etc/resolv.conf, read once; used only where a config says `system`."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return ()
    return tuple(Nameserver(str(address)) for address in resolver.nameservers)


def _nameservers(resolvers: tuple[Resolver, ...]) -> list[Nameserver]:
    servers: list[Nameserver] = []
    for resolver in resolvers:
        servers.extend([resolver] if isinstance(resolver, Nameserver) else _system_nameservers())
    return servers


async def _first_answer(
    resolvers: tuple[Resolver, ...],
    deadline: float,
    ask: Callable[[Nameserver, float], Awaitable[_Answer]],
    rcode_of: Callable[[_Answer], int],
    accepted_rcodes: frozenset[int],
) -> _Answer:
    """Ask each resolver in turn until one gives an answer with an accepted rcode.

    The time left before `deadline` (monotonic) is shared fairly among the resolvers not yet
    tried, so one dead resolver cannot eat the whole probe. The last failure wins.
    """
    servers = _nameservers(resolvers)
    if not servers:
        raise ProbeFailure(Failure.DNS_ERROR, Phase.RESOLVE, "no resolvers configured")
    failure = ProbeFailure(Failure.DNS_TIMEOUT, Phase.RESOLVE, "no resolver answered")
    for index, server in enumerate(servers):
        budget = (deadline - time.monotonic()) / (len(servers) - index)
        if budget < _MIN_ATTEMPT_SECONDS:
            break
        try:
            async with asyncio.timeout(budget):
                answer = await ask(server, budget)
        except Exception as exc:
            classified = classify_resolver_error(exc, str(server))
            if classified is None:
                raise
            failure = classified
            continue
        rcode = rcode_of(answer)
        if rcode in accepted_rcodes:
            return answer
        failure = ProbeFailure(
            failure_for_rcode(rcode),
            Phase.RESOLVE,
            f"{server} answered {dns.rcode.to_text(dns.rcode.Rcode(rcode))}",
        )
    raise failure


async def query(
    qname: str,
    rdtype: dns.rdatatype.RdataType,
    resolvers: tuple[Resolver, ...],
    deadline: float,
    trace: ProbeTrace,
    accepted_rcodes: frozenset[int] = _DEFINITIVE,
) -> dns.message.Message:
    """A full DNS message (dnspython) from the first resolver that gives an accepted rcode."""
    request = dns.message.make_query(qname, rdtype)

    async def ask(server: Nameserver, budget: float) -> dns.message.Message:
        return await _ask(request, server, budget, trace)

    return await _first_answer(resolvers, deadline, ask, dns.message.Message.rcode, accepted_rcodes)


async def _lookup_addresses(
    qname: str, rdtype: int, resolvers: tuple[Resolver, ...], deadline: float, trace: ProbeTrace
) -> AddressAnswer:
    """The address records of `qname` through the lean codec; TCP (dnspython) when truncated."""

    async def ask(server: Nameserver, budget: float) -> AddressAnswer:
        type_name = dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype))
        trace.note(f"query {qname.rstrip('.')}. {type_name} at {server}")
        wire = build_query(qname, rdtype)
        answer = parse_address_answer(await _udp_exchange(wire, server), wire)
        if not answer.truncated:
            return answer
        trace.note("truncated answer, retrying over TCP")
        response = await _ask(
            dns.message.make_query(qname, dns.rdatatype.RdataType(rdtype)), server, budget, trace, tcp=True
        )
        found = _addresses(response, rdtype)
        return AddressAnswer(
            response.rcode(), False, tuple(found), sum(len(rrset) for rrset in response.answer)
        )

    return await _first_answer(resolvers, deadline, ask, lambda answer: answer.rcode, _DEFINITIVE)


async def _ask(
    request: dns.message.Message, server: Nameserver, timeout: float, trace: ProbeTrace, tcp: bool = False
) -> dns.message.Message:
    """One exchange with one resolver; errors are classified by the caller's resolver loop."""
    if tcp:
        return await dns.asyncquery.tcp(request, server.host, timeout=timeout, port=server.port)
    question = request.question[0]
    trace.note(f"query {question.name} {dns.rdatatype.to_text(question.rdtype)} at {server}")
    response = _parse(request, await _udp_exchange(request.to_wire(), server))
    if response.flags & dns.flags.TC:
        trace.note("truncated answer, retrying over TCP")
        response = await dns.asyncquery.tcp(request, server.host, timeout=timeout, port=server.port)
    return response


async def _udp_exchange(wire: bytes, server: Nameserver) -> bytes:
    """One query over a connected UDP socket: the kernel drops datagrams from other sources,
    and we drop those with another message id (spoofed or stale), as a stub resolver does.

    Far cheaper than a datagram endpoint per query, which dominated the cost of a probe."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect((server.host, server.port))
        await loop.sock_sendall(sock, wire)
        while True:
            reply = await loop.sock_recv(sock, 65535)
            if reply[:2] == wire[:2]:
                return reply
    finally:
        sock.close()


def _parse(request: dns.message.Message, reply: bytes) -> dns.message.Message:
    response = dns.message.from_wire(
        reply, keyring=request.keyring, request_mac=request.mac, one_rr_per_rrset=False, ignore_trailing=False
    )
    if not request.is_response(response):
        raise dns.exception.FormError("the answer does not match the question")
    return response


@functools.cache
def _networks(bogon_networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in bogon_networks)


def is_bogon(address: str, bogon_networks: tuple[str, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == network.version and ip in network for network in _networks(bogon_networks))


def _addresses(response: dns.message.Message, rdtype: int) -> list[str]:
    return [rdata.address for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset]


def _check_bogons(addresses: list[str], target: Target) -> None:
    bogons = [address for address in addresses if is_bogon(address, target.bogon_networks)]
    if bogons:
        raise ProbeFailure(Failure.DNS_BOGON, Phase.RESOLVE, f"answer in reserved space: {', '.join(bogons)}")


async def resolve_host(host: str, target: Target, deadline: float, trace: ProbeTrace) -> tuple[str, ...]:
    """Addresses of `host` (A first, AAAA when there is no A), bogon-checked; IP literals pass."""
    try:
        ipaddress.ip_address(host)
        return (host,)
    except ValueError:
        pass
    addresses: list[str] = []
    answers = 0
    for rdtype in (TYPE_A, TYPE_AAAA):
        answer = await _lookup_addresses(host, rdtype, target.resolvers, deadline, trace)
        if answer.rcode == dns.rcode.NXDOMAIN:
            raise ProbeFailure(Failure.DNS_NXDOMAIN, Phase.RESOLVE, f"{host} does not exist")
        answers += answer.records
        addresses = list(answer.addresses)
        if addresses:
            break
    trace.dns_answer_count = answers
    if not addresses:
        raise ProbeFailure(Failure.DNS_NO_ANSWER, Phase.RESOLVE, f"{host} has no address records")
    _check_bogons(addresses, target)
    trace.note(f"{host} is {', '.join(addresses)}")
    return tuple(addresses)


async def addresses_of(host: str, target: Target, context: ProbeContext) -> tuple[str, ...]:
    """`host` resolved once per probe; the first host resolved is the probe's `addresses`."""
    addresses = context.resolved.get(host)
    if addresses is None:
        context.trace.enter(Phase.RESOLVE)
        addresses = await resolve_host(host, target, context.deadline, context.trace)
        context.resolved[host] = addresses
        context.trace.addresses = context.trace.addresses or addresses
    return addresses


async def probe_dns(target: Target, context: ProbeContext) -> None:
    """A `dns:` target: the query must come back with an accepted rcode and a non-empty answer."""
    spec = target.spec_as(DNSSpec).query
    deadline, trace = context.deadline, context.trace
    rdtype = dns.rdatatype.from_text(spec.type)
    accepted = frozenset(dns.rcode.from_text(rcode) for rcode in spec.valid_rcodes)
    if spec.compare_resolvers:
        await _compare_resolvers(target, spec.query, rdtype, accepted, context)
        return
    response = await query(spec.query, rdtype, target.resolvers, deadline, trace, accepted)
    trace.dns_answer_count = sum(len(rrset) for rrset in response.answer)
    if response.rcode() != dns.rcode.NOERROR:
        return  # an rcode the config explicitly accepts, e.g. NXDOMAIN for a name that must not exist
    if not response.answer:
        raise ProbeFailure(Failure.DNS_NO_ANSWER, Phase.RESOLVE, f"no {spec.type} records for {spec.query}")
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        _check_bogons(_addresses(response, rdtype), target)
    trace.note(f"{trace.dns_answer_count} records")


async def _compare_resolvers(
    target: Target, qname: str, rdtype: int, accepted: frozenset[int], context: ProbeContext
) -> None:
    """Ask every resolver at once and keep each answer for the consistency check; the target
    answers when one resolver gives a usable, non-bogon answer (as with failover)."""
    trace = context.trace
    servers = _nameservers(target.resolvers)
    # A silent resolver must time out before the probe does, or it takes the others' answers along.
    deadline = context.deadline - max(_MIN_ATTEMPT_SECONDS, 0.1 * (context.deadline - time.monotonic()))

    async def ask(server: Nameserver) -> ResolverAnswer:
        try:
            answer = await _lookup_addresses(qname, rdtype, (server,), deadline, trace)
        except ProbeFailure as failure:
            return ResolverAnswer(str(server), None, failure=failure.failure)
        rcode = dns.rcode.to_text(dns.rcode.Rcode(answer.rcode))
        return ResolverAnswer(str(server), rcode, tuple(sorted(answer.addresses)))

    trace.dns_answers = tuple(await asyncio.gather(*(ask(server) for server in servers)))
    usable = [
        answer
        for answer in trace.dns_answers
        if answer.rcode is not None and dns.rcode.from_text(answer.rcode) in accepted
    ]
    if not usable:
        if any(answer.rcode == "NXDOMAIN" for answer in trace.dns_answers):
            raise ProbeFailure(Failure.DNS_NXDOMAIN, Phase.RESOLVE, f"{qname} does not exist")
        failures = [a.failure for a in trace.dns_answers if a.failure is not None]
        failure = failures[-1] if failures else Failure.DNS_NO_ANSWER
        raise ProbeFailure(failure, Phase.RESOLVE, "no resolver gave a usable answer")
    clean = [
        answer
        for answer in usable
        if answer.addresses and not any(is_bogon(ip, target.bogon_networks) for ip in answer.addresses)
    ]
    trace.dns_answer_count = max(len(a.addresses) for a in usable)
    if not clean:
        _check_bogons([ip for a in usable for ip in a.addresses], target)
        raise ProbeFailure(Failure.DNS_NO_ANSWER, Phase.RESOLVE, f"no {qname} addresses from any resolver")
    for answer in trace.dns_answers:
        said = answer.rcode or answer.failure
        trace.note(f"{answer.resolver}: {said} {' '.join(answer.addresses)}".rstrip())
