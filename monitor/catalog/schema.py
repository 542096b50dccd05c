"""The schema of targets.yaml as pydantic models, defaults and validation beside each type, and
the frozen spec each kind of entry turns into.

A target entry is one of four kinds, told apart by which of `url`, `dns`, `tcp` or `tls_connect`
it has; options that do not apply to its kind are errors, not silently ignored.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args
from urllib.parse import parse_qsl, urlsplit

import dns.rcode
import dns.rdatatype
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from monitor.catalog.durations import parse_duration

__all__ = [
    "BLOCK_PREFIXLEN",
    "DEFAULT_BOGON_NETWORKS",
    "KIND_KEYS",
    "MAX_BLOCKS",
    "NETWORK_KINDS",
    "SYSTEM",
    "VANTAGE_NAME",
    "ASNLookup",
    "AnalysisOptions",
    "BlockEntry",
    "ConnectEntry",
    "ConnectSpec",
    "DNSEntry",
    "DNSQuery",
    "DNSSpec",
    "Defaults",
    "Document",
    "HTTPEntry",
    "HTTPOptions",
    "HTTPSpec",
    "Kind",
    "LivenessOptions",
    "Nameserver",
    "NetworkEntry",
    "Resolver",
    "Spec",
    "TLSConnectEntry",
    "TLSConnectSpec",
    "TLSOptions",
    "TargetEntry",
    "parse_host_port",
]

DEFAULT_BOGON_NETWORKS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "2001:db8::/32",
)


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


Resolver = Nameserver | Literal["system"]
SYSTEM: Literal["system"] = "system"


def _duration(value: Any) -> float:
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("write durations as strings like 30s, 1m or 1m30s")


def _resolver(value: Any) -> Resolver:
    if value == SYSTEM:
        return SYSTEM
    if not isinstance(value, str):
        raise ValueError("a resolver is 'system' or an IP address with an optional :port")
    host, port = parse_host_port(value, default_port=53)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"resolver {value!r} must be an IP address (names would need a resolver themselves), or 'system'"
        ) from None
    return Nameserver(host, port)


def parse_host_port(value: str, default_port: int | None = None) -> tuple[str, int]:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?|([0-9A-Fa-f:]+)", value)
    if not match:
        raise ValueError(f"{value!r} is not host:port")
    host = match.group(1) or match.group(3) or match.group(5)
    port_text = match.group(2) or match.group(4)
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{value!r} needs a port, like {value}:443")
        return host, default_port
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    return host, port


Duration = Annotated[float, BeforeValidator(_duration)]
ResolverEntry = Annotated[Resolver, BeforeValidator(_resolver)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSOptions(_Strict):
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    server_name: str | None = None


class HTTPOptions(_Strict):
    valid_status_codes: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    body_regex: str | None = None
    max_redirects: int = Field(default=5, ge=0, le=30)
    max_body_bytes: int = Field(default=1 << 20, ge=0, le=1 << 30)
    max_header_bytes: int = Field(default=16 << 10, ge=1024, le=1 << 20)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("body_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value.encode())
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def accepts(self, status: int) -> bool:
        if self.valid_status_codes is None:
            return 200 <= status < 300
        return status in self.valid_status_codes


class DNSQuery(_Strict):
    query: str
    type: str = "A"
    valid_rcodes: list[str] = Field(default_factory=lambda: ["NOERROR"])
    # Ask every resolver, not the first that answers, and compare their answers (OONI's
    # dns_consistency): disagreement is `dns_tampering`, not the target being down.
    compare_resolvers: bool = False

    @model_validator(mode="after")
    def _comparable(self) -> DNSQuery:
        if self.compare_resolvers and self.type not in ("A", "AAAA"):
            raise ValueError("compare_resolvers compares addresses: the type must be A or AAAA")
        return self

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            dns.rdatatype.from_text(value)
        except Exception:
            raise ValueError(f"unknown DNS record type {value!r}") from None
        return value.upper()

    @field_validator("valid_rcodes")
    @classmethod
    def _known_rcodes(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                dns.rcode.from_text(value)
            except Exception:
                raise ValueError(f"unknown DNS rcode {value!r}") from None
        return [value.upper() for value in values]


class ASNLookup(_Strict):
    enabled: bool = True
    zone: str = "origin.asn.cymru.com"
    zone6: str = "origin6.asn.cymru.com"
    ttl: Duration = 6 * 3600.0


class AnalysisOptions(_Strict):
    """How probe results become site, network, country and vantage outages (README: "Outage states")."""

    vantage_quorum: float = Field(default=0.5, gt=0, le=1)
    shutdown_ratio: float = Field(default=0.5, ge=0, lt=1)
    degraded_ratio: float = Field(default=0.8, ge=0, lt=1)
    min_targets: int = Field(default=3, ge=1)
    min_asns: int = Field(default=2, ge=1)
    min_network_targets: int = Field(default=2, ge=1)
    group_down_after: int = Field(default=2, ge=1, le=100)
    baseline_window: Duration = 3600.0
    settle: Duration | None = None
    recovery_grace: Duration | None = None  # default: 5 x settle
    flap_changes: int = Field(default=4, ge=2, le=64)
    flap_window: Duration | None = None  # default: 20 probe intervals of each target
    evaluate_every: Duration = 2.0
    whitelist_min: int = Field(default=3, ge=1)  # survivors of a country shutdown that make it `whitelist`
    slow_factor: float = Field(default=3.0, gt=1)  # slower than this many times its own median: slow
    slow_min_seconds: Duration = 0.5  # ... and by at least this much (fast sites vary a lot in ratio)
    slow_baseline_probes: int = Field(default=20, ge=3, le=1000)  # the window of the median

    @model_validator(mode="after")
    def _ordered(self) -> AnalysisOptions:
        if self.shutdown_ratio >= self.degraded_ratio:
            raise ValueError("shutdown_ratio must be lower than degraded_ratio")
        return self


NetworkKind = Literal["mobile", "fixed", "hosting", "transit"]
NETWORK_KINDS: tuple[str, ...] = get_args(NetworkKind)
BLOCK_PREFIXLEN = 24  # the unit of liveness (Trinocular, IODA): one /24 of end-user addresses
MAX_BLOCKS = 1 << 18  # /24s in a catalog: a few countries' end-user space, not the internet
_REGION = r"^[A-Z]{2}-[A-Z0-9]{1,3}$"  # ISO 3166-2, e.g. KZ-75 (Almaty)
Region = Annotated[str, Field(pattern=_REGION)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
# where the monitor runs: a Prometheus label value people type, so a short plain word
VANTAGE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
VantageName = Annotated[str, Field(pattern=VANTAGE_NAME)]


class NetworkEntry(_Strict):
    """A network of the monitored countries, keyed by its ASN in `networks:`."""

    name: str = Field(min_length=1)
    kind: NetworkKind
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    regions: list[Region] = Field(default_factory=list)
    source: str | None = None


class BlockEntry(_Strict):
    """End-user address space of a monitored country (`blocks:`), watched as its /24s."""

    prefix: str
    asn: int = Field(ge=1, le=4294967295)
    country: Country
    region: Region | None = None
    kind: NetworkKind | None = None
    source: str | None = None

    @field_validator("prefix")
    @classmethod
    def _ipv4_network(cls, value: str) -> str:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a network prefix: {exc}") from None
        if network.version != 4:
            raise ValueError("only IPv4 blocks: liveness is watched per IPv4 /24")
        if network.prefixlen > BLOCK_PREFIXLEN:
            raise ValueError(f"{network} is smaller than a /24, the unit of liveness")
        return str(network)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.prefix)

    @property
    def size(self) -> int:
        """How many /24s it holds."""
        return 1 << (BLOCK_PREFIXLEN - self.network.prefixlen)


class LivenessOptions(_Strict):
    """How `blocks:` are watched (README: "Block liveness"): Trinocular's rounds, under one budget."""

    round: Duration = 600.0  # Trinocular and IODA: every block at least every 10-11 minutes
    packets_per_second: float = Field(default=20.0, gt=0, le=10_000)  # all block probes together
    max_probes_per_block: int = Field(default=15, ge=1, le=64)  # per round (Trinocular: 15)
    timeout: Duration = 3.0
    method: Literal["auto", "icmp", "tcp"] = "auto"  # auto: ICMP when allowed, and TCP for the rest
    tcp_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default=[443, 80], min_length=1)
    discovery: str = "17 3 * * 0"  # crontab: when to look for each block's responsive addresses again
    discovery_packets_per_second: float = Field(default=10.0, gt=0, le=10_000)
    baseline_window: Duration = 7 * 86400.0  # IODA: the median of the last 7 days
    baseline_rounds: int = Field(default=6, ge=1, le=10_000)  # rounds seen before a baseline exists
    dark_ratio: float = Field(default=0.5, gt=0, lt=1)  # IODA's critical: below half the baseline
    min_blocks: int = Field(default=3, ge=1)  # a network's blocks are a signal from this many up

    @field_validator("discovery")
    @classmethod
    def _crontab(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            message = f"{value!r} is not a crontab schedule (minute hour day month weekday): {exc}"
            raise ValueError(message) from None
        return value

    @model_validator(mode="after")
    def _fits(self) -> LivenessOptions:
        if self.timeout >= self.round:
            raise ValueError("timeout must be shorter than round")
        return self


class PathOptions(_Strict):
    """Where the packets stop (README: "Paths"): a traceroute to each network now and then, its
    usual path the most common of the recent ones, and traces at once when an outage opens."""

    enabled: bool = True
    interval: Duration = 3600.0  # a trace to each network this often: its usual path
    recent: int = Field(default=5, ge=1, le=100)  # traces kept per network; the most common path is usual
    traces_per_outage: int = Field(default=3, ge=1, le=20)
    packets_per_second: float = Field(default=5.0, gt=0, le=1000)  # all traces together
    max_hops: int = Field(default=30, ge=1, le=64)
    hop_timeout: Duration = 1.0
    attempts: int = Field(default=2, ge=1, le=5)  # probes to a hop that stays silent
    silent_hops: int = Field(default=3, ge=1, le=10)  # a trace ends after this many silent hops in a row
    port: int = Field(default=33434, ge=1, le=65535)  # UDP, the same for every probe: one flow
    ipasn_file: str | None = None  # pyasn's IPASN file: hop addresses to ASNs offline (else Team Cymru)

    @field_validator("ipasn_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if importlib.util.find_spec("pyasn") is None:
            raise ValueError("an ipasn_file needs the pyasn package: pip install 'shutdown-monitor[ipasn]'")
        if not os.access(value, os.R_OK):
            raise ValueError(f"{value!r} is not a readable file")
        return value


class Defaults(_Strict):
    interval: Duration = 30.0
    timeout: Duration = 10.0
    resolvers: list[ResolverEntry] = Field(default_factory=lambda: [SYSTEM], min_length=1)  # type: ignore[arg-type]
    tls: TLSOptions = Field(default_factory=TLSOptions)
    http: HTTPOptions = Field(default_factory=HTTPOptions)
    bogon_networks: list[str] = Field(default_factory=lambda: list(DEFAULT_BOGON_NETWORKS))
    down_after: int = Field(default=3, ge=1, le=100)
    up_after: int = Field(default=2, ge=1, le=100)
    asn_lookup: ASNLookup = Field(default_factory=ASNLookup)

    @field_validator("bogon_networks")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not a network like 10.0.0.0/8") from None
        return values


@dataclass(frozen=True, slots=True)
class HTTPSpec:
    kind: ClassVar[Literal["http"]] = "http"
    url: str
    host: str
    port: int
    http: HTTPOptions
    tls: TLSOptions


@dataclass(frozen=True, slots=True)
class DNSSpec:
    kind: ClassVar[Literal["dns"]] = "dns"
    query: DNSQuery


@dataclass(frozen=True, slots=True)
class ConnectSpec:
    kind: ClassVar[Literal["tcp"]] = "tcp"
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TLSConnectSpec:
    kind: ClassVar[Literal["tls"]] = "tls"
    host: str
    port: int
    tls: TLSOptions


Spec = HTTPSpec | DNSSpec | ConnectSpec | TLSConnectSpec


_Model = TypeVar("_Model", bound=BaseModel)


def _merged(default: _Model, override: _Model | None) -> _Model:
    if override is None:
        return default
    return default.model_copy(update=override.model_dump(exclude_unset=True))


_MIN_SECRET_LENGTH = 3  # shorter values would redact ordinary words


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Kind = Literal["http", "dns", "tcp", "tls"]
KIND_KEYS: dict[str, Kind] = {"url": "http", "dns": "dns", "tcp": "tcp", "tls_connect": "tls"}


class _Entry(_Strict):
    """What every kind of target has. `country` and `category` are required of targets only:
    a control's category is always `control`, and its country is only a label."""

    name: str = Field(pattern=_NAME)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    category: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    asn: int | None = Field(default=None, ge=1, le=4294967295)
    region: str | None = Field(default=None, pattern=_REGION)
    source: str | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    resolvers: list[ResolverEntry] | None = None
    down_after: int | None = Field(default=None, ge=1, le=100)
    up_after: int | None = Field(default=None, ge=1, le=100)

    def spec(self, defaults: Defaults) -> Spec:
        """What to probe, with the defaults applied."""
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """Values never to appear in logs, metrics or the API."""
        return ()


class HTTPEntry(_Entry):
    url: str
    http: HTTPOptions | None = None
    tls: TLSOptions | None = None

    def spec(self, defaults: Defaults) -> HTTPSpec:
        parts = urlsplit(self.url)
        return HTTPSpec(
            url=self.url,
            host=parts.hostname or "",
            port=parts.port or (443 if parts.scheme == "https" else 80),
            http=_merged(defaults.http, self.http),
            tls=_merged(defaults.tls, self.tls),
        )

    def secrets(self) -> tuple[str, ...]:
        """Passwords in the URL, query values (tokens) and header values."""
        parts = urlsplit(self.url)
        found = [parts.password or "", *(value for _, value in parse_qsl(parts.query))]
        if self.http is not None:
            found += list(self.http.headers.values())
        return tuple(
            sorted({secret for secret in found if len(secret) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)
        )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value


class DNSEntry(_Entry):
    dns: DNSQuery

    def spec(self, defaults: Defaults) -> DNSSpec:
        return DNSSpec(self.dns)


def _host_port(value: str) -> str:
    parse_host_port(value)
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]


class ConnectEntry(_Entry):
    tcp: HostPort

    def spec(self, defaults: Defaults) -> ConnectSpec:
        return ConnectSpec(*parse_host_port(self.tcp))


class TLSConnectEntry(_Entry):
    tls_connect: HostPort
    tls: TLSOptions | None = None

    def spec(self, defaults: Defaults) -> TLSConnectSpec:
        host, port = parse_host_port(self.tls_connect)
        return TLSConnectSpec(host, port, _merged(defaults.tls, self.tls))


def _kind_of(value: Any) -> Kind | None:
    """The kind of an entry from the one kind key it has; None (an error) for none or several."""
    if not isinstance(value, dict):
        return None
    kinds = [kind for key, kind in KIND_KEYS.items() if key in value]
    return kinds[0] if len(kinds) == 1 else None


TargetEntry = Annotated[
    Annotated[HTTPEntry, Tag("http")]
    | Annotated[DNSEntry, Tag("dns")]
    | Annotated[ConnectEntry, Tag("tcp")]
    | Annotated[TLSConnectEntry, Tag("tls")],
    Discriminator(
        _kind_of,
        custom_error_type="target_kind",
        custom_error_message="a target needs exactly one of url, dns, tcp, tls_connect",
    ),
]


class Document(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    targets: list[TargetEntry] = Field(default_factory=list)
    controls: list[TargetEntry] = Field(default_factory=list)
    analysis: AnalysisOptions = Field(default_factory=AnalysisOptions)
    networks: dict[Annotated[int, Field(ge=1, le=4294967295)], NetworkEntry] = Field(default_factory=dict)
    # ISO 3166-2 codes per country with their names: {KZ: {KZ-75: Almaty, ...}}
    regions: dict[Country, dict[Region, str]] = Field(default_factory=dict)
    allow_adhoc: bool = False
    vantage: VantageName | None = None
    blocks: list[BlockEntry] = Field(default_factory=list)
    liveness: LivenessOptions = Field(default_factory=LivenessOptions)
    paths: PathOptions = Field(default_factory=PathOptions)
