"""The hand-written exposition parses and says what prometheus_client would (promtool: system tests)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.catalog.catalog import parse_catalog
from monitor.daemon import DaemonMetrics
from monitor.outages.analysis import Analyzer
from monitor.probing.block_rounds import BlockResult
from monitor.probing.failures import Failure, Phase
from monitor.probing.latest import LatestResults
from monitor.probing.result import ProbeResult
from monitor.serving.exposition import _number, metrics_text, probe_text

CATALOG = parse_catalog(
    "defaults: {interval: 60s, timeout: 5s, resolvers: ['127.0.0.1:1']}\ntargets:\n"
    + "".join(
        f"  - {{name: site{i:03d}, url: 'https://s{i}.lab.test/', country: KZ, category: news, "
        f"asn: {9198 + i % 3}}}\n"
        for i in range(120)
    )
    + "  - {name: kz-dns, dns: {query: 'kz.', type: SOA}, country: KZ, category: cctld_dns}\n"
    + "controls:\n  - {name: ripe, tcp: 'h:1', country: NL, category: control}\n"
    + "regions: {KZ: {KZ-75: Almaty}}\n"
    + "blocks:\n  - {prefix: 198.18.0.0/23, asn: 9198, country: KZ, region: KZ-75}\n"
    + "  - {prefix: 198.18.2.0/24, asn: 29355, country: KZ, kind: mobile}\n"
)
BLOCK_PREFIXES = ("198.18.0.0/24", "198.18.1.0/24")  # watched; 198.18.2.0/24 is not


def result(name: str, ok: bool) -> ProbeResult:
    return ProbeResult(
        name,
        time.time(),
        0.042,
        ok,
        None if ok else Failure.TLS_RESET,
        None if ok else Phase.TLS,
        phases={Phase.RESOLVE: 0.001, Phase.CONNECT: 0.002},
        http_status=200 if ok else 0,  # an HTTP probe reports 0 when nothing answered
        cert_expiry=2e9 if ok else None,
        tls_version='TLS"v1.3\\' if ok else None,
        dns_answer_count=1,
    )


def rendered() -> str:
    results = LatestResults()
    results.set_catalog(CATALOG)
    analyzer = Analyzer()
    analyzer.set_catalog(CATALOG)
    for index, target in enumerate(CATALOG.targets):
        for _ in range(3):
            outcome = result(target.name, ok=index % 4 != 0)
            results.record(outcome)
            analyzer.record(outcome)
    analyzer.blocks.set_watched(BLOCK_PREFIXES, 0.0)
    for round_start in range(6):  # enough rounds for a baseline (baseline_rounds)
        for prefix, belief in zip(BLOCK_PREFIXES, (0.99, 0.5), strict=True):
            analyzer.record_block(BlockResult(prefix, belief, 1, 1, round_start + 0.1, round_start + 0.2))
        analyzer.blocks.end_round(round_start, round_start + 1)
    analyzer.evaluate()
    registry = CollectorRegistry()
    DaemonMetrics(registry)
    return metrics_text(registry, results, analyzer).decode()


def test_every_family_parses_with_the_labels_and_values_expected() -> None:
    families = {family.name: family for family in text_string_to_metric_families(rendered())}
    success = {sample.labels["target"]: sample.value for sample in families["probe_success"].samples}
    assert len(success) == 122 and success["site000"] == 0.0 and success["site001"] == 1.0
    phases = [
        sample
        for sample in families["probe_http_duration_seconds"].samples
        if sample.labels["target"] == "site001"
    ]
    assert {sample.labels["phase"]: sample.value for sample in phases} == {
        "resolve": 0.001,
        "connect": 0.002,
        "tls": 0.0,
        "processing": 0.0,
        "transfer": 0.0,
    }
    versions = {sample.labels["version"] for sample in families["probe_tls_version_info"].samples}
    assert versions == {'TLS"v1.3\\'}
    failures = families["probe_failures"].samples
    assert {
        (sample.labels["target"], sample.labels["reason"], sample.value)
        for sample in failures
        if sample.labels["target"] == "site000"
    } == {("site000", "tls_reset", 3.0)}
    assert families["monitor_outages"].type == "counter"
    assert {sample.labels["asn"] for sample in families["monitor_target_info"].samples} == {
        "AS9198",
        "AS9199",
        "AS9200",
        "unknown",
    }


def test_probe_text_is_only_that_probe() -> None:
    text = probe_text(CATALOG.by_name["site001"], result("site001", ok=True))
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "probe_success" in names and not any(name.startswith("monitor_") for name in names)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (0, "0.0"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (1e-05, "1e-05"),
    ],
)
def test_numbers_are_written_as_prometheus_reads_them(value: float, text: str) -> None:
    assert _number(value) == text


def test_blocks_are_counted_per_network_and_region_never_per_block() -> None:
    families = {family.name: family for family in text_string_to_metric_families(rendered())}
    counts = {
        (sample.labels["asn"], sample.labels["region"], sample.labels["state"]): sample.value
        for sample in families["monitor_blocks"].samples
    }
    assert len(counts) == 2 * 4  # two cells, four states each
    assert (counts["AS9198", "KZ-75", "up"], counts["AS9198", "KZ-75", "unknown"]) == (1, 1)
    assert counts["AS29355", "", "unwatched"] == 1
    baselines = {sample.labels["asn"]: sample.value for sample in families["monitor_blocks_baseline"].samples}
    assert baselines == {"AS9198": 1.0}  # the unwatched cell never had a round
    rounds = {sample.labels["result"]: sample.value for sample in families["monitor_block_rounds"].samples}
    assert rounds == {"complete": 0.0, "held": 0.0}  # known label values start at 0
