"""The running monitor, the composition root: catalog, apscheduler, prober, analysis, journal, and
the daemon's own metrics. Everything periodic (probes, analysis, journal sync) is an apscheduler job."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import resource
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from monitor import __version__
from monitor.catalog.catalog import Catalog, Target, load_catalog
from monitor.catalog.problems import ConfigError
from monitor.catalog.sharding import Shard
from monitor.outages.analysis import Analyzer
from monitor.outages.block_store import BlockStore
from monitor.outages.journal import Journal
from monitor.outages.path_evidence import PathEvidence
from monitor.probing.block_rounds import BlockResult
from monitor.probing.block_watch import BlockWatch
from monitor.probing.discovery import packets_of
from monitor.probing.failures import Failure
from monitor.probing.latest import LatestResults
from monitor.probing.liveness import Answer
from monitor.probing.loop_health import LoopHealth
from monitor.probing.prober import Prober
from monitor.probing.result import ProbeResult
from monitor.probing.scheduler import ProbeSchedule, quiet_apscheduler
from monitor.probing.traceroute import Trace
from monitor.serving.listener import LimitedListener
from monitor.serving.peers import NO_PEERS, Peers
from monitor.serving.web import ClientErrorLogger, build_app
from monitor.serving.webconfig import WebConfig

__all__ = ["DaemonMetrics", "Monitor", "serve"]

disable_created_metrics()  # `_created` series double the exposition and no dashboard reads them

log = logging.getLogger(__name__)

_OVERRUN_TOLERANCE = 0.25
_SOONEST_EVALUATION = 0.25  # seconds between evaluations asked for by results
CLIENT_IDLE_TIMEOUT = 15.0  # seconds; Prometheus scrapes reconnect at no cost worth naming
_ERRNO = re.compile(r"\[Errno (\d+)\]")
_OPEN_FILES_CEILING = 1 << 20  # when the hard limit is "unlimited", which Linux does not allow as a soft one


def raise_open_files_limit() -> None:
    """Raise the soft limit of open files to the hard one, as Go programs do at start: the usual
    soft 1,024 lets a thousand idle clients starve the probes of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        log.info("open files limit: soft %s, hard %s", soft, hard)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files limit stays at soft %d (hard %s): %s", soft, hard, exc)
        return
    log.info("open files limit: soft %d raised to %d (hard %s)", soft, wanted, hard)


