"""A small simulated internet on loopback: web servers per network, one DNS server, controls
abroad, and run-time switches for outages, shutdowns and our own uplink dying.

Each host (site) lives on an IP inside its network's /24 (see `network_prefix`). With
`server_per_host=True` (the default) every site gets its own LabWebServer, so any single site
can be refused or blackholed while its neighbours stay up. With `server_per_host=False` (for
thousands of synthetic hosts) a network's sites share one server on <prefix>.1: network- and
country-wide modes work the same, but one shared site can only be switched to HTTP_ERROR alone;
asking for REFUSE/BLACKHOLE on it alone raises ValueError.

Precedence for a site's mode: vantage offline (everything BLACKHOLE) > a per-host setting
(`set_host`, or a host kept up by `set_country(..., except_hosts=...)`) > a network fault
(`set_network`/`set_country` with a mode other than UP) > the host's `initial_mode` (e.g. a
site geo-blocked from abroad). `set_network` and `set_country` sweep: they clear the per-host
settings of the sites they cover (except the `except_hosts`), so the latest broad command wins.

DNS targets in a network that is refused or blackholed answer SERVFAIL, as a resolver abroad
does when it cannot reach a zone's servers; the DNS server itself keeps answering through any
country shutdown and goes silent only when the vantage is offline.

A second resolver, `national_dns`, stands for an open resolver inside the country: it serves the
same records until told to lie (`set_dns_tampering`), and goes silent with its network
(`national_resolver_asn`); `dns_compare` hosts ask both resolvers and compare.
Sites can be made slow (`set_slow`: a delayed first byte and a trickled body) and a region dark
(`set_region`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from monitor.lab.certs import LabPKI
from monitor.lab.dns_server import Behavior, LabDNSServer
from monitor.lab.eyeballs import LabBlock, LabBlocks, block_prefix
from monitor.lab.loopback import free_port_pair, require_loopback
from monitor.lab.targets_yaml import TargetSite, dump_targets_yaml, targets_document
from monitor.lab.topology import HostKind, LabHost, LabNetwork, cymru_origin_name, network_prefix
from monitor.lab.web import LabWebServer, Mode

__all__ = ["LabSite", "SimulatedInternet"]

_DOWN = (Mode.REFUSE, Mode.BLACKHOLE)
_PORT_ATTEMPTS = 5
_ASN_ZONE = "asn.cymru.com"
_ORIGIN_ZONE = "origin.asn.cymru.com"
_ORIGIN6_ZONE = "origin6.asn.cymru.com"
_CYMRU_REGISTRY, _CYMRU_DATE = "lab", "2022-01-01"


@dataclass
class LabSite:
    """A host as placed in the running lab."""

    host: LabHost
    fqdn: str
    ip: str | None  # None for DNS targets: they are zones, not machines
    server: LabWebServer | None


@dataclass
class _State:
    network_modes: dict[int, Mode] = field(default_factory=dict)
    host_modes: dict[str, Mode] = field(default_factory=dict)
    vantage_offline: bool = False
    slow: dict[str, float] = field(default_factory=dict)  # host -> seconds added to each answer
    spoofed: dict[str, str] = field(default_factory=dict)  # fqdn -> the national resolver's lie
    region_modes: dict[str, Mode] = field(default_factory=dict)  # for the end-user blocks

    def copy(self) -> _State:
        return _State(
            dict(self.network_modes),
            dict(self.host_modes),
            self.vantage_offline,
            dict(self.slow),
            dict(self.spoofed),
            dict(self.region_modes),
        )


class SimulatedInternet:
    """Start with `async with SimulatedInternet(hosts) as net:`; everything is torn down on exit.

    `networks` names ASNs and places them in a country; an ASN used by a host but not listed
    becomes a network named "AS<n>" in that host's country. `http_port`/`https_port` are shared
    by every server (0 picks a pair free on all the lab's IPs). The lab CA is written to
    `<workdir>/lab-ca.pem` (a temporary directory unless `workdir` is given).
    """

    def __init__(
        self,
        hosts: Sequence[LabHost],
        networks: Sequence[LabNetwork] = (),
        *,
        zone: str = "lab.test",
        server_per_host: bool = True,
        http_port: int = 0,
        https_port: int = 0,
        dns_ip: str = "127.0.0.1",
        dns_port: int = 0,
        workdir: str | Path | None = None,
        national_resolver_asn: int | None = None,
    ) -> None:
        self.zone = zone.strip(".").lower()
        self.server_per_host = server_per_host
        self.http_port, self.https_port = http_port, https_port
        self._dns_ip, self._dns_port = require_loopback(dns_ip), dns_port
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.networks = self._complete_networks(hosts, networks)
        self.pki = LabPKI()
        self.dns = LabDNSServer()
        self.national_dns = LabDNSServer()
        self.national_resolver_asn = national_resolver_asn  # it goes dark with this network
        self.sites: dict[str, LabSite] = {}
        self._servers: dict[str, LabWebServer] = {}
        self._place(hosts)
        self.blocks = LabBlocks(
            LabBlock(str(block_prefix(network.asn, index)), network.asn, network.country, region)
            for network in self.networks.values()
            for index, region in enumerate(network.blocks)
        )
        self._state = _State()
        self._started = False
        self.ca_file = Path()

    # --- layout --------------------------------------------------------------------------

    @staticmethod
    def _complete_networks(hosts: Sequence[LabHost], networks: Sequence[LabNetwork]) -> dict[int, LabNetwork]:
        complete = {network.asn: network for network in networks}
        for host in hosts:
            complete.setdefault(host.asn, LabNetwork(host.asn, f"AS{host.asn}", host.country))
        prefixes: dict[str, int] = {}
        for asn in complete:
            prefix = str(network_prefix(asn))
            if prefix in prefixes:
                raise ValueError(f"AS{asn} and AS{prefixes[prefix]} map to the same {prefix}")
            prefixes[prefix] = asn
        return complete

    def _place(self, hosts: Sequence[LabHost]) -> None:
        next_index: dict[int, int] = {}
        for host in hosts:
            if host.name in self.sites:
                raise ValueError(f"two hosts are named {host.name!r}")
            fqdn = host.fqdn(self.zone)
            if host.kind in (HostKind.DNS, HostKind.DNS_COMPARE):
                self.sites[host.name] = LabSite(host, fqdn, None, None)
                continue
            index = next_index.get(host.asn, 1) if self.server_per_host else 1
            if index > 254:
                raise ValueError(f"AS{host.asn} has more than 254 hosts; use server_per_host=False")
            next_index[host.asn] = index + 1
            ip = str(network_prefix(host.asn).network_address + index)
            server = self._servers.get(ip)
            if server is None:
                server = LabWebServer(ip, self.pki)
                self._servers[ip] = server
            server.add_host(fqdn, cert_days_left=host.cert_days_left)
            self.sites[host.name] = LabSite(host, fqdn, ip, server)

    def _populate_dns(self, server: LabDNSServer) -> None:
        server.add_soa(self.zone)
        for zone in (_ASN_ZONE, _ORIGIN_ZONE, _ORIGIN6_ZONE):
            server.add_soa(zone)
        for network in self.networks.values():
            server.add_txt(
                f"AS{network.asn}.{_ASN_ZONE}",
                [
                    f"{network.asn} | {network.country} | {_CYMRU_REGISTRY} | {_CYMRU_DATE} | "
                    f"{network.name}, {network.country}"
                ],
            )
        for site in self.sites.values():
            if site.host.kind is HostKind.DNS:
                server.add_soa(site.fqdn)
            if site.ip is None:
                continue
            server.add_a(site.fqdn, [site.ip])
            network = self.networks[site.host.asn]
            server.add_txt(
                cymru_origin_name(site.ip, _ORIGIN_ZONE),
                [
                    f"{network.asn} | {network_prefix(network.asn)} | {network.country} | "
                    f"{_CYMRU_REGISTRY} | {_CYMRU_DATE}"
                ],
            )

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        try:
            self._prepare_workdir()
            for server in (self.dns, self.national_dns):
                self._populate_dns(server)
            await self.dns.start(self._dns_ip, self._dns_port)
            await self.national_dns.start(self._dns_ip, 0)
            await self._start_servers()
            self.blocks.start()
            self._started = True
            await self._apply(self._state)
        except BaseException:
            await self._teardown()
            raise

    async def close(self) -> None:
        await self._teardown()
        self._started = False

    async def __aenter__(self) -> SimulatedInternet:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _prepare_workdir(self) -> None:
        if self._workdir_arg is not None:
            workdir = self._workdir_arg
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            self._tempdir = tempfile.TemporaryDirectory(prefix="monitor-lab-")
            workdir = Path(self._tempdir.name)
        self.ca_file = self.pki.write_ca_pem(workdir / "lab-ca.pem")

    async def _start_servers(self) -> None:
        servers = list(self._servers.values())
        ips = [server.ip for server in servers]
        chosen = self.http_port != 0 and self.https_port != 0
        for attempt in range(_PORT_ATTEMPTS):
            if not chosen and ips:
                self.http_port, self.https_port = free_port_pair(ips)
            for server in servers:
                server.http_port, server.https_port = self.http_port, self.https_port
            results = await asyncio.gather(*(server.start() for server in servers), return_exceptions=True)
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is None:
                return
            await asyncio.gather(*(server.close() for server in servers))
            # Someone took a picked port between the check and the bind: pick again.
            if chosen or not isinstance(failure, OSError) or attempt == _PORT_ATTEMPTS - 1:
                raise failure

    async def _teardown(self) -> None:
        self.blocks.close()
        await asyncio.gather(*(server.close() for server in self._servers.values()))
        await self.dns.close()
        await self.national_dns.close()
        if self._tempdir is not None:
            with contextlib.suppress(OSError):
                self._tempdir.cleanup()
            self._tempdir = None

    # --- addresses -----------------------------------------------------------------------

    @property
    def dns_address(self) -> str:
        return self.dns.address

    @property
    def web_servers(self) -> list[LabWebServer]:
        return list(self._servers.values())

    def site(self, name: str) -> LabSite:
        """A site by target name or by its fully qualified name in the lab zone."""
        site = self.sites.get(name)
        if site is not None:
            return site
        wanted = name.lower().rstrip(".")
        for candidate in self.sites.values():
            if candidate.fqdn == wanted:
                return candidate
        raise KeyError(f"no lab host {name!r}")

    def addresses(self) -> dict[str, str]:
        """fqdn -> IP for every web host: a static resolver for clients in tests."""
        return {site.fqdn: site.ip for site in self.sites.values() if site.ip is not None}

    def url(self, name: str, path: str = "/") -> str:
        site = self.site(name)
        if site.host.kind is HostKind.HTTPS:
            return f"https://{site.fqdn}:{self.https_port}{path}"
        return f"http://{site.fqdn}:{self.http_port}{path}"

    # --- targets.yaml --------------------------------------------------------------------

    @property
    def national_dns_address(self) -> str:
        return self.national_dns.address

    def targets_config(
        self,
        *,
        interval: str = "30s",
        timeout: str = "5s",
        include_asn: bool | None = None,
        defaults: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
        liveness: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The monitor's config; `defaults`, `analysis` and `liveness` add to those sections.
        With end-user blocks, they are asked by TCP on the lab's block port, a round every
        `interval`."""
        document = targets_document(
            (TargetSite(site.host, site.fqdn) for site in self.sites.values()),
            self.networks.values(),
            resolver=self.dns_address,
            national_resolver=self.national_dns_address,
            ca_file=self.ca_file,
            http_port=self.http_port,
            https_port=self.https_port,
            interval=interval,
            timeout=timeout,
            include_asn=include_asn,
        )
        document["defaults"].update(defaults or {})
        if analysis:
            document["analysis"] = dict(analysis)
        if self.blocks.blocks:
            document["blocks"] = [
                {"prefix": block.prefix, "asn": block.asn, "country": block.country}
                | ({"region": block.region} if block.region else {})
                for block in self.blocks.blocks.values()
            ]
            document["liveness"] = {
                "round": interval,
                "timeout": timeout,
                "method": "tcp",
                "tcp_ports": [self.blocks.port],
                "packets_per_second": 100,
                "discovery": "0 0 1 1 *",  # the hitlists are handed over (LabBlocks.hitlists)
                "baseline_rounds": 3,
                **(liveness or {}),
            }
        return document

    def write_targets_yaml(
        self,
        path: str | Path,
        *,
        interval: str = "30s",
        timeout: str = "5s",
        include_asn: bool | None = None,
        defaults: dict[str, Any] | None = None,
        analysis: dict[str, Any] | None = None,
        liveness: dict[str, Any] | None = None,
    ) -> Path:
        """Write the monitor's config. `include_asn` None follows each host's `declare_asn`."""
        if not self._started:
            raise RuntimeError("start the lab first: the config names its ports")
        return dump_targets_yaml(
            self.targets_config(
                interval=interval,
                timeout=timeout,
                include_asn=include_asn,
                defaults=defaults,
                analysis=analysis,
                liveness=liveness,
            ),
            path,
        )

    # --- controls ------------------------------------------------------------------------

    def host_mode(self, name: str) -> Mode:
        return self._effective(self.site(name).host, self._state)

    async def set_network(self, asn: int, mode: Mode) -> None:
        """Every site of network `asn` to `mode`; their per-host settings are cleared."""
        if asn not in self.networks:
            raise KeyError(f"no lab network AS{asn}")
        state = self._state.copy()
        state.network_modes[asn] = mode
        for site in self.sites.values():
            if site.host.asn == asn:
                state.host_modes.pop(site.host.name, None)
        await self._apply(state)

    async def set_country(self, country: str, mode: Mode, except_hosts: Iterable[str] = ()) -> None:
        """Every network located in `country` to `mode`; hosts in `except_hosts` (names or
        fqdns) keep the mode they have now, e.g. official sites that stay up in a shutdown.
        Per-host settings of the country's other hosts are cleared."""
        country = country.upper()
        asns = {asn for asn, network in self.networks.items() if network.country == country}
        if not asns:
            raise KeyError(f"no lab network in {country}")
        kept = {self.site(name).host.name for name in except_hosts}
        state = self._state.copy()
        for site in self.sites.values():
            if site.host.asn in asns:
                if site.host.name in kept:
                    state.host_modes[site.host.name] = self._effective(site.host, self._state)
                else:
                    state.host_modes.pop(site.host.name, None)
        for asn in asns:
            state.network_modes[asn] = mode
        await self._apply(state)

    async def set_region(self, region: str, mode: Mode) -> None:
        """Every site in ISO 3166-2 `region` (their `region`) to `mode`, as per-host settings."""
        names = [site.host.name for site in self.sites.values() if site.host.region == region]
        if not names:
            raise KeyError(f"no lab host in region {region}")
        state = self._state.copy()
        state.host_modes.update(dict.fromkeys(names, mode))
        state.region_modes[region] = mode
        await self._apply(state)

    async def set_slow(self, asns: Iterable[int], seconds: float) -> None:
        """The web sites of these networks answer `seconds` late: half before the first byte,
        half trickling the body (0 makes them fast again)."""
        wanted = set(asns)
        state = self._state.copy()
        for site in self.sites.values():
            if site.host.asn in wanted and site.server is not None:
                if seconds > 0:
                    state.slow[site.host.name] = seconds
                else:
                    state.slow.pop(site.host.name, None)
        await self._apply(state)

    async def set_dns_tampering(self, names: Iterable[str], answer: str | None) -> None:
        """The national resolver answers `answer` (an IP: a bogon, a block page) for these hosts'
        names; None makes it tell the truth again."""
        if answer is not None:
            ipaddress.IPv4Address(answer)  # raises ValueError: an A record needs an IPv4 address
        state = self._state.copy()
        for name in names:
            fqdn = self.site(name).fqdn
            if answer is None:
                state.spoofed.pop(fqdn, None)
            else:
                state.spoofed[fqdn] = answer
        await self._apply(state)

    async def set_host(self, name: str, mode: Mode) -> None:
        state = self._state.copy()
        state.host_modes[self.site(name).host.name] = mode
        await self._apply(state)

    async def set_vantage_offline(self, offline: bool) -> None:
        """Our own uplink: offline makes everything, controls and DNS included, time out."""
        state = self._state.copy()
        state.vantage_offline = offline
        await self._apply(state)

    async def restore_all(self) -> None:
        """Back to the baseline: every host at its `initial_mode`, the vantage online."""
        await self._apply(_State())

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot for the control API and for humans."""
        return {
            "vantage_offline": self._state.vantage_offline,
            "dns": self.dns_address,
            "national_dns": self.national_dns_address,
            "national_dns_lies": dict(self._state.spoofed),
            "http_port": self.http_port,
            "https_port": self.https_port,
            "networks": {
                str(asn): {
                    "name": network.name,
                    "country": network.country,
                    "prefix": str(network_prefix(asn)),
                    "mode": self._state.network_modes.get(asn, Mode.UP).value,
                }
                for asn, network in self.networks.items()
            },
            "blocks": {
                prefix: {
                    "asn": block.asn,
                    "region": block.region,
                    "port": self.blocks.port,
                    "dark": prefix in self.blocks.dark,
                }
                for prefix, block in self.blocks.blocks.items()
            },
            "hosts": {
                site.host.name: {
                    "fqdn": site.fqdn,
                    "ip": site.ip,
                    "asn": site.host.asn,
                    "country": site.host.country,
                    "category": site.host.category,
                    "region": site.host.region,
                    "kind": site.host.kind.value,
                    "slow_seconds": self._state.slow.get(site.host.name, 0.0),
                    "mode": self._effective(site.host, self._state).value,
                }
                for site in self.sites.values()
            },
        }

    # --- applying a state ----------------------------------------------------------------

    @staticmethod
    def _effective(host: LabHost, state: _State) -> Mode:
        if state.vantage_offline:
            return Mode.BLACKHOLE
        if host.name in state.host_modes:
            return state.host_modes[host.name]
        network_mode = state.network_modes.get(host.asn, Mode.UP)
        return network_mode if network_mode is not Mode.UP else host.initial_mode

    def _plan(self, state: _State) -> dict[LabWebServer, tuple[Mode, set[str]]]:
        """Each server's mode and the virtual hosts that answer 503 on their own."""
        wanted: dict[LabWebServer, dict[str, Mode]] = {}
        for site in self.sites.values():
            if site.server is not None:
                wanted.setdefault(site.server, {})[site.host.name] = self._effective(site.host, state)
        plan: dict[LabWebServer, tuple[Mode, set[str]]] = {}
        for server, modes in wanted.items():
            distinct = set(modes.values())
            if len(distinct) == 1:
                plan[server] = (distinct.pop(), set())
            elif distinct & set(_DOWN):
                raise ValueError(
                    f"hosts {', '.join(sorted(modes))} share the server on {server.ip} and "
                    "cannot be refused or blackholed separately (use server_per_host=True)"
                )
            else:
                failing = {self.sites[name].fqdn for name, mode in modes.items() if mode is Mode.HTTP_ERROR}
                plan[server] = (Mode.UP, failing)
        return plan

    async def _apply(self, state: _State) -> None:
        plan = self._plan(state)  # raises before anything changes
        self._state = state
        if not self._started:
            return
        for server, (_, failing) in plan.items():
            for vhost in server.hosts:
                server.host(vhost).failing = vhost in failing
        await asyncio.gather(*(server.set_mode(mode) for server, (mode, _) in plan.items()))
        delays: dict[LabWebServer, float] = {}
        for site in self.sites.values():
            if site.server is not None:  # a shared server is as slow as its slowest site
                delays[site.server] = max(delays.get(site.server, 0.0), state.slow.get(site.host.name, 0.0))
            if site.host.kind is HostKind.DNS:
                down = self._effective(site.host, state) in _DOWN
                self.dns.set_behavior(site.fqdn, Behavior.SERVFAIL if down else Behavior.NORMAL)
        for server, delay in delays.items():
            server.first_byte_delay = server.trickle_seconds = delay / 2
        for fqdn in self.addresses():
            self.national_dns.set_spoof(fqdn, [state.spoofed[fqdn]] if fqdn in state.spoofed else None)
        national_mode = state.network_modes.get(self.national_resolver_asn or 0, Mode.UP)
        self.dns.set_override(Behavior.DROP if state.vantage_offline else None)
        national_dark = state.vantage_offline or national_mode in _DOWN
        self.national_dns.set_override(Behavior.DROP if national_dark else None)
        self.blocks.set_dark(
            block.prefix
            for block in self.blocks.blocks.values()
            if state.vantage_offline
            or state.network_modes.get(block.asn, Mode.UP) in _DOWN
            or (block.region is not None and state.region_modes.get(block.region, Mode.UP) in _DOWN)
        )
