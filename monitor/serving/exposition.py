"""The Prometheus text exposition of our own state, written directly as text.

prometheus_client builds a Sample object per series before formatting it; at 10,000 targets
(~150,000 series) that took 2-3 s of CPU per scrape and held the event loop long enough to
delay probes by seconds (bench/scale.py). Here each target's label set is formatted once and
every sample is one f-string. The daemon's own counters and the process metrics still come
from prometheus_client's registry, which is small.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest

from monitor.catalog.catalog import DNSSpec, Target
from monitor.outages.analysis import Analyzer
from monitor.outages.blocks import BLOCK_STATES, BlockLedger
from monitor.outages.outage import Scope
from monitor.outages.rules import COUNTRY_STATES, VERDICTS
from monitor.outages.state import Health
from monitor.probing.failures import Phase
from monitor.probing.latest import LatestResults
from monitor.probing.result import ProbeResult

__all__ = ["metrics_text", "probe_text"]

_PHASES = tuple(Phase)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _number(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _labels(**pairs: str) -> str:
    """Label names sorted, as prometheus_client writes them."""
    return "{" + ",".join(f'{name}="{_escape(pairs[name])}"' for name in sorted(pairs)) + "}"


@functools.lru_cache(maxsize=65536)
def _target_prefix(name: str, country: str, category: str) -> str:
    """`{category="...",country="...",target="..."` without the closing brace."""
    return _labels(target=name, country=country, category=category)[:-1]


def _prefix(target: Target) -> str:
    return _target_prefix(target.name, target.country, target.category)


class _Family:
    __slots__ = ("header", "lines", "name")

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.header = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        self.lines: list[str] = []

    def add(self, labels: str, value: float) -> None:
        self.lines.append(f"{self.name}{labels} {_number(value)}\n")

    def text(self) -> str:
        return self.header + "".join(self.lines)


def _probe_families(rows: Iterable[tuple[Target, ProbeResult]]) -> list[_Family]:
    success = _Family("probe_success", "gauge", "1 if the last probe succeeded")
    duration = _Family("probe_duration_seconds", "gauge", "Wall time of the last probe")
    dns_time = _Family("probe_dns_lookup_time_seconds", "gauge", "DNS phase of the last probe")
    phases = _Family("probe_http_duration_seconds", "gauge", "Time spent in each phase of the last probe")
    status = _Family("probe_http_status_code", "gauge", "HTTP status of the last response, 0 if none")
    redirects = _Family("probe_http_redirects", "gauge", "Redirects followed by the last probe")
    length = _Family("probe_http_content_length", "gauge", "Body bytes read by the last probe")
    expiry = _Family(
        "probe_ssl_earliest_cert_expiry", "gauge", "Unix time the earliest certificate seen expires"
    )
    tls_version = _Family("probe_tls_version_info", "gauge", "Negotiated TLS version")
    answers = _Family("probe_dns_answer_rrs", "gauge", "Records in the last DNS answer")
    finished = _Family("probe_last_timestamp_seconds", "gauge", "Unix time the last probe finished")
    for target, result in rows:
        prefix = _prefix(target)
        labels = prefix + "}"
        success.add(labels, 1.0 if result.success else 0.0)
        duration.add(labels, result.duration_seconds)
        dns_time.add(labels, result.dns_lookup_seconds)
        finished.add(labels, result.started_at + result.duration_seconds)
        if result.dns_answer_count is not None:
            answers.add(labels, result.dns_answer_count)
        if result.http_status is not None:  # an HTTP probe: its status is 0 when nothing answered
            for phase in _PHASES:
                phases.add(f'{prefix},phase="{phase.value}"}}', result.phases.get(phase, 0.0))
            status.add(labels, result.http_status)
            redirects.add(labels, result.redirects)
            length.add(labels, result.body_bytes)
        if result.cert_expiry is not None:
            expiry.add(labels, result.cert_expiry)
        if result.tls_version is not None:
            tls_version.add(f'{prefix},version="{_escape(result.tls_version)}"}}', 1.0)
    return [
        success,
        duration,
        dns_time,
        phases,
        status,
        redirects,
        length,
        expiry,
        tls_version,
        answers,
        finished,
    ]


def probe_text(target: Target, result: ProbeResult) -> str:
    """What /probe answers: exactly this probe's metrics, as blackbox_exporter does."""
    return "".join(family.text() for family in _probe_families([(target, result)]))


def _failures(results: LatestResults) -> _Family:
    failures = _Family("probe_failures_total", "counter", "Failed probes by failure string")
    for name, counts in list(results.failures.items()):
        target = results.targets.get(name)
        if target is None:
            continue
        prefix = _prefix(target)
        for failure, count in counts.items():
            failures.add(f'{prefix},reason="{failure.value}"}}', count)
    return failures