def _warn_if_clients_may_take_the_descriptors(max_connections: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and max_connections > soft // 2:
        log.warning(
            "--max-connections %d is more than half the open files limit (%d): "
            "web clients may take the sockets probes need",
            max_connections,
            soft,
        )


class Monitor:
    def __init__(
        self,
        config_path: str | Path,
        *,
        state_path: str | Path | None = None,
        max_concurrency: int = 512,
        shard: Shard | None = None,
        vantage: str | None = None,
    ) -> None:
        self.shard = shard
        self._vantage_flag = vantage
        self.config_path = Path(config_path)
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.results = LatestResults()
        self.metrics = DaemonMetrics(self.registry)
        self.prober = Prober()
        self.loop_health = LoopHealth(on_stall=self.metrics.stalls.inc)
        self.analyzer = Analyzer(
            Journal(state_path) if state_path else None, blind_spell=self.loop_health.blind_spell
        )
        self.metrics.loop_lag.set_function(lambda: self.loop_health.lag)
        self.metrics.self_healthy.set_function(lambda: 1.0 if self.loop_health.healthy() else 0.0)
        quiet_apscheduler()
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.probes = ProbeSchedule(
            self.scheduler,
            self._probe_and_record,
            max_concurrency,
            on_lag=self.metrics.schedule_lag.observe,
            on_skip=lambda name: self.metrics.skipped.inc(),
            on_missed=lambda name: self.metrics.missed.inc(),
        )
        self.metrics.in_flight.set_function(lambda: self.probes.in_flight)
        self.block_store = BlockStore(state_path) if state_path else None
        self.blocks = BlockWatch(
            self.scheduler,
            self.block_store,
            on_result=self._block_result,
            on_round=self._block_round,
            on_watched=lambda prefixes: self.analyzer.blocks.set_watched(prefixes, time.time()),
            on_probe=self._block_probe,
        )
        self.paths = PathEvidence(
            self.scheduler,
            self.analyzer,
            self.results,
            lambda: self.blocks.hitlists,
            self._seen_clearly_since,
            self.block_store,
            on_trace=self._path_trace,
        )
        self.catalog: Catalog | None = None
        self.started_at = time.time()
        self._evaluate_every: float | None = None
        self._periodic: set[asyncio.Task[None]] = set()  # analysis and journal jobs running now
        self._local_causes: set[str] = set()
        self._soon: asyncio.TimerHandle | None = None
        self._evaluated_at = 0.0  # loop time of the last evaluation
        self._loop_watch: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()  # writes of block counts under way

    async def start(self) -> None:
        """Load the catalog (an invalid one at start is fatal: there is nothing to fall back on)."""
        catalog = self._load()
        self._apply(catalog)
        self.analyzer.restore()
        if self.block_store is not None and catalog.blocks:
            now = time.time()
            samples = await asyncio.to_thread(
                self.block_store.samples, now - catalog.liveness.baseline_window
            )
            self.analyzer.blocks.restore(samples, now)
        await self.paths.restore()
        self.scheduler.start()
        loop = asyncio.get_running_loop()
        self._loop_watch = loop.create_task(self.loop_health.run())
        self.metrics.tasks.set_function(lambda: len(asyncio.all_tasks(loop)))

    def reload(self) -> bool:
        """Load the catalog again; on any problem keep running the old one."""
        try:
            catalog = self._load()
        except ConfigError as exc:
            self.metrics.reload_ok.set(0)
            for problem in exc.problems:
                log.error("reload rejected, keeping the running configuration: %s", problem)
            return False
        added, removed, changed = self._apply(catalog)
        log.info(
            "configuration reloaded: %d added, %d removed, %d changed", len(added), len(removed), len(changed)
        )
        return True

    def _load(self) -> Catalog:
        catalog = load_catalog(self.config_path)
        return self.shard.select(catalog) if self.shard else catalog

    @property
    def vantage(self) -> str:
        """Where this monitor runs: --vantage, else the catalog's `vantage:`, else unnamed ("")."""
        return self.analyzer.book.vantage

    def _apply(self, catalog: Catalog) -> tuple[set[str], set[str], set[str]]:
        self.catalog = catalog
        self.analyzer.book.vantage = self._vantage_flag or catalog.vantage or ""
        self.results.set_catalog(catalog)
        self.analyzer.set_catalog(catalog)
        changes = self.probes.apply(catalog)
        self.blocks.apply(self.analyzer.blocks.prefixes(), catalog.liveness)
        self.metrics.block_method.clear()
        if self.blocks.liveness is not None and catalog.blocks:
            self.metrics.block_method.labels(self.blocks.liveness.name).set(1)
        self.paths.apply(catalog)
        self._schedule_analysis(catalog.analysis.evaluate_every)
        self.metrics.targets.set(len(catalog.targets))
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        return changes

    def _schedule_analysis(self, every: float) -> None:
        """The analysis and the journal sync every `evaluate_every`, first at once."""
        if every == self._evaluate_every:
            return
        self._evaluate_every = every
        for job_id, job in (("monitor:evaluate", self._evaluate), ("monitor:journal", self._sync_journal)):
            self.scheduler.add_job(
                job,
                IntervalTrigger(seconds=every, timezone=UTC),
                id=job_id,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
                replace_existing=True,
            )

    async def _evaluate(self) -> None:
        with self._tracked():
            self._evaluate_now()

    async def _sync_journal(self) -> None:
        with self._tracked():
            try:
                await self.analyzer.sync_journal()
            except Exception:
                log.exception("journal sync failed; retrying")

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._periodic.add(task)
        try:
            yield
        finally:
            self._periodic.discard(task)

    async def _probe_and_record(self, target: Target) -> None:
        result = await self.prober.probe(target)
        if result.duration_seconds > target.timeout + _OVERRUN_TOLERANCE:
            self.metrics.overruns.inc()
        ended = time.monotonic()
        if self.loop_health.stalled_during(ended - result.duration_seconds, ended):
            self.metrics.held.inc()  # it may have failed only because we could not read its answer
            return
        self.record(result)

    def record(self, result: ProbeResult) -> None:
        if result.failure is Failure.LOCAL_ERROR:
            self._local_error(result)
            return
        self.results.record(result)
        if self.analyzer.record(result):
            self._evaluate_soon()
        self.metrics.observe(result)

    def _evaluate_soon(self) -> None:
        """A verdict may change: evaluate now rather than at the next `evaluate_every` (up to 2 s
        later), at most every _SOONEST_EVALUATION; a burst of changes is one evaluation."""
        if self._soon is not None:
            return
        with contextlib.suppress(RuntimeError):  # no running loop (unit tests): the job evaluates
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._evaluated_at + _SOONEST_EVALUATION - loop.time())
            self._soon = loop.call_later(delay, self._evaluate_now)

    def _evaluate_now(self) -> None:
        self._soon = None
        try:
            self.analyzer.evaluate()
            self.paths.trace_new_outages()
        except Exception:
            log.exception("outage analysis failed; retrying")
        self._evaluated_at = asyncio.get_running_loop().time()

    def _block_result(self, result: BlockResult) -> None:
        if result.local:
            self.metrics.block_results.labels("local").inc()
            return
        ended = time.monotonic()
        if self.loop_health.stalled_during(ended - (result.ended_at - result.started_at), ended):
            self.metrics.block_results.labels("held").inc()  # its silence may be our own stall
            return
        self.metrics.block_results.labels(result.state.value).inc()
        if self.analyzer.record_block(result):
            self._evaluate_soon()

    def _seen_clearly_since(self, started_at: float) -> bool:
        """Our uplink online and our event loop on time from `started_at` (Unix time) until now:
        what was seen meanwhile may be evidence."""
        gate, now = self.analyzer.gate, time.monotonic()
        return (
            gate.online
            and gate.changed_at < started_at
            and not self.loop_health.stalled_during(now - (time.time() - started_at), now)
        )

    def _block_round(self, started: float, ended: float) -> None:
        """A complete round we trust gives each cell a sample of its baseline: our uplink was
        online all along and our event loop on time."""
        trusted = self._seen_clearly_since(started)
        self.metrics.block_rounds.labels("complete" if trusted else "held").inc()
        self.metrics.block_round_duration.set(ended - started)
        if not trusted:
            return
        ledger = self.analyzer.blocks
        if ledger.end_round(started, ended):
            self._evaluate_soon()
        if self.block_store is not None:
            counts = {cell.name: counts["up"] for cell, counts in ledger.counts().items()}
            keep_since = ended - ledger.options.baseline_window
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self.block_store.save_samples, ended, counts, keep_since)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _block_probe(self, method: str, answer: Answer) -> None:
        kind = "icmp" if method == "icmp" else "tcp"
        self.metrics.block_probes.labels(kind, answer.value).inc()
        liveness = self.blocks.liveness
        if liveness is not None:
            self.metrics.block_packets.inc(packets_of(method, liveness.timeout))

    def _path_trace(self, purpose: str, trace: Trace) -> None:
        self.metrics.path_traces.labels(purpose).inc()
        self.metrics.path_packets.inc(trace.packets)

    def _local_error(self, result: ProbeResult) -> None:
        """Our own shortage (descriptors, buffers, ports) says nothing about the target: counted
        and logged once per cause, never a result, a state or evidence of any outage."""
        self.metrics.local_errors.inc()
        cause = _ERRNO.search(result.detail)
        key = errno.errorcode.get(int(cause.group(1)), cause.group(1)) if cause else result.detail[:80]
        if key not in self._local_causes:
            self._local_causes.add(key)
            log.warning(
                "probes fail for a reason of our own (%s), not counted as evidence: %s", key, result.detail
            )

    async def stop(self) -> None:
        """No new probes; running ones get a grace period; then the journal gets its last sync."""
        if self.scheduler.running:
            self.scheduler.pause()
            await asyncio.sleep(0)  # jobs submitted in the last turn of the loop start and register
            await self.blocks.stop()
            await self.paths.stop()
            await self.probes.drain()
            if self._periodic:
                await asyncio.wait(set(self._periodic), timeout=5)
            # Nothing is left for apscheduler to cancel (it would log each as a job error).
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the next turn of the loop
        if self._loop_watch is not None:
            self._loop_watch.cancel()
        if self._soon is not None:
            self._soon.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
        await self.analyzer.close()
        await self.prober.close()


