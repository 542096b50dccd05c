"""`blocks:` for the catalog from data the user downloaded: never fetched at run time.

Two sources, as IODA combines them: the RIR's delegated-extended file says which IPv4 space is
registered to a country (`registry|cc|ipv4|start|count|date|status[|opaque-id]`, RIPE NCC's
https://ftp.ripe.net/pub/stats/ripencc/delegated-ripencc-extended-latest), and pyasn's IPASN text
file (`prefix<TAB>origin-asn`, from a BGP RIB with `pyasn_util_convert.py`) says which network
announces it. Each /24 goes to the origin of its longest matching announcement; a /24 nobody
announces is not reachable from anywhere and is left out. Consecutive /24s of one network are
written back as the fewest prefixes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from monitor.catalog.schema import BLOCK_PREFIXLEN

__all__ = ["BlockImport", "SourceFormatError", "read_delegated", "read_ipasn"]


class SourceFormatError(ValueError):
    """A line of a source file that is not what its format says, with the file and line."""


def read_delegated(lines: Iterable[str], country: str, source: str) -> list[IPv4Network]:
    """The IPv4 prefixes the delegated(-extended) file registers to `country`."""
    prefixes: list[IPv4Network] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) < 7 or fields[2] != "ipv4" or fields[1] == "*" or fields[0].isdigit():
            continue  # the version line, summaries, asn and ipv6 records
        if fields[1].upper() != country or fields[6] not in ("allocated", "assigned"):
            continue
        try:
            start, count = IPv4Address(fields[3]), int(fields[4])
            if count < 1:
                raise ValueError(f"count {count}")
            end = IPv4Address(int(start) + count - 1)
        except ValueError as exc:
            raise SourceFormatError(f"{source}:{number}: not an ipv4 record ({exc}): {line[:120]}") from None
        prefixes += ipaddress.summarize_address_range(start, end)
    return prefixes


def read_ipasn(lines: Iterable[str], source: str) -> dict[IPv4Network, int]:
    """Announced IPv4 prefixes and their origin ASN (IPv6 lines are skipped)."""
    origins: dict[IPv4Network, int] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(";") or line.startswith("#"):
            continue
        try:
            prefix, asn = line.split()
            network = ipaddress.ip_network(prefix, strict=False)
            origin = int(asn)
        except ValueError:
            raise SourceFormatError(f"{source}:{number}: not 'prefix<TAB>asn': {line[:120]}") from None
        if isinstance(network, IPv4Network):
            origins[network] = origin
    return origins


@dataclass
class BlockImport:
    """The /24s of a country (from the delegated file, else from the announcements) and their
    networks (from the announcements), kept to the ASNs asked for."""

    country: str
    registered: list[IPv4Network] | None = None
    announced: dict[IPv4Network, int] = field(default_factory=dict)
    asns: frozenset[int] = frozenset()
    unannounced: int = 0  # /24s registered to the country that nobody announces

    def blocks(self, source: str) -> list[dict[str, object]]:
        by_asn: dict[int, list[IPv4Network]] = {}
        for slash24, asn in self._slash24s():
            if not self.asns or asn in self.asns:
                by_asn.setdefault(asn, []).append(slash24)
        entries = [
            {"prefix": str(prefix), "asn": asn, "country": self.country, "source": source}
            for asn, nets in by_asn.items()
            for prefix in ipaddress.collapse_addresses(nets)
        ]
        return sorted(entries, key=lambda entry: IPv4Network(str(entry["prefix"])))

    def _slash24s(self) -> Iterator[tuple[IPv4Network, int]]:
        if self.registered is None:  # the country's space is what the asked networks announce
            if not self.asns:
                raise ValueError("without the delegated file, name the networks (ASNs) to take")
            candidates = _covered(network for network, asn in self.announced.items() if asn in self.asns)
        else:
            candidates = _covered(self.registered)
        by_length: dict[int, dict[IPv4Network, int]] = {}
        for network, asn in self.announced.items():
            by_length.setdefault(min(network.prefixlen, BLOCK_PREFIXLEN), {})[_at_most_24(network)] = asn
        lengths = sorted(by_length, reverse=True)
        for slash24 in candidates:
            matches = (by_length[n].get(slash24.supernet(new_prefix=n)) for n in lengths)
            origin = next((found for found in matches if found is not None), None)
            if origin is None:
                self.unannounced += 1
            else:
                yield slash24, origin


def _at_most_24(network: IPv4Network) -> IPv4Network:
    return network if network.prefixlen <= BLOCK_PREFIXLEN else network.supernet(new_prefix=BLOCK_PREFIXLEN)


def _covered(networks: Iterable[IPv4Network]) -> Iterator[IPv4Network]:
    """Every /24 of these networks, once, in address order."""
    for network in ipaddress.collapse_addresses(_at_most_24(network) for network in networks):
        yield from network.subnets(new_prefix=BLOCK_PREFIXLEN)
