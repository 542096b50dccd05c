"""Every failure string provoked for real against the lab on loopback, within the probe deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from monitor.catalog.catalog import Target, parse_catalog
from monitor.lab.certs import LabPKI
from monitor.lab.dns_server import Behavior, LabDNSServer
from monitor.lab.hostile import HostileKind, HostileServer
from monitor.probing.prober import Prober
from monitor.probing.result import ProbeResult

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT = 1.5
TIMEOUT_TEXT = "1500ms"
ZONE = "lab.test"
LOOPBACK_ALLOWED = ["0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4"]


@dataclass
class SmallInternet:
    dns: LabDNSServer
    pki: LabPKI
    ca_file: Path
    http_port: int
    https_port: int
    prober: Prober

    def target(self, spec: str, **extra: str) -> Target:
        """A catalog target (`spec` is a YAML flow-mapping fragment) against this small internet."""
        settings = ", ".join(f"{key}: {value}" for key, value in extra.items())
        text = (
            f"defaults: {{timeout: {TIMEOUT_TEXT}, interval: 5s, resolvers: ['{self.dns.address}'],"
            f" tls: {{ca_file: '{self.ca_file}'}}, bogon_networks: {LOOPBACK_ALLOWED}}}\n"
            f"targets:\n  - {{name: t, country: KZ, category: test, {spec}"
            f"{', ' + settings if settings else ''}}}\n"
        )
        return parse_catalog(text).by_name["t"]

    async def probe(self, spec: str, **extra: str) -> ProbeResult:
        before = _probe_tasks()
        started = time.monotonic()
        result = await self.prober.probe(self.target(spec, **extra), debug=True)
        assert time.monotonic() - started < TIMEOUT + 0.5, "the probe overran its deadline"
        await asyncio.sleep(0.05)
        assert _probe_tasks() <= before, "the probe left tasks running"
        return result


def _probe_tasks() -> set[asyncio.Task[object]]:
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and any(part in repr(task.get_coro()) for part in ("monitor.", "ClientSession", "Connector"))
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def net(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SmallInternet]:
    pki = LabPKI()
    ca_file = pki.write_ca_pem(tmp_path_factory.mktemp("pki") / "ca.pem")
    dns = LabDNSServer()
    dns.add_soa(ZONE)
    for name in ("ok", "servfail", "refused", "drop", "garbage", "truncated", "oversized", "wrongid"):
        dns.add_a(f"{name}.{ZONE}", ["127.0.0.1"])
    dns.add_a(f"bogon.{ZONE}", ["0.0.0.0"])
    dns.add_txt(f"textonly.{ZONE}", ["no address here"])
    for name, behavior in (
        ("servfail", Behavior.SERVFAIL),
        ("refused", Behavior.REFUSED),
        ("drop", Behavior.DROP),
        ("garbage", Behavior.GARBAGE),
        ("truncated", Behavior.TRUNCATED),
        ("oversized", Behavior.OVERSIZED),
        ("wrongid", Behavior.WRONG_ID),
    ):
        dns.set_behavior(f"{name}.{ZONE}", behavior)
    await dns.start()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="Kazinform: news of Kazakhstan")

    async def error(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/500", error)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    http_site = web.TCPSite(runner, "127.0.0.1", 0)
    https_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.server_context([f"ok.{ZONE}"]))
    await http_site.start()
    await https_site.start()
    prober = Prober()
    yield SmallInternet(
        dns,
        pki,
        ca_file,
        http_site._server.sockets[0].getsockname()[1],  # type: ignore[union-attr]
        https_site._server.sockets[0].getsockname()[1],
        prober,
    )  # type: ignore[union-attr]
    await prober.close()
    await runner.cleanup()
    await dns.close()


@pytest_asyncio.fixture(loop_scope="module")
async def hostile(net: SmallInternet, request: pytest.FixtureRequest) -> AsyncIterator[HostileServer]:
    server = HostileServer(request.param, pki=net.pki, hostname=f"ok.{ZONE}", trickle_interval=1.0)
    await server.start()
    yield server
    await server.close()


def hostile_url(server: HostileServer, path: str = "/") -> str:
    scheme = "https" if server.kind.uses_tls else "http"
    return f'url: "{scheme}://ok.{ZONE}:{server.port}{path}"'


async def test_a_healthy_https_site_succeeds_with_every_phase_timed(net: SmallInternet) -> None:
    result = await net.probe(f'url: "https://ok.{ZONE}:{net.https_port}/"', http='{body_regex: "Kazinform"}')
    assert result.success, result.detail
    assert result.http_status == 200 and result.tls_version == "TLSv1.3"
    assert result.cert_expiry is not None and result.cert_expiry > time.time()
    assert {phase.value for phase in result.phases} == {"resolve", "connect", "tls", "processing", "transfer"}
    assert result.addresses == ("127.0.0.1",)


async def test_a_redirect_is_followed_and_counted(net: SmallInternet) -> None:
    result = await net.probe(f'url: "http://ok.{ZONE}:{net.http_port}/moved"')
    assert result.success and result.redirects == 1


async def test_tcp_and_tls_only_targets_succeed(net: SmallInternet) -> None:
    assert (await net.probe(f'tcp: "ok.{ZONE}:{net.http_port}"')).success
    tls = await net.probe(f'tls_connect: "ok.{ZONE}:{net.https_port}"')
    assert tls.success and tls.tls_version is not None


async def test_a_dns_target_succeeds_on_its_soa(net: SmallInternet) -> None:
    result = await net.probe(f'dns: {{query: "{ZONE}.", type: SOA}}')
    assert result.success and result.dns_answer_count == 1


@pytest.mark.parametrize(
    ("name", "failure"),
    [
        ("missing", "dns_nxdomain"),
        ("textonly", "dns_no_answer"),
        ("servfail", "dns_servfail"),
        ("refused", "dns_refused"),
        ("drop", "dns_timeout"),
        ("bogon", "dns_bogon"),
        ("garbage", "dns_error"),
    ],
)
async def test_dns_failures_are_classified(net: SmallInternet, name: str, failure: str) -> None:
    result = await net.probe(f'url: "http://{name}.{ZONE}:{net.http_port}/"')
    assert (result.failure, result.failed_phase) == (failure, "resolve"), result.detail


@pytest_asyncio.fixture(loop_scope="module")
async def second_resolver() -> AsyncIterator[LabDNSServer]:
    """Another resolver with the same records, to compare answers with (and to make lie)."""
    dns = LabDNSServer()
    dns.add_soa(ZONE)
    dns.add_a(f"ok.{ZONE}", ["127.0.0.1"])
    await dns.start()
    yield dns
    await dns.close()


async def _compare(net: SmallInternet, other: LabDNSServer, name: str = "ok") -> ProbeResult:
    return await net.probe(
        f'dns: {{query: "{name}.{ZONE}.", compare_resolvers: true}}',
        resolvers=f"['{net.dns.address}', '{other.address}']",
    )


async def test_comparing_resolvers_keeps_every_answer(
    net: SmallInternet, second_resolver: LabDNSServer
) -> None:
    result = await _compare(net, second_resolver)
    assert result.success, result.detail
    assert [(a.rcode, a.addresses) for a in result.dns_answers] == [("NOERROR", ("127.0.0.1",))] * 2


async def test_a_lying_resolver_is_recorded_and_the_target_still_answers(
    net: SmallInternet, second_resolver: LabDNSServer
) -> None:
    second_resolver.set_spoof(f"ok.{ZONE}", ["10.10.34.35"])
    result = await _compare(net, second_resolver)
    assert result.success, result.detail
    assert sorted(a.addresses for a in result.dns_answers) == [("10.10.34.35",), ("127.0.0.1",)]


async def test_a_silent_resolver_times_out_before_the_probe_and_costs_nothing(
    net: SmallInternet, second_resolver: LabDNSServer
) -> None:
    second_resolver.set_default_behavior(Behavior.DROP)
    result = await _compare(net, second_resolver)
    assert result.success, result.detail
    assert [a.failure for a in result.dns_answers] == [None, "dns_timeout"]


async def test_a_name_no_resolver_knows_is_nxdomain(
    net: SmallInternet, second_resolver: LabDNSServer
) -> None:
    result = await _compare(net, second_resolver, "missing")
    assert result.failure == "dns_nxdomain"


async def test_a_name_outside_every_zone_is_refused(net: SmallInternet) -> None:
    result = await net.probe('tcp: "elsewhere.example:80"')
    assert result.failure == "dns_refused"


async def test_a_truncated_answer_is_retried_over_tcp(net: SmallInternet) -> None:
    result = await net.probe(f'tcp: "truncated.{ZONE}:{net.http_port}"')
    assert result.success, result.log


@pytest.mark.parametrize("name", ["oversized", "wrongid"])
async def test_misbehaving_resolvers_are_classified_not_crashed_on(net: SmallInternet, name: str) -> None:
    result = await net.probe(f'dns: {{query: "{name}.{ZONE}.", type: A}}')
    assert result.success or result.failure in ("dns_error", "dns_timeout"), result.detail


@pytest.mark.parametrize(
    ("hostile", "failure", "phase"),
    [
        (HostileKind.CLOSED_PORT, "tcp_refused", "connect"),
        (HostileKind.NEVER_ACCEPTS, "tcp_timeout", "connect"),
        (HostileKind.SILENT, "http_timeout", "processing"),
        (HostileKind.TLS_HANDSHAKE_RESET, "tls_reset", "tls"),
        (HostileKind.RESET_MID_RESPONSE, "http_reset", "transfer"),
        (HostileKind.EXPIRED_CERT, "tls_cert_invalid", "tls"),
        (HostileKind.WRONG_HOST_CERT, "tls_cert_invalid", "tls"),
        (HostileKind.UNKNOWN_CA_CERT, "tls_cert_invalid", "tls"),
        (HostileKind.REDIRECT_LOOP, "http_too_many_redirects", "processing"),
        (HostileKind.ENDLESS_BODY, "http_too_large", "transfer"),
        (HostileKind.TRICKLE, "http_timeout", "processing"),  # even the status line trickles
        (HostileKind.HUGE_HEADERS, "http_too_large", "processing"),
    ],
    indirect=["hostile"],
)
async def test_hostile_servers_end_in_one_failure_string(
    net: SmallInternet, hostile: HostileServer, failure: str, phase: str
) -> None:
    result = await net.probe(hostile_url(hostile), http="{max_body_bytes: 100000}")
    assert (result.failure, result.failed_phase) == (failure, phase), result.log


@pytest.mark.parametrize("hostile", [HostileKind.TLS_HANDSHAKE_RESET], indirect=True)
async def test_reset_during_tls_handshake_on_a_tls_only_target_is_tls_reset(
    net: SmallInternet, hostile: HostileServer
) -> None:
    result = await net.probe(f'tls_connect: "ok.{ZONE}:{hostile.port}"')
    assert result.failure == "tls_reset"


async def test_an_unexpected_status_is_http_status(net: SmallInternet) -> None:
    result = await net.probe(f'url: "http://ok.{ZONE}:{net.http_port}/500"')
    assert (result.failure, result.http_status) == ("http_status", 500)


async def test_a_body_that_does_not_match_is_http_body_mismatch(net: SmallInternet) -> None:
    result = await net.probe(f'url: "http://ok.{ZONE}:{net.http_port}/"', http='{body_regex: "Khabar"}')
    assert result.failure == "http_body_mismatch"


async def test_speaking_http_to_a_tls_port_is_a_tls_error(net: SmallInternet) -> None:
    result = await net.probe(f'url: "https://ok.{ZONE}:{net.http_port}/"')
    assert result.failure == "tls_error"


async def test_debug_log_tells_the_story_of_the_probe(net: SmallInternet) -> None:
    result = await net.probe(f'url: "https://ok.{ZONE}:{net.https_port}/"')
    story = "\n".join(result.log)
    for expected in (
        f"query ok.{ZONE}. A at {net.dns.address}",
        "connecting to 127.0.0.1",
        f"TLS handshake, SNI ok.{ZONE}",
        "200 OK",
        "succeeded",
    ):
        assert expected in story
