"""Origin ASN of an address through Team Cymru's DNS interface, with a TTL cache."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

import dns.rdatatype

from monitor.catalog.schema import ASNLookup, Resolver
from monitor.probing.dns import query
from monitor.probing.failures import ProbeFailure
from monitor.probing.result import ProbeTrace

__all__ = ["ASNResolver", "IPASNFile", "cymru_name", "parse_cymru_txt"]

log = logging.getLogger(__name__)

_FAILURE_TTL = 300.0
_LOOKUP_TIMEOUT = 5.0


def cymru_name(address: str, options: ASNLookup) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ".".join(reversed(address.split("."))) + f".{options.zone}."
    nibbles = ip.exploded.replace(":", "")
    return ".".join(reversed(nibbles)) + f".{options.zone6}."


def parse_cymru_txt(text: str) -> int | None:
    """`"9198 | 2.72.0.0/13 | KZ | ripencc | 2005-01-11"` → 9198 (the first of several origins)."""
    first_field = text.split("|", 1)[0].split()
    if first_field and first_field[0].isascii() and first_field[0].isdigit():
        return int(first_field[0])
    return None


class ASNResolver:
    def __init__(self, options: ASNLookup, resolvers: tuple[Resolver, ...]) -> None:
        self.options = options
        self.resolvers = resolvers
        self._cache: dict[str, tuple[int | None, float]] = {}
        self._pending: dict[str, asyncio.Task[int | None]] = {}

    def cached(self, address: str) -> int | None:
        entry = self._cache.get(address)
        return entry[0] if entry else None

    def needs_lookup(self, address: str) -> bool:
        entry = self._cache.get(address)
        return (
            self.options.enabled
            and address not in self._pending
            and (entry is None or entry[1] < time.monotonic())
        )

    async def lookup(self, address: str) -> int | None:
        """The ASN (None when unknown); concurrent lookups of one address share one query."""
        if not self.needs_lookup(address):
            pending = self._pending.get(address)
            return await pending if pending else self.cached(address)
        task = asyncio.ensure_future(self._query(address))
        self._pending[address] = task
        try:
            return await task
        finally:
            self._pending.pop(address, None)

    async def _query(self, address: str) -> int | None:
        trace = ProbeTrace("asn-lookup")
        asn: int | None = None
        try:
            response = await query(
                cymru_name(address, self.options),
                dns.rdatatype.TXT,
                self.resolvers,
                time.monotonic() + _LOOKUP_TIMEOUT,
                trace,
            )
            for rrset in response.answer:
                for rdata in rrset:
                    text = b"".join(rdata.strings).decode(errors="replace")
                    asn = asn or parse_cymru_txt(text)
        except (ProbeFailure, TimeoutError) as exc:
            log.debug("ASN lookup of %s failed: %s", address, exc)
        ttl = self.options.ttl if asn is not None else _FAILURE_TTL
        self._cache[address] = (asn, time.monotonic() + ttl)
        return asn


class IPASNFile:
    """Origin ASNs offline, from pyasn's IPASN file (lines of `prefix<TAB>asn`, longest match)."""

    def __init__(self, path: str) -> None:
        import pyasn  # optional: the `ipasn` extra; the catalog checks it is installed

        self.path = path
        self._db = pyasn.pyasn(path)

    def lookup(self, address: str) -> int | None:
        try:
            asn, _ = self._db.lookup(address)
        except ValueError:  # not an address pyasn takes
            return None
        return int(asn) if asn is not None else None
