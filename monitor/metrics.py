"""What the exporter knows: the last result of every target (rendered on each scrape by
monitor/exposition.py, so a target removed from the catalog disappears at once), and the
daemon's own counters in a prometheus_client registry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as CounterMetric

from monitor import __version__
from monitor.config import Catalog, Target
from monitor.failures import Failure
from monitor.result import ProbeResult

__all__ = ["DaemonMetrics", "LatestResults"]


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
