"""The status page at `/`: what the monitor concludes, for people who do not run Grafana.

Server-rendered (Jinja2, autoescaped), no script: a page that refreshes itself, prints and can
be saved. `public` leaves out what only the operator needs (targets, their probes, addresses).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor import __version__
from monitor.catalog.catalog import Catalog, Target
from monitor.outages.analysis import Analyzer
from monitor.outages.outage import Outage
from monitor.outages.rules import BLIND_VERDICTS
from monitor.outages.state import Health
from monitor.probing.latest import LatestResults
from monitor.serving.rendering import VERDICT_HEADLINES, environment, outage_view, utc, whole_seconds
from monitor.serving.svg import VERDICT_COLOURS, Bar, sparkline, timeline

__all__ = ["StatusPage"]

REFRESH_SECONDS = 30
JOURNAL_DAYS = 7
SPARK_HOURS = 6
_MAX_TIMELINE_ROWS = 40
_MAX_JOURNAL_ROWS = 200  # a week of a flapping catalog can hold thousands: the CLI lists them all


@dataclass(slots=True)
class StatusPage:
    """What the page shows, gathered on the event loop; rendering needs nothing live."""

    now: float
    public: bool
    vantage_online: bool
    vantage: str = ""  # the monitor's --vantage name
    countries: list[dict[str, Any]] = field(default_factory=list)
    open_outages: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    journal_source: str = "memory"
    journal_more: int = 0  # outages of the week not listed
    timeline_svg: str = ""
    targets: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def gather(
        cls,
        analyzer: Analyzer,
        catalog: Catalog | None,
        results: LatestResults,
        journal: Iterable[Outage],
        *,
        journal_source: str,
        public: bool,
        now: float | None = None,
    ) -> StatusPage:
        now = time.time() if now is None else now
        page = cls(now, public, analyzer.vantage_online, analyzer.book.vantage, journal_source=journal_source)
        page.countries = [_country(analyzer, catalog, code, now) for code in sorted(analyzer.countries)]
        page.open_outages = [
            outage_view(outage, now, public=public)
            for outage in sorted(analyzer.open.values(), key=lambda outage: outage.started_at)
        ]
        week_ago = now - JOURNAL_DAYS * 86400
        listed = sorted(
            (outage for outage in journal if outage.absorbed_by is None),
            key=lambda outage: outage.started_at,
            reverse=True,
        )
        page.journal = [outage_view(outage, now, public=public) for outage in listed[:_MAX_JOURNAL_ROWS]]
        page.journal_more = max(len(listed) - _MAX_JOURNAL_ROWS, 0)
        bars = [
            Bar(outage.key, outage.started_at, outage.ended_at, outage.effective_verdict)
            for outage in listed[:_MAX_TIMELINE_ROWS]
        ]
        page.timeline_svg = timeline(bars, week_ago, now)
        if not public and catalog is not None:
            page.targets = [_target(analyzer, results, target, now) for target in catalog.targets]
        return page

    def render(self) -> str:
        return environment.get_template("status.html").render(
            page=self,
            version=__version__,
            refresh=REFRESH_SECONDS,
            generated=utc(self.now),
            colours=VERDICT_COLOURS,
            journal_days=JOURNAL_DAYS,
            spark_hours=SPARK_HOURS,
        )


def _country(analyzer: Analyzer, catalog: Catalog | None, code: str, now: float) -> dict[str, Any]:
    summary = analyzer.countries[code]
    headline, explanation = VERDICT_HEADLINES.get(summary.verdict, (summary.verdict.upper(), ""))
    region_names = catalog.regions.get(code, {}) if catalog is not None else {}
    history = analyzer.history
    blind = summary.verdict in BLIND_VERDICTS
    return {
        "code": code,
        "verdict": summary.verdict,
        "headline": headline,
        "explanation": explanation,
        "blind": blind,
        "ratio": None if blind else summary.ratio,
        "counted": summary.counted,
        "down": summary.down,
        "regions": [
            {"code": region, "name": region_names.get(region, region), "share": share}
            for region, share in sorted(summary.by_region.items())
        ],
        "networks": _networks(analyzer, catalog, code),
        "sparkline": sparkline(history.points(code), now - SPARK_HOURS * 3600, now, history.step),
    }


def _networks(analyzer: Analyzer, catalog: Catalog | None, country: str) -> list[dict[str, Any]]:
    if catalog is None:
        return []
    up: Counter[int] = Counter()
    known: Counter[int] = Counter()
    for target in catalog.targets:
        asn = analyzer.asn_of(target)
        state = analyzer.states.get(target.name)
        if target.is_control or target.country != country or asn is None or state is None:
            continue
        if state.health is Health.UNKNOWN:
            continue
        known[asn] += 1
        up[asn] += state.health is Health.UP
    rows = []
    for asn in sorted(known):
        network = catalog.networks.get(asn)
        rows.append(
            {
                "asn": asn,
                "name": network.name if network is not None else "",
                "kind": network.kind if network is not None else "",
                "up": up[asn],
                "known": known[asn],
            }
        )
    return rows


def _target(analyzer: Analyzer, results: LatestResults, target: Target, now: float) -> dict[str, Any]:
    state = analyzer.states.get(target.name)
    result = results.latest.get(target.name)
    cause = analyzer.cause_of(target.name)
    return {
        "name": target.name,
        "country": target.country,
        "category": target.category,
        "kind": target.kind,
        "control": target.is_control,
        "state": state.health.value if state is not None else "unknown",
        "cause": f"{cause['state']}: {cause['scope']} {cause['key']}" if cause else "",
        "failure": result.failure.value if result is not None and result.failure else "",
        "age": whole_seconds(now - result.started_at) if result is not None else "",
        "seconds": f"{result.duration_seconds:.3f}" if result is not None else "",
    }
