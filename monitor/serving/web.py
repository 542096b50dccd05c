"""The HTTP face of the daemon: the status page, /metrics, /healthz, /probe, /-/reload and the
JSON API with its outage reports."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from monitor import __version__
from monitor.catalog.catalog import Catalog, adhoc_target
from monitor.catalog.durations import parse_duration
from monitor.outages import paths
from monitor.outages.analysis import Analyzer
from monitor.outages.consensus import VantageOutages, merge
from monitor.outages.journal import Journal, JournalError
from monitor.outages.outage import Outage
from monitor.outages.path_evidence import PathEvidence
from monitor.probing.latest import LatestResults
from monitor.probing.prober import Prober
from monitor.probing.result import ProbeResult
from monitor.serving.exposition import metrics_text, probe_text
from monitor.serving.peers import NO_PEERS, Peers, read_vantages
from monitor.serving.report import REPORT_FORMATS, render_report
from monitor.serving.status_page import JOURNAL_DAYS, StatusPage
from monitor.serving.webconfig import WebConfig

__all__ = ["ClientErrorLogger", "build_app"]

_SCRAPE_TIMEOUT_MARGIN = 0.5


class Served(Protocol):
    """What the endpoints read of the running monitor (monitor.daemon.Monitor is one)."""

    registry: CollectorRegistry
    results: LatestResults
    analyzer: Analyzer
    prober: Prober
    catalog: Catalog | None
    started_at: float
    paths: PathEvidence

    @property
    def vantage(self) -> str: ...

    def reload(self) -> bool: ...


MONITOR_KEY = web.AppKey("monitor", Served)
PUBLIC_KEY = web.AppKey("public", bool)
PEERS_KEY = web.AppKey("peers", Peers)


class ClientErrorLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp logs a client's malformed request as an ERROR with a traceback; it is the client's
    fault, so one warning line says it. Errors of our own keep their traceback."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("monitor.serving.web"), {})

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.warning("%s: %s", str(msg) % args, _one_line(exc_info))
            return
        self.error(msg, *args, exc_info=exc_info, **kwargs)


def _one_line(exc: HttpProcessingError) -> str:
    return " ".join(f"{exc.code} {exc.message}".split())[:200]


def build_app(
    monitor: Served,
    *,
    enable_lifecycle: bool = False,
    web_config: WebConfig | None = None,
    public: bool = False,
    peers: Peers = NO_PEERS,
) -> web.Application:
    """`public`: the status page without target internals, and no /api/status or /probe (which
    tell anyone what the monitor probes and how); /metrics stays for Prometheus."""
    middleware = web_config.auth_middleware() if web_config else None
    app = web.Application(middlewares=[middleware] if middleware else [])
    app[MONITOR_KEY] = monitor
    app[PUBLIC_KEY] = public
    app[PEERS_KEY] = peers
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    if not public:
        app.router.add_get("/probe", _probe)
        app.router.add_get("/api/status", _status)
        app.router.add_get("/api/paths", _paths)
    app.router.add_get("/api/outages", _outages)
    app.router.add_get("/api/outages/merged", _merged_outages)
    app.router.add_get("/api/outages/{id}/report", _report)
    app.router.add_get("/", _index)
    if enable_lifecycle:
        app.router.add_post("/-/reload", _reload)
    return app


async def _metrics(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    body = metrics_text(monitor.registry, monitor.results, monitor.analyzer)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _reload(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    if monitor.reload():
        return web.Response(text="reloaded\n")
    return web.Response(status=500, text="reload failed; the previous configuration keeps running\n")


async def _probe(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    name = request.query.get("target", "")
    catalog = monitor.catalog
    target = catalog.by_name.get(name) if catalog else None
    if target is None and catalog is not None and catalog.allow_adhoc and "://" in name:
        try:
            target = adhoc_target(catalog, name)
        except ValueError as exc:
            return web.Response(status=400, text=f"bad target: {exc}\n")
    if target is None:
        return web.Response(
            status=400,
            text=f"unknown target {name!r}: /probe takes a target name from the catalog "
            "(URLs only with allow_adhoc: true in the catalog)\n",
        )
    scrape_timeout = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    if scrape_timeout:
        try:
            budget = max(float(scrape_timeout) - _SCRAPE_TIMEOUT_MARGIN, 0.1)
        except ValueError:
            budget = target.timeout
        target = dataclasses.replace(target, timeout=min(target.timeout, budget))
    debug = request.query.get("debug", "").lower() in ("1", "true", "yes")
    result = await monitor.prober.probe(target, debug=debug)
    exposition = probe_text(target, result).encode()
    if debug:
        log = "\n".join(result.log)
        text = f"Logs for the probe:\n{log}\n\nMetrics that would have been returned:\n{exposition.decode()}"
        return web.Response(text=text)
    return web.Response(body=exposition, headers={"Content-Type": CONTENT_TYPE_LATEST})


def result_json(result: ProbeResult) -> dict[str, Any]:
    return {
        "success": result.success,
        "failure": result.failure.value if result.failure else None,
        "failed_phase": result.failed_phase.value if result.failed_phase else None,
        "started_at": result.started_at,
        "duration_seconds": round(result.duration_seconds, 6),
        "phases": {phase.value: round(seconds, 6) for phase, seconds in result.phases.items()},
        "http_status": result.http_status,
    }


async def _paths(request: web.Request) -> web.Response:
    """Each network's usual path and its recent traces (addresses of the catalog's networks)."""
    book = request.app[MONITOR_KEY].paths.book
    networks = {
        network: {
            "usual": usual.as_dict() if (usual := book.usual(network)) else None,
            "recent": [trace.as_dict() for trace in traces],
        }
        for network, traces in sorted(book.traces.items())
    }
    return web.json_response({"networks": networks})


async def _status(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    targets = []
    for name, target in monitor.catalog.by_name.items() if monitor.catalog else ():
        result = monitor.results.latest.get(name)
        state = monitor.analyzer.states.get(name)
        targets.append(
            {
                "name": name,
                "country": target.country,
                "category": target.category,
                "kind": target.kind,
                "control": target.is_control,
                "asn": monitor.analyzer.asn_of(target),
                "state": state.health.value if state else "unknown",
                "region": target.region,
                "flapping": name in monitor.analyzer.flapping,
                "slow": bool(state and state.speed.slow),
                "dns_tampered": bool(state and state.dns.tampered),
                "cause": monitor.analyzer.cause_of(name),
                "last_probe": result_json(result) if result else None,
            }
        )
    analyzer = monitor.analyzer
    countries = {
        country: {
            "verdict": summary.verdict,
            "state": summary.state,
            "reachable_ratio": summary.ratio,
            "counted": summary.counted,
            "down": summary.down,
            "regions": summary.by_region,
            "network_kinds": summary.by_network_kind,
            "open_outages": sorted(
                f"{outage.scope.value}:{outage.key}"
                for outage in analyzer.open.values()
                if outage.country == country
            ),
        }
        for country, summary in sorted(analyzer.countries.items())
    }
    body = {
        "version": __version__,
        "uptime_seconds": round(time.time() - monitor.started_at, 3),
        "vantage": monitor.vantage,
        "vantage_online": analyzer.vantage_online,
        "verdicts_frozen": analyzer.frozen,
        "countries": countries,
        "open_outages": [outage.as_dict() for outage in analyzer.open.values()],
        "targets": targets,
    }
    return web.json_response(body, dumps=lambda value: json.dumps(value, indent=1))


async def _outages(request: web.Request) -> web.Response:
    window = _window(request)
    if isinstance(window, web.Response):
        return window
    since = time.time() - window
    monitor = request.app[MONITOR_KEY]
    outages, source = await _recorded_outages(monitor, since)
    public = request.app[PUBLIC_KEY]
    body = {
        "vantage": monitor.vantage,
        "countries": sorted(monitor.analyzer.countries),  # what this vantage can tell about
        "source": source,
        "since": since,
        "outages": [_listed(outage, public) for outage in outages],
    }
    return web.json_response(body)


async def _merged_outages(request: web.Request) -> web.Response:
    """Our outages and our peers' (--peer), merged across vantages (monitor.outages.consensus)."""
    window = _window(request)
    if isinstance(window, web.Response):
        return window
    monitor, peers, public = request.app[MONITOR_KEY], request.app[PEERS_KEY], request.app[PUBLIC_KEY]
    outages, source = await _recorded_outages(monitor, time.time() - window)
    ours = VantageOutages(
        monitor.vantage or "local", source, tuple(outages), frozenset(monitor.analyzer.countries)
    )
    answers = [ours, *await read_vantages(peers.urls, window, ca_file=peers.ca_file)]
    merged = [entry.as_dict(lambda outage: _listed(outage, public)) for entry in merge(answers)]
    return web.json_response({"vantages": [answer.as_dict() for answer in answers], "outages": merged})