def _analysis_families(analyzer: Analyzer) -> list[_Family]:
    up = _Family("monitor_target_up", "gauge", "State after hysteresis: 1 up, 0 down (absent: unknown)")
    flapping = _Family(
        "monitor_target_flapping", "gauge", "1 while the target changes state too often (one outage spans it)"
    )
    slow_counts: Counter[str] = Counter()
    tampered = _Family(
        "monitor_target_dns_tampered",
        "gauge",
        "1 while the resolvers disagree on the name (compare_resolvers)",
    )
    info = _Family("monitor_target_info", "gauge", "Catalog facts about a target")
    for name, target in list(analyzer.targets.items()):
        state = analyzer.states.get(name)
        prefix = _prefix(target)
        blind = not analyzer.vantage_online and not target.is_control  # held states are not news
        if state is not None and state.health is not Health.UNKNOWN and not blind:
            up.add(prefix + "}", 1.0 if state.health is Health.UP else 0.0)
            flapping.add(prefix + "}", 1.0 if name in analyzer.flapping else 0.0)
            slow_counts[target.country] += state.speed.slow and not target.is_control
            if target.kind == "dns" and target.spec_as(DNSSpec).query.compare_resolvers:
                tampered.add(prefix + "}", 1.0 if state.dns.tampered else 0.0)
        asn = analyzer.asn_of(target)
        network_kind = analyzer.network_kind(asn) or ""
        info.add(
            f'{prefix},asn="{f"AS{asn}" if asn else "unknown"}",kind="{target.kind}",'
            f'region="{target.region or ""}",network_kind="{network_kind}"}}',
            1.0,
        )
    ratio = _Family(
        "monitor_group_reachable_ratio",
        "gauge",
        'Share of normally reachable targets that are up (category="all": the whole country)',
    )
    states = _Family("monitor_country_state", "gauge", "1 for the current state of each country")
    verdicts = _Family("monitor_country_verdict", "gauge", "1 for the one current verdict of each country")
    regions = _Family(
        "monitor_region_reachable_ratio", "gauge", "Share of a region's normally reachable targets up"
    )
    kinds = _Family(
        "monitor_network_kind_reachable_ratio",
        "gauge",
        "Share of the normally reachable targets on a kind of network (mobile, fixed...) that are up",
    )
    slow = _Family(
        "monitor_targets_slow",
        "gauge",
        "Targets that answer far slower than their own baseline (throttling; slow is never down)",
    )
    for country, summary in sorted(analyzer.countries.items()):
        if summary.state != "unknown":
            slow.add(_labels(country=country), slow_counts[country])
        for category, value in sorted((summary.by_category or {}).items()):
            ratio.add(_labels(country=country, category=category), value)
        for region, value in summary.by_region.items():
            regions.add(_labels(country=country, region=region), value)
        for kind, value in summary.by_network_kind.items():
            kinds.add(_labels(country=country, kind=kind), value)
        for verdict in VERDICTS:
            value = 1.0 if summary.verdict == verdict else 0.0
            verdicts.add(_labels(country=country, verdict=verdict), value)
        for state_name in COUNTRY_STATES:
            states.add(
                _labels(country=country, state=state_name), 1.0 if summary.state == state_name else 0.0
            )
    vantage = _Family("monitor_vantage_online", "gauge", "1 while most control targets abroad are reachable")
    vantage.add("", 1.0 if analyzer.vantage_online else 0.0)
    started = _Family(
        "monitor_outage_start_timestamp_seconds",
        "gauge",
        "Unix time each open outage started; key is the target, COUNTRY/ASN, country or vantage",
    )
    for outage in list(analyzer.open.values()):
        asn_label = f"AS{outage.asn}" if outage.asn is not None else ""
        region = outage.details.get("region", "") if outage.scope is Scope.REGION else ""
        network_kind = "mobile" if outage.scope is Scope.MOBILE else analyzer.network_kind(outage.asn) or ""
        labels = _labels(
            scope=outage.scope.value,
            country=outage.country or "",
            asn=asn_label,
            key=outage.key,
            region=region,
            network_kind=network_kind,
        )
        started.add(labels, outage.started_at)
    open_outages = _Family("monitor_outages_open", "gauge", "Open outages by scope")
    opened = _Family("monitor_outages_total", "counter", "Outages opened since start")
    open_counts = Counter(outage.scope for outage in analyzer.open.values())
    for scope in Scope:
        open_outages.add(_labels(scope=scope.value), open_counts[scope])
        opened.add(_labels(scope=scope.value), analyzer.opened_total[scope])
    families = [
        up,
        flapping,
        tampered,
        info,
        ratio,
        regions,
        kinds,
        slow,
        states,
        verdicts,
        vantage,
        started,
        open_outages,
        opened,
    ]
    families += _block_families(analyzer.blocks)
    if analyzer.journal is not None:
        healthy = _Family("monitor_journal_healthy", "gauge", "1 while the outage journal can be written")
        healthy.add("", 1.0 if analyzer.journal.healthy else 0.0)
        errors = _Family("monitor_journal_errors_total", "counter", "Failed journal reads and writes")
        errors.add("", analyzer.journal.errors)
        families += [healthy, errors]
    return families


def _block_families(ledger: BlockLedger) -> list[_Family]:
    """Per cell (country, network, region): never a series per block."""
    if not ledger.cells:
        return []
    blocks = _Family("monitor_blocks", "gauge", "End-user /24 blocks by the state of their latest round")
    baseline = _Family(
        "monitor_blocks_baseline",
        "gauge",
        "Median of the blocks up at each round's end over the baseline window (absent until enough rounds)",
    )
    for cell, counts in sorted(ledger.counts().items(), key=lambda item: item[0].name):
        place = {"country": cell.country, "asn": f"AS{cell.asn}", "region": cell.region or ""}
        for state in BLOCK_STATES:
            blocks.add(_labels(**place, state=state), counts[state])
        value = ledger.cells[cell].baseline
        if value is not None:
            baseline.add(_labels(**place), value)
    return [blocks, baseline]


def analysis_text(analyzer: Analyzer) -> str:
    return "".join(family.text() for family in _analysis_families(analyzer))


def metrics_text(registry: CollectorRegistry, results: LatestResults, analyzer: Analyzer) -> bytes:
    """Everything /metrics serves: the registry's metrics, then ours."""
    families = [*_probe_families(results.rows()), _failures(results), *_analysis_families(analyzer)]
    return generate_latest(registry) + "".join(family.text() for family in families).encode()
