"""One outage as a self-contained report a newsroom can publish: HTML or Markdown, the timeline
chart inline (SVG; in Markdown a data: image), no link to anything that may go away."""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

from monitor import __version__
from monitor.outages.outage import Outage
from monitor.probing.failures import FAILURE_MEANINGS, Failure
from monitor.serving.rendering import VERDICT_HEADLINES, environment, outage_view, utc
from monitor.serving.svg import Bar, timeline

__all__ = ["REPORT_FORMATS", "render_report"]

ReportFormat = Literal["html", "markdown"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("html", "markdown")
_TEMPLATES = {"html": "report.html", "markdown": "report.md"}


def render_report(
    outage: Outage, context: list[Outage], fmt: ReportFormat = "html", now: float | None = None
) -> str:
    """`context`: the outages it absorbed and the others of its country that overlapped it."""
    now = time.time() if now is None else now
    verdict = outage.effective_verdict
    headline, explanation = VERDICT_HEADLINES.get(verdict, (verdict.upper(), ""))
    chart = _chart(outage, context, now)
    return environment.get_template(_TEMPLATES[fmt]).render(
        outage=outage_view(outage, now, public=False),
        asn=outage.asn,
        headline=headline,
        explanation=explanation,
        how=_how(outage),
        phases=[{"verdict": phase.get("verdict", ""), "at": utc(phase.get("at"))} for phase in outage.phases],
        survivors_total=outage.details.get("survivors_total", 0),
        details=_plain_details(outage.details),
        traces=_traces(outage.path),
        targets=outage.targets,
        context=[outage_view(other, now, public=False) for other in context],
        chart_svg=chart,
        chart_data_uri="data:image/svg+xml;base64," + base64.b64encode(chart.encode()).decode(),
        generated=utc(now),
        version=__version__,
    )


def _how(outage: Outage) -> list[dict[str, Any]]:
    total = sum(outage.evidence.values()) or 1
    rows = []
    for failure, count in outage.evidence.most_common():
        try:
            meaning = FAILURE_MEANINGS[Failure(failure)]
        except ValueError:
            meaning = ""
        rows.append({"failure": failure, "count": count, "share": count / total, "meaning": meaning})
    return rows


def _traces(path: dict[str, Any]) -> list[dict[str, str]]:
    """Each trace of the outage's path evidence: where it stopped, its hops and the usual ones."""
    return [
        {
            "destination": str(entry.get("destination", "")),
            "where": str(entry.get("where", "")),
            "hops": _hops(entry.get("hops", [])),
            "usual": _hops(entry["usual_hops"]) if "usual_hops" in entry else "not traced yet",
        }
        for entry in path.get("traces", [])
    ]


def _hops(hops: list[dict[str, Any]]) -> str:
    """`1 10.0.0.1 AS64600 · 2 * · …`: a silent hop is a star, an answer other than "time
    exceeded" is named."""
    shown = []
    for hop in hops:
        text = f"{hop['ttl']} {hop['address'] or '*'}"
        if hop.get("asn") is not None:
            text += f" AS{hop['asn']}"
        if hop.get("reply") not in ("time_exceeded", "silent"):
            text += f" ({hop['reply']})"
        shown.append(text)
    return " · ".join(shown)


def _plain_details(details: dict[str, Any]) -> list[tuple[str, str]]:
    """The rule's evidence other than the survivors (shown on their own), as text."""
    return [
        (key.replace("_", " "), _text(value))
        for key, value in sorted(details.items())
        if key not in ("survivors", "survivors_total")
    ]


def _text(value: Any, nested: bool = False) -> str:
    """A list as its items, a mapping as `key: value` pairs (in parentheses when inside another)."""
    if isinstance(value, list):
        return ", ".join(_text(item, True) for item in value)
    if isinstance(value, dict):
        pairs = ", ".join(f"{str(k).replace('_', ' ')}: {_text(v, True)}" for k, v in sorted(value.items()))
        return f"({pairs})" if nested else pairs
    return str(value)


def _chart(outage: Outage, context: list[Outage], now: float) -> str:
    """This outage (a bar per phase when its verdict changed) and its context, on one time axis."""
    end = outage.ended_at if outage.ended_at is not None else now
    bars = []
    if len(outage.phases) > 1:
        for i, phase in enumerate(outage.phases):
            until = outage.phases[i + 1]["at"] if i + 1 < len(outage.phases) else outage.ended_at
            bars.append(Bar(f"{outage.key} · {phase['verdict']}", phase["at"], until, phase["verdict"]))
    else:
        bars.append(Bar(outage.key, outage.started_at, outage.ended_at, outage.effective_verdict))
    for other in context:
        bars.append(Bar(other.key, other.started_at, other.ended_at, other.effective_verdict))
    start = min(bar.started_at for bar in bars)
    stop = max([end, *(bar.ended_at or now for bar in bars)])
    margin = max((stop - start) * 0.05, 30.0)
    return timeline(bars, start - margin, stop + margin)
