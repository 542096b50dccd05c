"""The lab does what it says: DNS answers and faults, web modes, hostile servers, the simulated
country and the lab process. Everything here talks to 127.0.0.0/8 only."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import yaml
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.lab import (
    KAZAKHSTAN_STAYS_UP,
    Behavior,
    HostileKind,
    HostileServer,
    LabDNSServer,
    LabPKI,
    LabWebServer,
    Mode,
    SimulatedInternet,
    free_port_pair,
    kazakhstan,
    synthetic,
)
from monitor.lab.topology import cymru_origin_name, network_prefix

REPO = Path(__file__).resolve().parents[2]
SHORT = 0.4  # long enough for anything on loopback, short enough to call a hang a hang


# --- helpers -------------------------------------------------------------------------------


class StaticResolver(AbstractResolver):
    """Resolves lab names from a fixed table: the tests never touch the system resolver."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = dict(table)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        ip = self._table.get(host, host)
        return [ResolveResult(hostname=host, host=ip, port=port, family=socket.AF_INET,
                              proto=0, flags=0)]

    async def close(self) -> None:
        pass


def lab_session(pki: LabPKI, table: Mapping[str, str] | None = None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=pki.client_context(), resolver=StaticResolver(table or {}),
                                     force_close=True)
    return aiohttp.ClientSession(connector=connector)


async def query(server: LabDNSServer, name: str, rdtype: str = "A", *, tcp: bool = False,
                timeout: float = SHORT) -> dns.message.Message:
    request = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(request, server.host, port=server.port, timeout=timeout)


async def raw_udp(server: LabDNSServer, name: str, rdtype: str = "A") -> bytes:
    """The reply datagram as sent, unparsed."""
    wire = dns.message.make_query(name, rdtype).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(sock, wire, (server.host, server.port))
        async with asyncio.timeout(SHORT):
            return await loop.sock_recv(sock, 65535)