@contextlib.asynccontextmanager
async def serve(
    monitor: Monitor,
    host: str,
    port: int,
    enable_lifecycle: bool,
    web_config: WebConfig | None = None,
    max_connections: int = 512,
    public: bool = False,
    peers: Peers = NO_PEERS,
) -> AsyncIterator[asyncio.Event]:
    """Start probing and serving; yield an event set by SIGTERM or SIGINT; stop cleanly."""
    raise_open_files_limit()
    await monitor.start()
    app = build_app(
        monitor, enable_lifecycle=enable_lifecycle, web_config=web_config, public=public, peers=peers
    )
    # The idle timeout runs from the connection's start and from each response, and a half-sent
    # request does not extend it: it is also the header-read timeout (slowloris).
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=CLIENT_IDLE_TIMEOUT, logger=ClientErrorLogger()
    )
    await runner.setup()
    assert runner.server is not None  # set by setup()
    stopping = asyncio.Event()
    ssl_context = web_config.ssl_context() if web_config else None
    listener = LimitedListener(
        runner.server,
        host,
        port,
        max_connections=max_connections,
        ssl_context=ssl_context,
        on_shed=monitor.metrics.connections_shed.inc,
    )
    monitor.metrics.connections.set_function(lambda: listener.active)
    _warn_if_clients_may_take_the_descriptors(max_connections)
    try:
        await listener.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, monitor.reload)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        log.info(
            "probing %d targets from vantage %s, serving on %s://%s:%d/metrics",
            len(monitor.catalog.targets) if monitor.catalog else 0,
            monitor.vantage or "(unnamed)",
            "https" if ssl_context else "http",
            host,
            port,
        )
        yield stopping
    finally:
        log.info("stopping")
        await listener.close()
        await monitor.stop()
        await runner.cleanup()


