"""targets.yaml: schema, defaults and validation with errors that point at file, line and field.

The probes never re-check configuration: everything is validated here, once, and handed on as
frozen `Target` values with every default already applied.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

import dns.rdatatype
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.catalog.durations import parse_duration
from monitor.catalog.yaml_lines import LocatedYAML, YAMLLoadError, load_located

__all__ = [
    "DEFAULT_BOGON_NETWORKS",
    "AnalysisOptions",
    "Catalog",
    "ConfigError",
    "ConfigProblem",
    "DNSQuery",
    "HTTPOptions",
    "Nameserver",
    "TLSOptions",
    "Target",
    "adhoc_target",
    "load_catalog",
    "parse_catalog",
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
class ConfigProblem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


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
        import dns.rcode

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
    country_down_after: int = Field(default=2, ge=1, le=100)
    baseline_window: Duration = 3600.0
    settle: Duration | None = None
    evaluate_every: Duration = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> AnalysisOptions:
        if self.shutdown_ratio >= self.degraded_ratio:
            raise ValueError("shutdown_ratio must be lower than degraded_ratio")
        return self


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


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class TargetEntry(_Strict):
    name: str = Field(pattern=_NAME)
    url: str | None = None
    dns: DNSQuery | None = None
    tcp: str | None = None
    tls_connect: str | None = None
    country: str = Field(pattern=r"^[A-Z]{2}$")
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    asn: int | None = Field(default=None, ge=1, le=4294967295)
    source: str | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    resolvers: list[ResolverEntry] | None = None
    tls: TLSOptions | None = None
    http: HTTPOptions | None = None
    down_after: int | None = Field(default=None, ge=1, le=100)
    up_after: int | None = Field(default=None, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value

    @field_validator("tcp", "tls_connect")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value


class Document(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    targets: list[TargetEntry] = Field(default_factory=list)
    controls: list[TargetEntry] = Field(default_factory=list)
    analysis: AnalysisOptions = Field(default_factory=AnalysisOptions)
    allow_adhoc: bool = False


Kind = Literal["http", "dns", "tcp", "tls"]
_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Target:
    """One probe target with every default applied; what the probes and scheduler read."""

    name: str
    kind: Kind
    country: str
    category: str
    host: str
    port: int
    interval: float
    timeout: float
    resolvers: tuple[Resolver, ...]
    tls: TLSOptions
    http: HTTPOptions
    bogon_networks: tuple[str, ...]
    down_after: int
    up_after: int
    url: str | None = None
    dns: DNSQuery | None = None
    asn: int | None = None
    is_control: bool = False
    source: str | None = None
    secrets: tuple[str, ...] = ()  # never to appear in logs, metrics or the API

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text

    @property
    def uses_tls(self) -> bool:
        return self.kind == "tls" or (
            self.kind == "http" and self.url is not None and self.url.startswith("https:")
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    targets: tuple[Target, ...]
    asn_lookup: ASNLookup
    resolvers: tuple[Resolver, ...]
    defaults: Defaults = field(default_factory=Defaults)
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    allow_adhoc: bool = False
    source: str = "<config>"
    by_name: dict[str, Target] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_name.update({target.name: target for target in self.targets})

    @property
    def controls(self) -> tuple[Target, ...]:
        return tuple(target for target in self.targets if target.is_control)


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), 1, "file", f"cannot read: {exc}")]) from None
    return parse_catalog(text, str(path))


def parse_catalog(text: str, filename: str = "<config>") -> Catalog:
    try:
        located = load_located(text)
    except YAMLLoadError as exc:
        raise ConfigError([ConfigProblem(filename, exc.line, "yaml", exc.message)]) from None
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    filename, 1, "document", "must be a mapping with 'defaults', 'targets' and 'controls'"
                )
            ]
        )
    try:
        document = Document.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, located, filename)) from None
    problems: list[ConfigProblem] = []
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for section in ("targets", "controls"):
        for index, entry in enumerate(getattr(document, section)):
            path = (section, index)
            if entry.name in seen:
                problems.append(
                    _problem(
                        filename,
                        located,
                        (*path, "name"),
                        f"duplicate name {entry.name!r} (first at line {seen[entry.name]})",
                    )
                )
            seen.setdefault(entry.name, located.line_of((*path, "name")))
            try:
                targets.append(_effective(entry, document.defaults, section == "controls"))
            except ValueError as exc:
                field_name = exc.args[1] if len(exc.args) > 1 else "target"
                problems.append(_problem(filename, located, (*path, field_name), str(exc.args[0])))
    if problems:
        raise ConfigError(problems)
    return Catalog(
        targets=tuple(targets),
        asn_lookup=document.defaults.asn_lookup,
        resolvers=tuple(document.defaults.resolvers),
        defaults=document.defaults,
        analysis=document.analysis,
        allow_adhoc=document.allow_adhoc,
        source=filename,
    )


def adhoc_target(catalog: Catalog, url: str) -> Target:
    """A target for a URL that is not in the catalog, with the catalog's defaults."""
    try:
        entry = TargetEntry.model_validate(
            {"name": "adhoc", "url": url, "country": "ZZ", "category": "adhoc"}
        )
    except ValidationError as exc:
        messages = (error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise ValueError("; ".join(messages)) from None
    host = urlsplit(url).hostname or "adhoc"
    return dataclasses.replace(_effective(entry, catalog.defaults, is_control=False), name=host[:64])


def _effective(entry: TargetEntry, defaults: Defaults, is_control: bool) -> Target:
    kinds = {"url": entry.url, "dns": entry.dns, "tcp": entry.tcp, "tls_connect": entry.tls_connect}
    chosen = [key for key, value in kinds.items() if value is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"a target needs exactly one of url, dns, tcp, tls_connect (has {', '.join(chosen) or 'none'})",
            "name",
        )
    interval = entry.interval if entry.interval is not None else defaults.interval
    timeout = entry.timeout if entry.timeout is not None else defaults.timeout
    if timeout > interval:
        raise ValueError(
            f"timeout ({timeout:g}s) must not exceed the interval ({interval:g}s)",
            "timeout" if entry.timeout is not None else "interval",
        )
    if interval < 1:
        raise ValueError("interval must be at least 1s", "interval")
    kind: Kind
    if entry.url is not None:
        kind, parts = "http", urlsplit(entry.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    elif entry.dns is not None:
        kind, host, port = "dns", entry.dns.query, 53
    else:
        kind = "tcp" if entry.tcp is not None else "tls"
        host, port = parse_host_port(entry.tcp or entry.tls_connect or "")
    return Target(
        name=entry.name,
        kind=kind,
        country=entry.country,
        category="control" if is_control else entry.category,
        host=host,
        port=port,
        interval=interval,
        timeout=timeout,
        resolvers=tuple(entry.resolvers or defaults.resolvers),
        tls=_merged(defaults.tls, entry.tls),
        http=_merged(defaults.http, entry.http),
        bogon_networks=tuple(defaults.bogon_networks),
        down_after=entry.down_after or defaults.down_after,
        up_after=entry.up_after or defaults.up_after,
        url=entry.url,
        dns=entry.dns,
        secrets=_secrets(entry),
        asn=entry.asn,
        is_control=is_control,
        source=entry.source,
    )


_MIN_SECRET_LENGTH = 3  # shorter values would redact ordinary words


def _secrets(entry: TargetEntry) -> tuple[str, ...]:
    """Passwords in the URL, query values (tokens) and header values of a target."""
    found: list[str] = []
    if entry.url is not None:
        parts = urlsplit(entry.url)
        found += [parts.password or ""]
        found += [value for _, value in parse_qsl(parts.query)]
    if entry.http is not None:
        found += list(entry.http.headers.values())
    return tuple(
        sorted({secret for secret in found if len(secret) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)
    )


def _merged(default: _Model, override: _Model | None) -> _Model:
    if override is None:
        return default
    return default.model_copy(update=override.model_dump(exclude_unset=True))


def _problems(exc: ValidationError, located: LocatedYAML, filename: str) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append(_problem(filename, located, loc, message))
    return problems


def _problem(filename: str, located: LocatedYAML, loc: tuple[Any, ...], message: str) -> ConfigProblem:
    field_path = ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in loc)
    return ConfigProblem(filename, located.line_of(loc), field_path.replace(".[", "[") or "document", message)
