"""Prometheus exposition of probe results: built from our own state on every scrape.

Custom collectors read the latest ProbeResult of each target, so a target removed from the
catalog disappears from /metrics at once and nothing is counted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as CounterMetric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.config import Catalog, Target
from monitor.failures import Failure, Phase
from monitor.result import ProbeResult

__all__ = ["DaemonMetrics", "LatestResults", "ResultCollector", "result_families", "single_probe_registry"]

TARGET_LABELS = ("target", "country", "category")
_PHASES = tuple(Phase)


def _labels(target: Target) -> list[str]:
    return [target.name, target.country, target.category]


def result_families(rows: Iterable[tuple[Target, ProbeResult]]) -> Iterator[Metric]:
    """The blackbox_exporter-compatible per-probe gauges for each (target, last result)."""
    success = GaugeMetricFamily("probe_success", "1 if the last probe succeeded", labels=TARGET_LABELS)
    duration = GaugeMetricFamily(
        "probe_duration_seconds", "Wall time of the last probe", labels=TARGET_LABELS
    )
    dns_time = GaugeMetricFamily(
        "probe_dns_lookup_time_seconds", "DNS phase of the last probe", labels=TARGET_LABELS
    )
    phases = GaugeMetricFamily(
        "probe_http_duration_seconds",
        "Time spent in each phase of the last probe",
        labels=(*TARGET_LABELS, "phase"),
    )
    status = GaugeMetricFamily(
        "probe_http_status_code", "HTTP status of the last response, 0 if none", labels=TARGET_LABELS
    )
    redirects = GaugeMetricFamily(
        "probe_http_redirects", "Redirects followed by the last probe", labels=TARGET_LABELS
    )
    length = GaugeMetricFamily(
        "probe_http_content_length", "Body bytes read by the last probe", labels=TARGET_LABELS
    )
    expiry = GaugeMetricFamily(
        "probe_ssl_earliest_cert_expiry",
        "Unix time the earliest certificate seen expires",
        labels=TARGET_LABELS,
    )
    tls_version = GaugeMetricFamily(
        "probe_tls_version_info", "Negotiated TLS version", labels=(*TARGET_LABELS, "version")
    )
    answers = GaugeMetricFamily(
        "probe_dns_answer_rrs", "Records in the last DNS answer", labels=TARGET_LABELS
    )
    finished = GaugeMetricFamily(
        "probe_last_timestamp_seconds", "Unix time the last probe finished", labels=TARGET_LABELS
    )
    for target, result in rows:
        labels = _labels(target)
        success.add_metric(labels, 1.0 if result.success else 0.0)
        duration.add_metric(labels, result.duration_seconds)
        dns_time.add_metric(labels, result.dns_lookup_seconds)
        finished.add_metric(labels, result.started_at + result.duration_seconds)
        if result.dns_answer_count is not None:
            answers.add_metric(labels, result.dns_answer_count)
        if target.kind == "http":
            for phase in _PHASES:
                phases.add_metric([*labels, phase.value], result.phases.get(phase, 0.0))
            status.add_metric(labels, result.http_status or 0)
            redirects.add_metric(labels, result.redirects)
            length.add_metric(labels, result.body_bytes)
        if result.cert_expiry is not None:
            expiry.add_metric(labels, result.cert_expiry)
        if result.tls_version is not None:
            tls_version.add_metric([*labels, result.tls_version], 1.0)
    yield from (
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
    )


class LatestResults:
    """The last result and failure counts of every target in the running catalog."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}
        self.latest: dict[str, ProbeResult] = {}
        self.failures: dict[str, Counter[Failure]] = {}

    def set_catalog(self, catalog: Catalog) -> None:
        self.targets = dict(catalog.by_name)
        for name in set(self.latest) - set(self.targets):
            del self.latest[name]
        for name in set(self.failures) - set(self.targets):
            del self.failures[name]

    def record(self, result: ProbeResult) -> None:
        if result.target not in self.targets:
            return  # finished after its target was removed by a reload
        self.latest[result.target] = result
        if result.failure is not None:
            self.failures.setdefault(result.target, Counter())[result.failure] += 1

    def rows(self) -> Iterator[tuple[Target, ProbeResult]]:
        for name, result in list(self.latest.items()):
            target = self.targets.get(name)
            if target is not None:
                yield target, result


class ResultCollector(Collector):
    def __init__(self, results: LatestResults) -> None:
        self._results = results

    def collect(self) -> Iterator[Metric]:
        yield from result_families(self._results.rows())
        failures = CounterMetricFamily(
            "probe_failures", "Failed probes by failure string", labels=(*TARGET_LABELS, "reason")
        )
        for name, counts in list(self._results.failures.items()):
            target = self._results.targets.get(name)
            if target is None:
                continue
            for failure, count in counts.items():
                failures.add_metric([*_labels(target), failure.value], count)
        yield failures


class _SingleResult(Collector):
    def __init__(self, target: Target, result: ProbeResult) -> None:
        self._row = (target, result)

    def collect(self) -> Iterator[Metric]:
        yield from result_families([self._row])


def single_probe_registry(target: Target, result: ProbeResult) -> CollectorRegistry:
    """What /probe answers: exactly this probe's metrics, as blackbox_exporter does."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SingleResult(target, result))
    return registry


class DaemonMetrics:
    """The monitor's own health: probe throughput, schedule lag, config reloads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.probes = CounterMetric("monitor_probes", "Probes finished", ["result"], registry=registry)
        self.probe_successes = self.probes.labels("success")
        self.probe_failures = self.probes.labels("failure")
        self.in_flight = Gauge("monitor_probes_in_flight", "Probes running now", registry=registry)
        self.schedule_lag = Histogram(
            "monitor_schedule_lag_seconds",
            "How late a probe started against its slot",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.skipped = CounterMetric(
            "monitor_probes_skipped",
            "Slots skipped because the target's previous probe was still running",
            registry=registry,
        )
        self.overruns = CounterMetric(
            "monitor_probe_deadline_overruns",
            "Probes that ended more than 250ms after their deadline (should stay 0)",
            registry=registry,
        )
        self.tasks = Gauge("monitor_asyncio_tasks", "Tasks alive in the event loop", registry=registry)
        self.targets = Gauge("monitor_targets", "Targets scheduled by this instance", registry=registry)
        self.reload_ok = Gauge(
            "monitor_config_last_reload_successful",
            "1 if the last load of the configuration worked",
            registry=registry,
        )
        self.reload_time = Gauge(
            "monitor_config_last_reload_success_timestamp_seconds",
            "Unix time of the last good configuration load",
            registry=registry,
        )
        build = Gauge("monitor_build_info", "Version of the monitor", ["version"], registry=registry)
        build.labels(__version__).set(1)

    def observe(self, result: ProbeResult) -> None:
        (self.probe_successes if result.success else self.probe_failures).inc()
