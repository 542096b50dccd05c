"""The monitor's targets.yaml for a simulated internet (schema of monitor/catalog/schema.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.lab.topology import HostKind, LabHost

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


def _entry(site: TargetSite, http_port: int, https_port: int, include_asn: bool | None) -> dict[str, Any]:
    host = site.host
    entry: dict[str, Any] = {"name": host.name}
    if host.kind is HostKind.HTTPS:
        entry["url"] = f"https://{site.fqdn}:{https_port}/"
    elif host.kind is HostKind.HTTP:
        entry["url"] = f"http://{site.fqdn}:{http_port}/"
    elif host.kind is HostKind.TCP:
        entry["tcp"] = f"{site.fqdn}:{http_port}"
    else:
        entry["dns"] = {"query": site.fqdn + ".", "type": "SOA"}
    entry["country"] = host.country
    entry["category"] = host.category
    wants_asn = host.declare_asn if include_asn is None else include_asn
    if wants_asn and host.kind is not HostKind.DNS:
        entry["asn"] = host.asn
    return entry


def targets_document(
    sites: Iterable[TargetSite],
    *,
    resolver: str,
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
    for site in sites:
        entry = _entry(site, http_port, https_port, include_asn)
        (controls if site.host.is_control else targets).append(entry)
    return {
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


def dump_targets_yaml(document: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
    path.write_text(
        "# Written by the shutdown-monitor lab (python -m monitor.lab).\n" + text, encoding="utf-8"
    )
    return path
