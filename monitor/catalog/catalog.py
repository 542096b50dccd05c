"""targets.yaml loaded into frozen `Target` values, every default applied, every problem located.

The probes never re-check configuration: everything is validated here, once. A target carries
one spec of its kind (`HTTPSpec`, `DNSSpec`, `ConnectSpec`, `TLSConnectSpec`), so a probe reads
only options that exist for it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from monitor.catalog.problems import ConfigError, ConfigProblem
from monitor.catalog.schema import (
    KIND_KEYS,
    MAX_BLOCKS,
    AnalysisOptions,
    ASNLookup,
    BlockEntry,
    ConnectSpec,
    Defaults,
    DNSSpec,
    Document,
    HTTPEntry,
    HTTPSpec,
    Kind,
    LivenessOptions,
    NetworkEntry,
    PathOptions,
    Resolver,
    Spec,
    TargetEntry,
    TLSConnectEntry,
    TLSConnectSpec,
)
from monitor.catalog.yaml_lines import LocatedYAML, YAMLLoadError, load_located

__all__ = [
    "Catalog",
    "ConnectSpec",
    "DNSSpec",
    "HTTPSpec",
    "Spec",
    "TLSConnectSpec",
    "Target",
    "adhoc_target",
    "load_catalog",
    "parse_catalog",
]


_Spec = TypeVar("_Spec", HTTPSpec, DNSSpec, ConnectSpec, TLSConnectSpec)


@dataclass(frozen=True, slots=True)
class Target:
    """One probe target with every default applied; what the probes and scheduler read."""

    name: str
    country: str
    category: str
    spec: Spec
    interval: float
    timeout: float
    resolvers: tuple[Resolver, ...]
    bogon_networks: tuple[str, ...]
    down_after: int
    up_after: int
    asn: int | None = None
    region: str | None = None  # ISO 3166-2
    is_control: bool = False
    source: str | None = None
    secrets: tuple[str, ...] = ()  # never to appear in logs, metrics or the API

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    def spec_as(self, kind: type[_Spec]) -> _Spec:
        """The spec, typed for the probe of its kind (the PROBES table only hands it over)."""
        if not isinstance(self.spec, kind):
            raise TypeError(f"{self.name} is a {self.kind} target, not {kind.kind}")
        return self.spec

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text


@dataclass(frozen=True, slots=True)
class Catalog:
    targets: tuple[Target, ...]
    asn_lookup: ASNLookup
    resolvers: tuple[Resolver, ...]
    defaults: Defaults = field(default_factory=Defaults)
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    allow_adhoc: bool = False
    source: str = "<config>"
    networks: dict[int, NetworkEntry] = field(default_factory=dict)
    regions: dict[str, dict[str, str]] = field(default_factory=dict)  # country -> code -> name
    vantage: str | None = None  # where the monitor runs (--vantage wins over it)
    blocks: tuple[BlockEntry, ...] = ()  # end-user address space, watched per /24
    liveness: LivenessOptions = field(default_factory=LivenessOptions)
    paths: PathOptions = field(default_factory=PathOptions)
    by_name: dict[str, Target] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_name.update({target.name: target for target in self.targets})

    @property
    def controls(self) -> tuple[Target, ...]:
        return tuple(target for target in self.targets if target.is_control)

    def network_kind(self, asn: int | None) -> str | None:
        network = self.networks.get(asn) if asn is not None else None
        return network.kind if network is not None else None


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
                _check_places(targets[-1], document)
            except ValueError as exc:
                field_name = exc.args[1] if len(exc.args) > 1 else "target"
                problems.append(_problem(filename, located, (*path, field_name), str(exc.args[0])))
    problems += _network_problems(document, located, filename)
    problems += _block_problems(document, located, filename)
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
        networks=dict(document.networks),
        regions={country: dict(regions) for country, regions in document.regions.items()},
        vantage=document.vantage,
        blocks=tuple(document.blocks),
        liveness=document.liveness,
        paths=document.paths,
    )


def _check_places(target: Target, document: Document) -> None:
    """A target's region is one of its country's listed regions; a comparison needs two resolvers."""
    if target.region is not None:
        listed = document.regions.get(target.country, {})
        if target.region not in listed:
            where = f"regions.{target.country}" if listed else "regions"
            message = f"{target.region!r} is not a region of {target.country} listed in {where}"
            raise ValueError(message, "region")
    if isinstance(target.spec, DNSSpec) and target.spec.query.compare_resolvers and len(target.resolvers) < 2:
        raise ValueError("compare_resolvers needs at least two resolvers", "dns")


def _network_problems(document: Document, located: LocatedYAML, filename: str) -> list[ConfigProblem]:
    problems = []
    for asn, network in document.networks.items():
        for index, region in enumerate(network.regions):
            country = network.country or region[:2]
            if region not in document.regions.get(country, {}):
                problems.append(
                    _problem(
                        filename,
                        located,
                        ("networks", str(asn), "regions", index),
                        f"{region!r} is not a region of {country} listed in regions",
                    )
                )
    return problems


def _block_problems(document: Document, located: LocatedYAML, filename: str) -> list[ConfigProblem]:
    """Each block's region is listed for its country; no two blocks overlap; not too many /24s."""
    problems = []
    for index, block in enumerate(document.blocks):
        if block.region is not None and block.region not in document.regions.get(block.country, {}):
            message = f"{block.region!r} is not a region of {block.country} listed in regions"
            problems.append(_problem(filename, located, ("blocks", index, "region"), message))
    ordered = sorted(range(len(document.blocks)), key=lambda index: document.blocks[index].network)
    for before, after in itertools.pairwise(ordered):
        first, second = document.blocks[before].network, document.blocks[after].network
        if first.overlaps(second):
            line = located.line_of(("blocks", before, "prefix"))
            message = f"{second} overlaps {first} (line {line}): each /24 belongs to one block"
            problems.append(_problem(filename, located, ("blocks", after, "prefix"), message))
    total = sum(block.size for block in document.blocks)
    if total > MAX_BLOCKS:
        message = f"{total} /24s, more than {MAX_BLOCKS}: a few countries' end-user space, not more"
        problems.append(_problem(filename, located, ("blocks",), message))
    return sorted(problems, key=lambda problem: problem.line)


