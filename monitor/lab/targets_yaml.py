"""The monitor's targets.yaml for a simulated internet (schema of monitor/catalog/schema.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.lab.topology import REGION_NAMES, HostKind, LabHost, LabNetwork

__all__ = ["LAB_BOGON_NETWORKS", "TargetSite", "dump_targets_yaml", "targets_document"]

# The usual bogons minus 127.0.0.0/8 and ::1: every lab address is loopback and must pass.
LAB_BOGON_NETWORKS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fc00::/7",
    "fe80::/10",
)


@dataclass(frozen=True)
class TargetSite:
    host: LabHost
    fqdn: str


def _entry(
    site: TargetSite, http_port: int, https_port: int, include_asn: bool | None, resolvers: list[str]
) -> dict[str, Any]:
    host = site.host
    entry: dict[str, Any] = {"name": host.name}
    if host.kind is HostKind.HTTPS:
        entry["url"] = f"https://{site.fqdn}:{https_port}/"
    elif host.kind is HostKind.HTTP:
        entry["url"] = f"http://{site.fqdn}:{http_port}/"
    elif host.kind is HostKind.TCP:
        entry["tcp"] = f"{site.fqdn}:{http_port}"
    elif host.kind is HostKind.DNS_COMPARE:
        entry["dns"] = {"query": site.fqdn + ".", "type": "A", "compare_resolvers": True}
        entry["resolvers"] = resolvers
    else:
        entry["dns"] = {"query": site.fqdn + ".", "type": "SOA"}
    entry["country"] = host.country
    entry["category"] = host.category
    if host.region is not None:
        entry["region"] = host.region
    wants_asn = host.declare_asn if include_asn is None else include_asn
    if wants_asn and host.kind not in (HostKind.DNS, HostKind.DNS_COMPARE):
        entry["asn"] = host.asn
    return entry


def targets_document(
    sites: Iterable[TargetSite],
    networks: Iterable[LabNetwork] = (),
    *,
    resolver: str,
    national_resolver: str | None = None,
    ca_file: str | Path,
    http_port: int,
    https_port: int,
    interval: str = "30s",
    timeout: str = "5s",
    include_asn: bool | None = None,
) -> dict[str, Any]:
    """`include_asn` True/False forces `asn:` on/off for every target; None asks each host."""
    targets: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    regions: dict[str, dict[str, str]] = {}
    both = [resolver, *([national_resolver] if national_resolver else [])]
    for site in sites:
        entry = _entry(site, http_port, https_port, include_asn, both)
        (controls if site.host.is_control else targets).append(entry)
        if site.host.region is not None:
            name = REGION_NAMES.get(site.host.region, site.host.region)
            regions.setdefault(site.host.country, {})[site.host.region] = name
    document: dict[str, Any] = {
        "defaults": {
            "interval": interval,
            "timeout": timeout,
            "resolvers": [resolver],
            "bogon_networks": list(LAB_BOGON_NETWORKS),
            "tls": {"ca_file": str(ca_file)},
            "asn_lookup": {"zone": "origin.asn.cymru.com", "zone6": "origin6.asn.cymru.com"},
        },
        "targets": targets,
        "controls": controls,
    }
    kinds = {net.asn: {"name": net.name, "kind": net.kind} for net in networks if net.kind}
    if kinds:
        document["networks"] = kinds
    if regions:
        document["regions"] = {country: dict(sorted(names.items())) for country, names in regions.items()}
    return document


def dump_targets_yaml(document: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
    path.write_text(
        "# Written by the shutdown-monitor lab (python -m monitor.lab).\n" + text, encoding="utf-8"
    )
    return path