class DaemonMetrics:
    """The monitor's own health: probe throughput, schedule lag, config reloads."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.probes = Counter("monitor_probes", "Probes finished", ["result"], registry=registry)
        self.probe_successes = self.probes.labels("success")
        self.probe_failures = self.probes.labels("failure")
        self.in_flight = Gauge("monitor_probes_in_flight", "Probes running now", registry=registry)
        self.schedule_lag = Histogram(
            "monitor_schedule_lag_seconds",
            "How late a probe started against its slot",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.skipped = Counter(
            "monitor_probes_skipped",
            "Slots skipped because the target's previous probe was still running",
            registry=registry,
        )
        self.missed = Counter(
            "monitor_probes_missed",
            "Probe slots dropped because they would have started more than an interval late (a stall)",
            registry=registry,
        )
        self.local_errors = Counter(
            "monitor_probe_local_errors",
            "Probes that failed for a reason of our own (EMFILE, ENOBUFS, ...); not evidence about targets",
            registry=registry,
        )
        self.held = Counter(
            "monitor_probes_held",
            "Probe results not counted because our event loop stalled while they ran",
            registry=registry,
        )
        self.stalls = Counter(
            "monitor_event_loop_stalls", "Times our event loop ran more than 250ms late", registry=registry
        )
        self.loop_lag = Gauge(
            "monitor_event_loop_lag_seconds",
            "How late the event loop's 50ms timer last ran",
            registry=registry,
        )
        self.self_healthy = Gauge(
            "monitor_self_healthy",
            "1 if our event loop has run on time for the last minute",
            registry=registry,
        )
        self.overruns = Counter(
            "monitor_probe_deadline_overruns",
            "Probes that ended more than 250ms after their deadline (should stay 0)",
            registry=registry,
        )
        self.connections = Gauge(
            "monitor_web_connections", "Web client connections being served now", registry=registry
        )
        self.connections_shed = Counter(
            "monitor_web_connections_shed",
            "Client connections that never sent a byte, closed to make room under --max-connections",
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
        self.block_method = Gauge(
            "monitor_block_liveness_method_info",
            "How blocks are probed: icmp_raw, icmp_datagram or tcp (the log says why)",
            ["method"],
            registry=registry,
        )
        self.block_probes = Counter(
            "monitor_block_probes",
            "Liveness probes of block addresses by method and answer (local: ours, not evidence)",
            ["method", "answer"],
            registry=registry,
        )
        self.block_packets = Counter(
            "monitor_block_packets", "Packets the block probes sent (the budget's count)", registry=registry
        )
        self.block_results = Counter(
            "monitor_block_results",
            "Blocks' rounds by the state they ended in; held: our loop stalled; local: ours, not evidence",
            ["state"],
            registry=registry,
        )
        self.block_rounds = Counter(
            "monitor_block_rounds",
            "Complete rounds over every watched block; held: not trusted for the baselines",
            ["result"],
            registry=registry,
        )
        for result in ("complete", "held"):  # known label values start at 0 (for rate() and alerts)
            self.block_rounds.labels(result)
        self.block_round_duration = Gauge(
            "monitor_block_round_duration_seconds",
            "How long the last round over the blocks took",
            registry=registry,
        )
        self.path_traces = Counter(
            "monitor_path_traces",
            "Traceroutes by purpose: usual (each network's path now and then) or outage",
            ["purpose"],
            registry=registry,
        )
        for purpose in ("usual", "outage"):
            self.path_traces.labels(purpose)
        self.path_packets = Counter(
            "monitor_path_packets", "Packets the traceroutes sent (the budget's count)", registry=registry
        )
        build = Gauge("monitor_build_info", "Version of the monitor", ["version"], registry=registry)
        build.labels(__version__).set(1)

    def observe(self, result: ProbeResult) -> None:
        (self.probe_successes if result.success else self.probe_failures).inc()
