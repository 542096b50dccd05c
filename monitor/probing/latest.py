"""The last result and failure counts of every target in the running catalog, rendered on each
scrape by monitor/serving/exposition.py, so a target removed from the catalog disappears at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from monitor.catalog.catalog import Catalog, Target
from monitor.probing.failures import Failure
from monitor.probing.result import ProbeResult

__all__ = ["LatestResults"]


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
