"""The recent reachable share of each country, for the status page's sparklines.

Kept in memory since the daemon started (Prometheus keeps the long history): one point per
`step`, the worst share seen in it, so that a dip shorter than a step still shows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.outages.rules import BLIND_VERDICTS, CountryState

__all__ = ["ShareHistory", "SharePoint"]


@dataclass(slots=True)
class SharePoint:
    at: float  # the start of its step
    ratio: float | None  # None: blind or no state during the whole step


class ShareHistory:
    def __init__(self, step: float = 60.0, window: float = 6 * 3600.0) -> None:
        self.step = step
        self.window = window
        self._points: dict[str, deque[SharePoint]] = {}

    def record(self, now: float, countries: Mapping[str, CountryState]) -> None:
        bucket = now - now % self.step
        for country, summary in countries.items():
            ratio = None if summary.verdict in BLIND_VERDICTS else summary.ratio
            points = self._points.setdefault(country, deque(maxlen=int(self.window / self.step) + 1))
            if points and points[-1].at == bucket:
                last = points[-1]
                if ratio is not None and (last.ratio is None or ratio < last.ratio):
                    last.ratio = ratio
            else:
                points.append(SharePoint(bucket, ratio))
        for country in self._points.keys() - countries.keys():
            del self._points[country]

    def points(self, country: str) -> list[SharePoint]:
        return list(self._points.get(country, ()))