async def reach(ip: str, port: int, timeout: float = SHORT) -> str:
    """'open', 'refused' or 'timeout' for a TCP connect."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(ip, port)
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    writer.close()
    await writer.wait_closed()
    return "open"


async def fetch(session: aiohttp.ClientSession, url: str, timeout: float = SHORT) -> str:
    """'200', '503', ... or 'refused' / 'timeout' / 'error: ...' for one GET."""
    try:
        async with asyncio.timeout(timeout), session.get(url, allow_redirects=False) as response:
            await response.read()
            return str(response.status)
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "refused"
        return f"error: {exc}"


async def fetch_site(net: SimulatedInternet, session: aiohttp.ClientSession, name: str) -> str:
    site = net.site(name)
    if site.host.kind.value == "tcp":
        assert site.ip is not None
        return await reach(site.ip, net.http_port)
    return await fetch(session, net.url(name))


async def fetch_all(net: SimulatedInternet, session: aiohttp.ClientSession) -> dict[str, str]:
    names = [name for name, site in net.sites.items() if site.ip is not None]
    results = await asyncio.gather(*(fetch_site(net, session, name) for name in names))
    return dict(zip(names, results, strict=True))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def pki() -> LabPKI:
    return LabPKI()


@pytest.fixture
async def dns_server() -> AsyncIterator[LabDNSServer]:
    server = LabDNSServer()
    server.add_soa("lab.test")
    server.add_a("www.example.lab.test", ["127.10.0.1", "127.10.0.2"])
    server.add_aaaa("www.example.lab.test", ["::1"])
    server.add_txt("txt.lab.test", ["hello world", 'with "quotes"'])
    server.add_cname("alias.lab.test", "www.example.lab.test")
    async with server:
        yield server


# --- DNS -----------------------------------------------------------------------------------


async def test_dns_answers_a_aaaa_txt_soa_and_cname(dns_server: LabDNSServer) -> None:
    a = await query(dns_server, "WWW.Example.lab.test")  # case and the missing dot do not matter
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AA
    assert sorted(rr.address for rr in a.answer[0]) == ["127.10.0.1", "127.10.0.2"]
    assert a.answer[0].ttl <= 60

    aaaa = await query(dns_server, "www.example.lab.test.", "AAAA")
    assert [rr.address for rr in aaaa.answer[0]] == ["::1"]

    txt = await query(dns_server, "txt.lab.test", "TXT")
    assert sorted(b"".join(rr.strings).decode() for rr in txt.answer[0]) == [
        "hello world", 'with "quotes"']

    soa = await query(dns_server, "lab.test", "SOA")
    assert soa.answer[0].rdtype == dns.rdatatype.SOA
    ns = await query(dns_server, "lab.test", "NS")
    assert ns.answer[0].rdtype == dns.rdatatype.NS

    alias = await query(dns_server, "alias.lab.test")
    assert [rrset.rdtype for rrset in alias.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]

    over_tcp = await query(dns_server, "www.example.lab.test", tcp=True)
    assert len(over_tcp.answer[0]) == 2


async def test_dns_nxdomain_nodata_refused(dns_server: LabDNSServer) -> None:
    missing = await query(dns_server, "nope.lab.test")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority and missing.authority[0].rdtype == dns.rdatatype.SOA

    nodata = await query(dns_server, "www.example.lab.test", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA

    empty_nonterminal = await query(dns_server, "example.lab.test")
    assert empty_nonterminal.rcode() == dns.rcode.NOERROR and not empty_nonterminal.answer

    outside = await query(dns_server, "www.example.com")
    assert outside.rcode() == dns.rcode.REFUSED

    dns_server.remove("txt.lab.test")
    assert (await query(dns_server, "txt.lab.test", "TXT")).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize(("behavior", "rcode"), [
    (Behavior.NXDOMAIN, dns.rcode.NXDOMAIN),
    (Behavior.SERVFAIL, dns.rcode.SERVFAIL),
    (Behavior.REFUSED, dns.rcode.REFUSED),
])
async def test_dns_rcode_behaviors(dns_server: LabDNSServer, behavior: Behavior,
                                   rcode: dns.rcode.Rcode) -> None:
    dns_server.set_behavior("www.example.lab.test", behavior)
    assert (await query(dns_server, "www.example.lab.test")).rcode() == rcode
    assert (await query(dns_server, "www.example.lab.test", tcp=True)).rcode() == rcode
    assert (await query(dns_server, "txt.lab.test", "TXT")).rcode() == dns.rcode.NOERROR


async def test_dns_drop_never_answers(dns_server: LabDNSServer) -> None:
    dns_server.set_behavior("www.example.lab.test", Behavior.DROP)
    with pytest.raises(dns.exception.Timeout):
        await query(dns_server, "www.example.lab.test", timeout=0.2)
    with pytest.raises(dns.exception.Timeout):
        await query(dns_server, "www.example.lab.test", tcp=True, timeout=0.2)


async def test_dns_garbage_does_not_parse(dns_server: LabDNSServer) -> None:
    dns_server.set_behavior("www.example.lab.test", Behavior.GARBAGE)
    reply = await raw_udp(dns_server, "www.example.lab.test")
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(reply)
    with pytest.raises(dns.exception.DNSException):
        await query(dns_server, "www.example.lab.test")


async def test_dns_truncated_over_udp_full_over_tcp(dns_server: LabDNSServer) -> None:
    dns_server.set_behavior("www.example.lab.test", Behavior.TRUNCATED)
    udp = await query(dns_server, "www.example.lab.test")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = await query(dns_server, "www.example.lab.test", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 2


async def test_dns_oversized_udp_answer_without_tc(dns_server: LabDNSServer) -> None:
    dns_server.set_behavior("www.example.lab.test", Behavior.OVERSIZED)
    reply = await raw_udp(dns_server, "www.example.lab.test")
    assert len(reply) > 2048
    message = dns.message.from_wire(reply)
    assert not message.flags & dns.flags.TC
    assert all(rr.address.startswith("127.") for rr in message.answer[0])


async def test_dns_wrong_id(dns_server: LabDNSServer) -> None:
    dns_server.set_behavior("www.example.lab.test", Behavior.WRONG_ID)
    request = dns.message.make_query("www.example.lab.test", "A")
    reply = dns.message.from_wire(await _send_raw(dns_server, request))
    assert reply.id != request.id
    with pytest.raises(dns.query.BadResponse):
        await dns.asyncquery.udp(request, dns_server.host, port=dns_server.port, timeout=SHORT)


async def _send_raw(server: LabDNSServer, request: dns.message.Message) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(sock, request.to_wire(), (server.host, server.port))
        async with asyncio.timeout(SHORT):
            return await loop.sock_recv(sock, 65535)


async def test_dns_default_behavior_and_per_name_precedence(dns_server: LabDNSServer) -> None:
    dns_server.set_default_behavior(Behavior.SERVFAIL)
    dns_server.set_behavior("txt.lab.test", Behavior.REFUSED)
    assert (await query(dns_server, "www.example.lab.test")).rcode() == dns.rcode.SERVFAIL
    assert (await query(dns_server, "txt.lab.test", "TXT")).rcode() == dns.rcode.REFUSED
    dns_server.set_default_behavior(Behavior.NORMAL)
    dns_server.set_behavior("txt.lab.test", Behavior.NORMAL)
    assert (await query(dns_server, "txt.lab.test", "TXT")).rcode() == dns.rcode.NOERROR


async def test_dns_counts_queries_and_keeps_up(dns_server: LabDNSServer) -> None:
    before = dns_server.queries
    started = time.perf_counter()
    replies = await asyncio.gather(*(query(dns_server, f"h{i}.lab.test", timeout=2.0)
                                     for i in range(300)))
    assert time.perf_counter() - started < 2.0
    assert all(reply.rcode() == dns.rcode.NXDOMAIN for reply in replies)
    assert dns_server.queries - before == 300


# --- web server ----------------------------------------------------------------------------


async def test_web_serves_virtual_hosts_over_http_and_https(pki: LabPKI) -> None:
    server = LabWebServer("127.10.0.1", pki, hosts=["a.lab.test", "b.lab.test"])
    server.add_host("moved.lab.test", redirect="https://a.lab.test/")
    server.add_host("teapot.lab.test", status=418, body="short and stout")
    async with server, lab_session(pki, dict.fromkeys(server.hosts, server.ip)) as session:
        async with session.get(server.url("a.lab.test")) as response:
            assert response.status == 200 and "a.lab.test" in await response.text()
        async with session.get(server.url("b.lab.test", https=False)) as response:
            assert response.status == 200 and "b.lab.test" in await response.text()
        async with session.get(server.url("moved.lab.test"), allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "https://a.lab.test/"
        async with session.get(server.url("teapot.lab.test")) as response:
            assert response.status == 418 and await response.text() == "short and stout"
        # An IP literal with the Host header chooses the virtual host too.
        url = f"http://{server.ip}:{server.http_port}/"
        async with session.get(url, headers={"Host": "b.lab.test"}) as response:
            assert response.status == 200
        async with session.get(url, headers={"Host": "unknown.lab.test"}) as response:
            assert response.status == 404
        # A host added while running is in the certificate of new handshakes.
        server.add_host("late.lab.test")
        late = lab_session(pki, {"late.lab.test": server.ip})
        async with late, late.get(server.url("late.lab.test")) as response:
            assert response.status == 200


async def test_web_modes_refuse_blackhole_http_error_and_back(pki: LabPKI) -> None:
    async with LabWebServer("127.10.0.2", pki, hosts=["a.lab.test"]) as server, \
            lab_session(pki, {"a.lab.test": server.ip}) as session:
        ports = server.http_port, server.https_port
        assert await fetch(session, server.url("a.lab.test")) == "200"

        await server.set_mode(Mode.REFUSE)
        assert await reach(server.ip, server.http_port) == "refused"
        assert await fetch(session, server.url("a.lab.test")) == "refused"

        await server.set_mode(Mode.BLACKHOLE)
        started = time.perf_counter()
        assert await reach(server.ip, server.https_port, timeout=0.3) == "timeout"
        assert time.perf_counter() - started < 1.0
        assert await fetch(session, server.url("a.lab.test", https=False), 0.3) == "timeout"

        await server.set_mode(Mode.HTTP_ERROR)
        assert await fetch(session, server.url("a.lab.test")) == "503"

        await server.set_mode(Mode.UP)
        assert (server.http_port, server.https_port) == ports
        assert await fetch(session, server.url("a.lab.test")) == "200"


async def test_servers_on_different_ips_share_a_port_pair(pki: LabPKI) -> None:
    ips = ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
    http_port, https_port = free_port_pair(ips)
    servers = [LabWebServer(ip, pki, http_port=http_port, https_port=https_port,
                            hosts=[f"h{i}.lab.test"]) for i, ip in enumerate(ips)]
    await asyncio.gather(*(server.start() for server in servers))
    try:
        table = {f"h{i}.lab.test": ip for i, ip in enumerate(ips)}
        async with lab_session(pki, table) as session:
            results = await asyncio.gather(*(
                fetch(session, f"https://h{i}.lab.test:{https_port}/") for i in range(3)))
        assert results == ["200", "200", "200"]
    finally:
        await asyncio.gather(*(server.close() for server in servers))


def test_loopback_guard_rejects_other_addresses(pki: LabPKI) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        LabWebServer("10.0.0.1", pki)
    with pytest.raises(ValueError):
        free_port_pair(["0.0.0.0"])


# --- hostile servers -----------------------------------------------------------------------


async def test_hostile_never_accepts_and_closed_port(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.NEVER_ACCEPTS) as never, \
            HostileServer(HostileKind.CLOSED_PORT) as closed:
        assert await reach(never.host, never.port, timeout=0.3) == "timeout"
        assert await reach(closed.host, closed.port) == "refused"


async def test_hostile_silent_server_never_answers(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.SILENT) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await reader.read(1)
        writer.close()


async def test_hostile_tls_handshake_reset(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.TLS_HANDSHAKE_RESET) as server:
        with pytest.raises(ConnectionResetError):
            await asyncio.open_connection(server.host, server.port, ssl=pki.client_context(),
                                          server_hostname=server.hostname)


async def test_hostile_reset_mid_response(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.RESET_MID_RESPONSE) as server, \
            lab_session(pki) as session, session.get(server.url) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_hostile_trickle(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.TRICKLE, trickle_interval=0.1) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.perf_counter()
        first = await reader.readexactly(4)
        assert first == b"HTTP"
        assert time.perf_counter() - started >= 0.25  # one byte per tick
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await reader.read()
        writer.close()


async def test_hostile_endless_body(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.ENDLESS_BODY) as server, \
            lab_session(pki) as session, session.get(server.url) as response:
        assert response.status == 200 and response.content_length is None
        received = 0
        while received < 8 << 20:
            chunk = await response.content.read(1 << 20)
            assert chunk, "the body ended"
            received += len(chunk)


async def test_hostile_redirect_loop(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.REDIRECT_LOOP) as server, lab_session(pki) as session:
        async with session.get(server.url + "a", allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/b"
        with pytest.raises(aiohttp.TooManyRedirects):
            async with session.get(server.url + "a", max_redirects=6):
                pass


async def test_hostile_huge_headers(pki: LabPKI) -> None:
    async with HostileServer(HostileKind.HUGE_HEADERS) as server, lab_session(pki) as session:
        with pytest.raises(aiohttp.ClientResponseError, match="Got more than"):
            async with session.get(server.url):
                pass


@pytest.mark.parametrize(("kind", "reason"), [
    (HostileKind.EXPIRED_CERT, "expired"),
    (HostileKind.WRONG_HOST_CERT, "mismatch"),
    (HostileKind.UNKNOWN_CA_CERT, "issuer"),
])
async def test_hostile_bad_certificates(pki: LabPKI, kind: HostileKind, reason: str) -> None:
    async with HostileServer(kind, pki=pki, hostname="bad.lab.test") as server:
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            await asyncio.open_connection(server.host, server.port, ssl=pki.client_context(),
                                          server_hostname="bad.lab.test")
        assert reason in caught.value.verify_message
        # Without verification the server does answer: the certificate is the only fault.
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(server.host, server.port, ssl=insecure)
        writer.write(b"GET / HTTP/1.1\r\nHost: bad.lab.test\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()


async def test_hostile_servers_leave_nothing_behind(pki: LabPKI) -> None:
    fds = open_fds()
    for kind in HostileKind:
        async with HostileServer(kind, pki=pki) as server:
            if kind not in (HostileKind.NEVER_ACCEPTS, HostileKind.CLOSED_PORT):
                _, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await asyncio.sleep(0.02)  # let the server be mid-way through its act
        if kind not in (HostileKind.NEVER_ACCEPTS, HostileKind.CLOSED_PORT):
            writer.close()
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert open_fds() <= fds


# --- the simulated country -----------------------------------------------------------------


async def test_kazakhstan_normal_day_shutdown_and_vantage_offline(tmp_path: Path) -> None:
    async with kazakhstan(workdir=tmp_path) as net, \
            lab_session(net.pki, net.addresses()) as session:
        assert net.ca_file == tmp_path / "lab-ca.pem" and net.ca_file.exists()
        assert {net.networks[asn].country for asn in (13335, 15169, 19281, 3333, 14907)} <= {
            "US", "CH", "NL"}
        controls = [name for name, site in net.sites.items() if site.host.is_control]
        assert len(controls) == 5 and len({net.site(c).host.asn for c in controls}) == 5

        normal = await fetch_all(net, session)
        assert normal.pop("akorda") == "timeout"  # geo-blocked from the start
        assert set(normal.values()) <= {"200", "open"}, normal

        # A shutdown: all of KZ dark except two official sites; DNS abroad still answers.
        await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)
        shutdown = await fetch_all(net, session)
        for name, result in shutdown.items():
            site = net.site(name)
            if site.host.is_control or name in KAZAKHSTAN_STAYS_UP:
                assert result == "200", (name, result)
            else:
                assert result == "timeout", (name, result)
        inform = await query(net.dns, "inform.kz.lab.test")
        assert inform.answer[0][0].address == net.site("kazinform").ip
        assert (await query(net.dns, "kz.lab.test", "SOA")).rcode() == dns.rcode.SERVFAIL
        assert net.state()["hosts"]["nationalbank"]["mode"] == "up"

        # Our own uplink dies: controls and the DNS server go silent too.
        await net.set_vantage_offline(True)
        offline = await fetch_all(net, session)
        assert set(offline.values()) == {"timeout"}
        with pytest.raises(dns.exception.Timeout):
            await query(net.dns, "www.ripe.net.lab.test", timeout=0.2)

        await net.set_vantage_offline(False)
        assert await fetch_site(net, session, "control-ripe") == "200"
        assert await fetch_site(net, session, "khabar") == "timeout"  # the shutdown goes on

        await net.restore_all()
        restored = await fetch_all(net, session)
        assert restored == {**normal, "akorda": "timeout"}
        assert (await query(net.dns, "kz.lab.test", "SOA")).rcode() == dns.rcode.NOERROR


async def test_kazakhstan_single_site_and_network_faults() -> None:
    async with kazakhstan() as net, lab_session(net.pki, net.addresses()) as session:
        await net.set_host("kazinform", Mode.REFUSE)
        await net.set_network(29355, Mode.HTTP_ERROR)  # Kcell
        assert await fetch_site(net, session, "kazinform") == "refused"
        assert await fetch_site(net, session, "khabar") == "200"  # same network, own server
        assert await fetch_site(net, session, "kcell") == "503"
        assert await fetch_site(net, session, "zakon") == "503"
        assert net.host_mode("inform.kz.lab.test") is Mode.REFUSE

        await net.set_country("KZ", Mode.REFUSE)
        assert await fetch_site(net, session, "kazinform") == "refused"
        assert await fetch_site(net, session, "alaport-tcp") == "refused"
        await net.set_country("KZ", Mode.UP)
        assert await fetch_site(net, session, "kazinform") == "200"  # set_country cleared it
        assert await fetch_site(net, session, "akorda") == "timeout"  # still geo-blocked
        await net.set_host("akorda", Mode.UP)
        assert await fetch_site(net, session, "akorda") == "200"


async def test_dns_serves_zone_and_team_cymru_records() -> None:
    async with kazakhstan() as net:
        site = net.site("kazinform")
        assert site.ip is not None and ipaddress.ip_address(site.ip) in network_prefix(9198)
        answer = await query(net.dns, site.fqdn)
        assert answer.answer[0][0].address == site.ip

        origin = await query(net.dns, cymru_origin_name(site.ip), "TXT")
        text = b"".join(origin.answer[0][0].strings).decode()
        assert text == f"9198 | {network_prefix(9198)} | KZ | lab | 2022-01-01"
        name = await query(net.dns, "AS9198.asn.cymru.com", "TXT")
        assert b"KAZTELECOM" in b"".join(name.answer[0][0].strings)
        unknown = await query(net.dns, "1.0.0.10.origin.asn.cymru.com", "TXT")
        assert unknown.rcode() == dns.rcode.NXDOMAIN

        soa = await query(net.dns, "kz.lab.test.", "SOA")
        assert soa.rcode() == dns.rcode.NOERROR and soa.answer
        assert (await query(net.dns, "nothere.lab.test")).rcode() == dns.rcode.NXDOMAIN
        assert (await query(net.dns, "example.org")).rcode() == dns.rcode.REFUSED


async def test_targets_yaml(tmp_path: Path) -> None:
    async with kazakhstan() as net:
        path = net.write_targets_yaml(tmp_path / "targets.yaml", interval="1s", timeout="1s")
        document = yaml.safe_load(path.read_text())
        defaults = document["defaults"]
        assert defaults["interval"] == "1s" and defaults["timeout"] == "1s"
        assert defaults["resolvers"] == [net.dns_address]
        assert defaults["tls"] == {"ca_file": str(net.ca_file)}
        assert defaults["asn_lookup"] == {"zone": "origin.asn.cymru.com",
                                          "zone6": "origin6.asn.cymru.com"}
        assert "127.0.0.0/8" not in defaults["bogon_networks"]
        targets = {entry["name"]: entry for entry in document["targets"]}
        assert targets["kazinform"] == {
            "name": "kazinform", "url": f"https://inform.kz.lab.test:{net.https_port}/",
            "country": "KZ", "category": "state_media", "region": "KZ-71", "asn": 9198}
        assert targets["dns-kaspi"] == {
            "name": "dns-kaspi",
            "dns": {"query": "kaspi.kz.lab.test.", "type": "A", "compare_resolvers": True},
            "resolvers": [net.dns_address, net.national_dns_address],
            "country": "KZ", "category": "dns_consistency"}
        assert document["regions"] == {"KZ": {"KZ-71": "Astana", "KZ-75": "Almaty"}}
        assert document["networks"][29355] == {"name": "KCELL-AS", "kind": "mobile"}
        assert targets["kz-registry-dns"] == {
            "name": "kz-registry-dns", "dns": {"query": "kz.lab.test.", "type": "SOA"},
            "country": "KZ", "category": "cctld_dns"}
        assert targets["alaport-tcp"]["tcp"] == f"alaport.com.lab.test:{net.http_port}"
        assert "asn" not in targets["tengrinews"]  # left for the ASN lookup
        assert {entry["category"] for entry in document["controls"]} == {"control"}
        assert len(document["controls"]) == 5 and len(targets) == 28
        categories = {entry["category"] for entry in targets.values()}
        assert categories == {"state_media", "government", "police_security", "airport",
                              "telecom", "bank", "media", "cctld_dns", "dns_consistency"}

        without = yaml.safe_load(net.write_targets_yaml(tmp_path / "no-asn.yaml",
                                                        include_asn=False).read_text())
        assert not any("asn" in entry for entry in without["targets"] + without["controls"])

        config = pytest.importorskip("monitor.catalog.catalog")
        catalog = config.load_catalog(path)
        assert len(catalog.controls) == 5 and catalog.by_name["kazinform"].asn == 9198
        assert catalog.network_kind(29355) == "mobile" and catalog.by_name["kcell"].region == "KZ-75"


async def test_synthetic_hosts_share_network_servers() -> None:
    async with synthetic(40) as net, lab_session(net.pki, net.addresses()) as session:
        assert len(net.web_servers) == 6 + 5
        results = await fetch_all(net, session)
        assert set(results.values()) <= {"200", "open"}
        with pytest.raises(ValueError, match="share the server"):
            await net.set_host("site00001", Mode.REFUSE)
        await net.set_host("site00001", Mode.HTTP_ERROR)
        assert await fetch_site(net, session, "site00001") == "503"
        assert await fetch_site(net, session, "site00007") == "200"  # same network
        await net.set_network(net.site("site00001").host.asn, Mode.REFUSE)
        assert await fetch_site(net, session, "site00007") == "refused"


async def test_internet_leaves_nothing_behind() -> None:
    fds = open_fds()
    async with kazakhstan() as net, lab_session(net.pki, net.addresses()) as session:
        await fetch_all(net, session)
        await net.set_country("KZ", Mode.BLACKHOLE)
        ports = net.http_port, net.https_port
        ips = [server.ip for server in net.web_servers]
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert open_fds() <= fds
    for ip in ips:  # every port is free again
        for port in ports:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((ip, port))


# --- the lab process -----------------------------------------------------------------------


async def test_lab_process_cli(tmp_path: Path) -> None:
    config = tmp_path / "targets.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.lab", "serve", "--preset", "kazakhstan",
        "--config-out", str(config), "--control", "127.0.0.1:0", "--interval", "1s",
        "--timeout", "1s", cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(15):
            line = (await process.stdout.readline()).decode()
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        assert fields["config"] == str(config) and config.exists()
        control = f"http://{fields['control']}"
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=StaticResolver({}))) as session:
            async with session.get(f"{control}/state") as response:
                state = await response.json()
            assert state["dns"] == fields["dns"] and len(state["hosts"]) == 33
            async with session.post(f"{control}/country/KZ/blackhole",
                                    json={"except": ["nationalbank"]}) as response:
                state = await response.json()
            assert state["hosts"]["kazinform"]["mode"] == "blackhole"
            assert state["hosts"]["nationalbank"]["mode"] == "up"
            async with session.post(f"{control}/region/kz-75/refuse") as response:
                assert (await response.json())["hosts"]["kcell"]["mode"] == "refuse"
            async with session.post(f"{control}/slow/AS29355/0.2") as response:
                assert (await response.json())["hosts"]["zakon"]["slow_seconds"] == 0.2
            async with session.post(f"{control}/dns/kaspi/lie/10.10.34.35") as response:
                assert (await response.json())["national_dns_lies"] == {"kaspi.kz.lab.test": "10.10.34.35"}
            async with session.post(f"{control}/dns/kaspi/lie/nowhere") as response:
                assert response.status == 400
            async with session.post(f"{control}/vantage/offline") as response:
                assert (await response.json())["vantage_offline"] is True
            async with session.post(f"{control}/host/kazinform/sideways") as response:
                assert response.status == 400
            async with session.post(f"{control}/network/AS1/up") as response:
                assert response.status == 404
            async with session.post(f"{control}/restore") as response:
                state = await response.json()
            assert state["hosts"]["kazinform"]["mode"] == "up"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
