"""The declarative description of a simulated internet: hosts, networks and their addresses."""

from __future__ import annotations

import enum
import ipaddress
import zlib
from dataclasses import dataclass

from monitor.lab.certs import DAYS_LEFT
from monitor.lab.web import Mode

__all__ = [
    "CONTROL_CATEGORY",
    "REGION_NAMES",
    "HostKind",
    "LabHost",
    "LabNetwork",
    "cymru_origin_name",
    "network_prefix",
]

CONTROL_CATEGORY = "control"
# ISO 3166-2 names of the regions the lab's hosts are placed in
REGION_NAMES = {"KZ-75": "Almaty", "KZ-71": "Astana", "KZ-79": "Shymkent", "KG-GB": "Bishkek"}


class HostKind(enum.Enum):
    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"  # a TCP connect target on the network's plain HTTP port
    DNS = "dns"  # an SOA query for the host's domain, served as its own zone
    DNS_COMPARE = "dns_compare"  # the A records of another host's domain, asked of both resolvers


@dataclass(frozen=True)
class LabHost:
    """One site. `name` is the target name in targets.yaml; `domain` the site's real-looking
    domain (`inform.kz`), which lives in the lab zone as `inform.kz.lab.test`; it defaults to
    `name`. `initial_mode` is the baseline, e.g. BLACKHOLE for a site geo-blocked from abroad.
    `declare_asn` writes `asn:` for the target; without it the monitor must look the ASN up.
    A `category` of "control" puts the host in the `controls:` section."""

    name: str
    country: str
    category: str
    asn: int
    kind: HostKind = HostKind.HTTPS
    domain: str | None = None
    initial_mode: Mode = Mode.UP
    declare_asn: bool = True
    region: str | None = None  # ISO 3166-2, e.g. KZ-75
    cert_days_left: float = DAYS_LEFT  # when its certificate expires (HTTPS)

    @property
    def is_control(self) -> bool:
        return self.category == CONTROL_CATEGORY

    def fqdn(self, zone: str) -> str:
        return f"{(self.domain or self.name).rstrip('.')}.{zone.strip('.')}".lower()


@dataclass(frozen=True)
class LabNetwork:
    asn: int
    name: str
    country: str
    kind: str | None = None  # mobile, fixed, hosting, transit: written to the catalog's networks:
    blocks: tuple[str | None, ...] = ()  # its end-user /24s (monitor.lab.eyeballs): each one's region


def network_prefix(asn: int) -> ipaddress.IPv4Network:
    """The /24 inside 127.0.0.0/8 that stands for `asn`'s address space.

    16-bit ASNs map to 127.<asn // 256>.<asn % 256>.0/24 (AS9198 -> 127.35.238.0/24), so the
    mapping is stable and collision-free; 127.0.x.0/24 (ASN < 256) stays clear of 127.0.0.1
    where the lab's DNS server lives. Other ASNs get a hashed /24 in 127.240-254.x.0.
    """
    if 256 <= asn < 65536:
        second, third = asn >> 8, asn & 0xFF
    else:
        digest = zlib.crc32(str(asn).encode())
        second, third = 240 + digest % 15, (digest >> 8) & 0xFF
    return ipaddress.IPv4Network(f"127.{second}.{third}.0/24")


def cymru_origin_name(ip: str, zone: str = "origin.asn.cymru.com") -> str:
    """Team Cymru's IP-to-ASN query name: d.c.b.a.origin.asn.cymru.com for a.b.c.d."""
    return ".".join(reversed(ip.split("."))) + "." + zone