def adhoc_target(catalog: Catalog, url: str) -> Target:
    """A target for a URL that is not in the catalog, with the catalog's defaults."""
    try:
        entry = HTTPEntry.model_validate({"name": "adhoc", "url": url, "country": "ZZ", "category": "adhoc"})
    except ValidationError as exc:
        messages = (error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise ValueError("; ".join(messages)) from None
    host = urlsplit(url).hostname or "adhoc"
    return dataclasses.replace(_effective(entry, catalog.defaults, is_control=False), name=host[:64])


_UNKNOWN_COUNTRY = "ZZ"  # ISO 3166 "unknown", for a control that does not say where it is


def _effective(entry: TargetEntry, defaults: Defaults, is_control: bool) -> Target:
    interval = entry.interval if entry.interval is not None else defaults.interval
    timeout = entry.timeout if entry.timeout is not None else defaults.timeout
    if timeout > interval:
        raise ValueError(
            f"timeout ({timeout:g}s) must not exceed the interval ({interval:g}s)",
            "timeout" if entry.timeout is not None else "interval",
        )
    if interval < 1:
        raise ValueError("interval must be at least 1s", "interval")
    if not is_control:
        for required in ("country", "category"):
            if getattr(entry, required) is None:
                raise ValueError("required field is missing", required)
    return Target(
        name=entry.name,
        country=entry.country or _UNKNOWN_COUNTRY,
        category="control" if is_control else entry.category or "",
        spec=entry.spec(defaults),
        interval=interval,
        timeout=timeout,
        resolvers=tuple(entry.resolvers or defaults.resolvers),
        bogon_networks=tuple(defaults.bogon_networks),
        down_after=entry.down_after or defaults.down_after,
        up_after=entry.up_after or defaults.up_after,
        secrets=entry.secrets(),
        asn=entry.asn,
        region=entry.region,
        is_control=is_control,
        source=entry.source,
    )


_KIND_TAGS = frozenset(KIND_KEYS.values())
_KIND_FIELDS = frozenset({*KIND_KEYS, *HTTPEntry.model_fields, *TLSConnectEntry.model_fields})


def _problems(exc: ValidationError, located: LocatedYAML, filename: str) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        kind = None
        if len(loc) > 2 and loc[0] in ("targets", "controls") and loc[2] in _KIND_TAGS:
            kind, loc = loc[2], (*loc[:2], *loc[3:])  # pydantic names the union member; we do not
        if loc and loc[-1] == "[key]":  # pydantic's mark for a bad mapping key
            loc = loc[:-1]
            message = _KEY_RULES.get(str(loc[0]), message)
        if error["type"] == "target_kind":
            has = [key for key in KIND_KEYS if isinstance(error["input"], dict) and key in error["input"]]
            message = f"{message} (has {', '.join(has) or 'none'})"
            loc = (*loc, "name")
        elif error["type"] == "extra_forbidden":
            known_elsewhere = kind is not None and len(loc) == 3 and loc[2] in _KIND_FIELDS
            message = f"not valid for a {kind} target" if known_elsewhere else "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append(_problem(filename, located, loc, message))
    return sorted(problems, key=lambda problem: problem.line)  # in the order of the file


_KEYED_SECTIONS = ("networks", "regions")
_KEY_RULES = {
    "networks": "networks are keyed by their ASN, a number like 9198",
    "regions": "regions are keyed by country (KZ), then by ISO 3166-2 code (KZ-75)",
}  # mappings whose keys (ASNs, countries) are not list indices


def _problem(filename: str, located: LocatedYAML, loc: tuple[Any, ...], message: str) -> ConfigProblem:
    if len(loc) > 1 and loc[0] in _KEYED_SECTIONS:
        loc = (loc[0], str(loc[1]), *loc[2:])
    field_path = ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in loc)
    return ConfigProblem(filename, located.line_of(loc), field_path.replace(".[", "[") or "document", message)
