"""Ready-made simulated countries: Kazakhstan in January 2022, and N synthetic hosts."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from monitor.lab.internet import SimulatedInternet
from monitor.lab.topology import CONTROL_CATEGORY, HostKind, LabHost, LabNetwork
from monitor.lab.web import Mode

__all__ = [
    "ALMATY",
    "ASTANA",
    "CONTROL_HOSTS",
    "CONTROL_NETWORKS",
    "KAZAKHSTAN_BLOCKS",
    "KAZAKHSTAN_HOSTS",
    "KAZAKHSTAN_NETWORKS",
    "KAZAKHSTAN_STAYS_UP",
    "KCELL",
    "KYRGYZSTAN_HOSTS",
    "KYRGYZSTAN_NETWORKS",
    "MOBILE_NETWORKS",
    "TELE2",
    "central_asia",
    "kazakhstan",
    "synthetic",
]

# The hosting network is the lab's own (a private-use ASN): the sites on it are hosted there.
KAZAKHTELECOM, KCELL, TELE2, BEELINE, TRANSTELECOM, HOSTING = (9198, 29355, 48503, 21299, 41798, 64500)
MOBILE_NETWORKS = (KCELL, TELE2, BEELINE)
ALMATY, ASTANA = "KZ-75", "KZ-71"

KAZAKHSTAN_NETWORKS = (
    LabNetwork(KAZAKHTELECOM, "KAZTELECOM-AS", "KZ", "fixed"),
    LabNetwork(KCELL, "KCELL-AS", "KZ", "mobile"),
    LabNetwork(TELE2, "TELE2-KZ-AS", "KZ", "mobile"),
    LabNetwork(BEELINE, "KARTEL-AS (Beeline)", "KZ", "mobile"),
    LabNetwork(TRANSTELECOM, "TRANSTELECOM-AS", "KZ", "transit"),
    LabNetwork(HOSTING, "LAB-KZ-HOSTING", "KZ", "hosting"),
)

CONTROL_NETWORKS = (
    LabNetwork(13335, "CLOUDFLARENET", "US"),
    LabNetwork(15169, "GOOGLE", "US"),
    LabNetwork(19281, "QUAD9-1", "CH"),
    LabNetwork(3333, "RIPE-NCC-AS", "NL"),
    LabNetwork(14907, "WIKIMEDIA", "US"),
)


def _kz(
    name: str,
    domain: str,
    category: str,
    asn: int,
    kind: HostKind = HostKind.HTTPS,
    region: str | None = ASTANA,
    **extra: Any,
) -> LabHost:
    return LabHost(name, "KZ", category, asn, kind, domain=domain, region=region, **extra)


def _almaty(
    name: str, domain: str, category: str, asn: int, kind: HostKind = HostKind.HTTPS, **extra: Any
) -> LabHost:
    return _kz(name, domain, category, asn, kind, ALMATY, **extra)


def _compare(name: str, domain: str) -> LabHost:
    """The A records of a site's domain, asked of the resolver abroad and the national one."""
    return _kz(name, domain, "dns_consistency", KAZAKHTELECOM, HostKind.DNS_COMPARE, region=None)


# Astana holds the state; Almaty, the largest city, the mobile operators' and banks' head
# offices (a lab's placement, not a survey of where each site is hosted).
KAZAKHSTAN_HOSTS = (
    _kz("kazinform", "inform.kz", "state_media", KAZAKHTELECOM),
    _kz("khabar", "khabar.kz", "state_media", KAZAKHTELECOM),
    _kz("kaztrk", "kaztrk.kz", "state_media", TRANSTELECOM),
    # Its certificate expires in 10 days: CertificateExpiringSoon and the certificate panels.
    _kz("egov", "egov.kz", "government", KAZAKHTELECOM, cert_days_left=10.0),
    _kz("gov", "gov.kz", "government", KAZAKHTELECOM),
    _kz("primeminister", "primeminister.kz", "government", KAZAKHTELECOM),
    # Geo-blocked: unreachable from abroad even on a normal day.
    _kz("akorda", "akorda.kz", "government", TRANSTELECOM, initial_mode=Mode.BLACKHOLE),
    _kz("parlam", "parlam.kz", "government", HOSTING, HostKind.HTTP),
    _kz("knb", "knb.kz", "police_security", KAZAKHTELECOM),
    _kz("police", "police.kz", "police_security", TRANSTELECOM),
    _almaty("alaport-tcp", "alaport.com", "airport", BEELINE, HostKind.TCP),
    _kz("astana-airport", "astanaairport.com", "airport", KAZAKHTELECOM),
    _kz("kazakhtelecom", "telecom.kz", "telecom", KAZAKHTELECOM),
    _almaty("kcell", "kcell.kz", "telecom", KCELL),
    _kz("tele2", "tele2.kz", "telecom", TELE2),
    _almaty("beeline", "beeline.kz", "telecom", BEELINE),
    _kz("transtelecom", "ttc.kz", "telecom", TRANSTELECOM, HostKind.HTTP),
    _almaty("nationalbank", "nationalbank.kz", "bank", KAZAKHTELECOM),
    _almaty("halykbank", "halykbank.kz", "bank", HOSTING),
    _almaty("kaspi", "kaspi.kz", "bank", HOSTING, declare_asn=False),
    _almaty("tengrinews", "tengrinews.kz", "media", HOSTING, declare_asn=False),
    _kz("nur", "nur.kz", "media", TELE2, declare_asn=False),
    _almaty("zakon", "zakon.kz", "media", KCELL),
    _almaty("vlast", "vlast.kz", "media", BEELINE, HostKind.HTTP, declare_asn=False),
    _kz("kz-registry-dns", "kz", "cctld_dns", KAZAKHTELECOM, HostKind.DNS, region=None),
    _compare("dns-kaspi", "kaspi.kz"),
    _compare("dns-tengrinews", "tengrinews.kz"),
    _compare("dns-vlast", "vlast.kz"),
)

