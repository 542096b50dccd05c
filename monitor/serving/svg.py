"""Inline SVG charts: a share sparkline and an outage timeline. Plain markup, no script, so
they render in any browser, in a saved page and in a report a newsroom republishes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from monitor.outages.history import SharePoint

__all__ = ["VERDICT_COLOURS", "Bar", "sparkline", "timeline"]

# verdict -> fill; the same colours as the status page's badges
VERDICT_COLOURS = {
    "full": "#c62828",
    "whitelist": "#c62828",
    "regional": "#ef6c00",
    "mobile_only": "#ef6c00",
    "network": "#ef6c00",
    "throttled": "#f9a825",
    "dns_tampering": "#f9a825",
    "site": "#fbc02d",
    "vantage": "#757575",
    "self": "#757575",
}


def sparkline(
    points: Sequence[SharePoint], start: float, end: float, step: float, width: int = 240, height: int = 36
) -> str:
    """The reachable share from `start` to `end` (0 at the bottom, 1 at the top); a blind step
    breaks the line and is shaded grey, never drawn as a share."""
    span = max(end - start, 1.0)

    def x(at: float) -> float:
        return round((at - start) / span * width, 1)

    def y(ratio: float) -> float:
        return round((1 - ratio) * (height - 2) + 1, 1)

    segments: list[list[str]] = [[]]
    blind: list[str] = []
    for point in points:
        if point.at < start:
            continue
        if point.ratio is None:
            segments.append([])
            blind.append(
                f'<rect x="{x(point.at)}" y="0" width="{max(x(point.at + step) - x(point.at), 1)}" '
                f'height="{height}" fill="#bdbdbd"/>'
            )
        else:
            segments[-1].append(f"{x(point.at)},{y(point.ratio)}")
    lines = []
    for segment in segments:
        if len(segment) == 1:
            cx, cy = segment[0].split(",")
            lines.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="#1565c0"/>')
        elif segment:
            drawn = " ".join(segment)
            lines.append(f'<polyline points="{drawn}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
    return (
        f'<svg class="sparkline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="reachable share">'
        f'<rect width="{width}" height="{height}" fill="#f5f5f5"/>{"".join(blind)}{"".join(lines)}</svg>'
    )


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    started_at: float
    ended_at: float | None  # None: still open
    verdict: str


_TICKS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)


def timeline(bars: Sequence[Bar], start: float, end: float, width: int = 720, row: int = 18) -> str:
    """One row per bar from `start` to `end`, under at most ten ticks of UTC time."""
    label_width = 190
    plot = width - label_width
    span = max(end - start, 1.0)
    height = row * len(bars) + 20

    def x(at: float) -> float:
        return round(label_width + (min(max(at, start), end) - start) / span * plot, 1)

    parts = []
    tick = next((size for size in _TICKS if span / size <= 10), _TICKS[-1])
    fmt = "%m-%d" if tick >= 86400 else "%H:%M"
    first = start - start % tick + tick
    ticks = [first + i * tick for i in range(int((end - first) // tick) + 1)]
    for at in ticks:
        parts.append(f'<line x1="{x(at)}" y1="0" x2="{x(at)}" y2="{height - 14}" stroke="#e0e0e0"/>')
        parts.append(
            f'<text x="{x(at)}" y="{height - 3}" font-size="10" text-anchor="middle" fill="#616161">'
            f"{time.strftime(fmt, time.gmtime(at))}</text>"
        )
    for i, bar in enumerate(bars):
        top = i * row + 2
        left = x(bar.started_at)
        right = x(bar.ended_at if bar.ended_at is not None else end)
        colour = VERDICT_COLOURS.get(bar.verdict, "#9e9e9e")
        label = escape(bar.label[:30])
        bar_width = round(max(right - left, 3), 1)
        parts.append(
            f'<text x="0" y="{top + row - 6}" font-size="11" fill="#212121">{label}</text>'
            f'<rect class="bar" x="{left}" y="{top}" width="{bar_width}" height="{row - 4}" '
            f'fill="{colour}"><title>{escape(bar.label)}: {escape(bar.verdict)}</title></rect>'
        )
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="outage timeline">{"".join(parts)}</svg>'
    )