def _window(request: web.Request) -> float | web.Response:
    """The seconds of `?since=` (default 24h), or the 400 that says why not."""
    try:
        return parse_duration(request.query.get("since", "24h"))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)


def _listed(outage: Outage, public: bool) -> dict[str, Any]:
    listed = outage.as_dict()
    if public:
        listed["targets"] = len(outage.targets)
        listed["path"] = paths.public(outage.path) or None
    return listed


async def _recorded_outages(monitor: Served, since: float) -> tuple[list[Outage], str]:
    """Outages open at any time after `since`: from the journal when it can be read, else the
    ones held in memory; and which of the two it was."""
    journal = monitor.analyzer.journal
    if journal is not None and journal.healthy:
        try:
            return await asyncio.to_thread(Journal.read, journal.path, since), "journal"
        except JournalError:
            pass
    outages = monitor.analyzer.outages()
    return [outage for outage in outages if outage.ended_at is None or outage.ended_at >= since], "memory"


async def _report(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    fmt = request.query.get("format", "html")
    if fmt not in REPORT_FORMATS:
        return web.Response(status=400, text=f"format must be one of {', '.join(REPORT_FORMATS)}\n")
    wanted = request.match_info["id"]
    journal = monitor.analyzer.journal
    try:
        if journal is not None and journal.healthy:
            outage, context = await asyncio.to_thread(Journal.read_with_context, journal.path, wanted)
        else:
            found = [outage for outage in monitor.analyzer.outages() if outage.id == wanted]
            if not found:
                raise JournalError(f"no outage with id {wanted} in memory")
            outage, context = found[0], found[0].context(monitor.analyzer.outages())
    except JournalError as exc:
        return web.Response(status=404, text=f"{exc}\n")
    if request.app[PUBLIC_KEY]:
        outage = dataclasses.replace(outage, targets=[], path=paths.public(outage.path))
    text = render_report(outage, context, "markdown" if fmt == "markdown" else "html")
    content_type = "text/markdown" if fmt == "markdown" else "text/html"
    return web.Response(text=text, content_type=content_type, charset="utf-8")


async def _index(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    now = time.time()
    journal, source = await _recorded_outages(monitor, now - JOURNAL_DAYS * 86400)
    page = StatusPage.gather(
        monitor.analyzer,
        monitor.catalog,
        monitor.results,
        journal,
        journal_source=source,
        public=request.app[PUBLIC_KEY],
        now=now,
    )
    text = await asyncio.to_thread(page.render)
    return web.Response(
        text=text, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )
