"""What the status page and the outage report share: their templates and how they word things."""

from __future__ import annotations

import time
from typing import Any

import jinja2

from monitor.catalog.durations import format_duration
from monitor.outages.outage import Outage

__all__ = ["VERDICT_HEADLINES", "environment", "outage_view", "utc", "whole_seconds"]

# verdict -> (headline, one line); the gates say UNKNOWN: a blind monitor knows nothing of the world
VERDICT_HEADLINES = {
    "self": ("UNKNOWN", "our own process stalled: its results are held, nothing is concluded"),
    "vantage": ("UNKNOWN", "our vantage point is offline: it cannot see this country"),
    "unknown": ("UNKNOWN", "no target has a state yet"),
    "full": ("SHUTDOWN", "the whole country is dark"),
    "whitelist": ("WHITELIST", "the country is dark but for a few sites"),
    "regional": ("REGIONAL OUTAGE", "a region is dark, the rest of the country is up"),
    "mobile_only": ("MOBILE SHUTDOWN", "every mobile network is dark, fixed networks are up"),
    "network": ("NETWORK OUTAGE", "a network is dark"),
    "throttled": ("THROTTLED", "sites answer, far slower than their own baseline"),
    "dns_tampering": ("DNS TAMPERING", "the country's resolvers give answers the others do not"),
    "site": ("SITE DOWN", "one or more sites are down, their networks are up"),
    "normal": ("NORMAL", "every probed network and region is reachable"),
}

environment = jinja2.Environment(
    loader=jinja2.PackageLoader("monitor.serving", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
# a Markdown table cell: a pipe or a line break in a value would end it
environment.filters["cell"] = lambda value: " ".join(str(value).split()).replace("|", "\\|")


def utc(timestamp: float | None) -> str:
    return "" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def whole_seconds(seconds: float) -> str:
    return format_duration(float(max(int(seconds), 0)))


def outage_view(outage: Outage, now: float, *, public: bool) -> dict[str, Any]:
    """An outage as the page and the report show it; `public` leaves out the target names."""
    end = outage.ended_at if outage.ended_at is not None else now
    return {
        "id": outage.id,
        "scope": outage.scope.value,
        "key": outage.key,
        "verdict": outage.effective_verdict,
        "country": outage.country or "",
        "started": utc(outage.started_at),
        "ended": utc(outage.ended_at) if outage.ended_at is not None else "open",
        "duration": whole_seconds(end - outage.started_at),
        "evidence": outage.evidence.most_common(6),
        "target_count": len(outage.targets),
        "targets": [] if public else outage.targets[:20],
        "survivors": list(outage.details.get("survivors", [])),
        "path": str(outage.path.get("said", "")),  # where its packets stop, in a sentence
    }