CONTROL_HOSTS = (
    LabHost("control-cloudflare", "US", CONTROL_CATEGORY, 13335, domain="one.one.one.one"),
    LabHost("control-google", "US", CONTROL_CATEGORY, 15169, domain="www.google.com"),
    LabHost("control-quad9", "CH", CONTROL_CATEGORY, 19281, domain="www.quad9.net"),
    LabHost("control-ripe", "NL", CONTROL_CATEGORY, 3333, domain="www.ripe.net"),
    LabHost("control-wikipedia", "US", CONTROL_CATEGORY, 14907, domain="www.wikipedia.org"),
)

# Sites that stayed reachable through the January 2022 shutdown.
KAZAKHSTAN_STAYS_UP = ("nationalbank", "primeminister")


# End-user /24s (monitor.lab.eyeballs) of the fixed and mobile networks, by region: where people
# are, whatever happens to the sites. The mobile networks hold fewer than half of them.
KAZAKHSTAN_BLOCKS = {
    KAZAKHTELECOM: (ALMATY, ASTANA, ASTANA, ALMATY),
    KCELL: (ALMATY, ASTANA),
    TELE2: (ALMATY, ASTANA),
    BEELINE: (ALMATY,),
}


def kazakhstan(*, with_blocks: bool = False, **options: Any) -> SimulatedInternet:
    """Kazakhstan, January 2022: 25 targets over six national networks, five controls abroad;
    `with_blocks`, also the end-user blocks of its fixed and mobile networks, which go dark with
    their network, their region or the whole country.

    A shutdown: `await net.set_country("KZ", Mode.BLACKHOLE, except_hosts=KAZAKHSTAN_STAYS_UP)`.
    `options` go to SimulatedInternet (ports, workdir, ...).
    """
    options.setdefault("national_resolver_asn", KAZAKHTELECOM)
    networks: tuple[LabNetwork, ...] = KAZAKHSTAN_NETWORKS
    if with_blocks:
        networks = tuple(
            replace(network, blocks=KAZAKHSTAN_BLOCKS.get(network.asn, ())) for network in networks
        )
    return SimulatedInternet((*KAZAKHSTAN_HOSTS, *CONTROL_HOSTS), (*networks, *CONTROL_NETWORKS), **options)


# A neighbour for scenarios with two countries. The ASNs are from the private-use range: this
# country's networks are the lab's own, not a record of real ones.
KYRGYZSTAN_NETWORKS = (
    LabNetwork(64601, "LAB-KG-FIXED", "KG", "fixed"),
    LabNetwork(64602, "LAB-KG-MOBILE", "KG", "mobile"),
    LabNetwork(64603, "LAB-KG-HOSTING", "KG", "hosting"),
)
KYRGYZSTAN_HOSTS = tuple(
    LabHost(f"kg-{category}-{asn % 10}", "KG", category, asn, domain=f"{category}{asn % 10}.kg")
    for asn in (64601, 64602, 64603)
    for category in ("government", "media", "bank")
)


def central_asia(**options: Any) -> SimulatedInternet:
    """Kazakhstan as above and a neighbour, Kyrgyzstan (nine sites on three lab networks), with
    the same five controls: for scenarios where one country goes dark and the other does not."""
    options.setdefault("national_resolver_asn", KAZAKHTELECOM)
    return SimulatedInternet(
        (*KAZAKHSTAN_HOSTS, *KYRGYZSTAN_HOSTS, *CONTROL_HOSTS),
        (*KAZAKHSTAN_NETWORKS, *KYRGYZSTAN_NETWORKS, *CONTROL_NETWORKS),
        **options,
    )


_SYNTHETIC_CATEGORIES = (
    "state_media",
    "government",
    "police_security",
    "airport",
    "telecom",
    "bank",
    "media",
)
_SYNTHETIC_KINDS = (HostKind.HTTPS, HostKind.HTTPS, HostKind.HTTPS, HostKind.HTTP, HostKind.TCP)


def synthetic(n_hosts: int, **options: Any) -> SimulatedInternet:
    """`n_hosts` generated targets spread over the Kazakh networks, plus the five controls.

    Sites share one server per network (server_per_host=False) so thousands stay cheap.
    """
    if n_hosts < 1:
        raise ValueError("need at least one host")
    asns = itertools.cycle(network.asn for network in KAZAKHSTAN_NETWORKS)
    categories = itertools.cycle(_SYNTHETIC_CATEGORIES)
    kinds = itertools.cycle(_SYNTHETIC_KINDS)
    hosts = [
        _kz(
            f"site{i:05d}",
            f"site{i:05d}.kz",
            next(categories),
            next(asns),
            next(kinds),
            declare_asn=i % 4 != 0,
        )
        for i in range(n_hosts)
    ]
    options.setdefault("server_per_host", False)
    return SimulatedInternet((*hosts, *CONTROL_HOSTS), (*KAZAKHSTAN_NETWORKS, *CONTROL_NETWORKS), **options)
