"""Outages merged across vantages: which vantages saw each one, and whether they agree.

Each vantage's journal holds what it saw. An outage of the world (a site, network, region or
country) seen from several vantages at overlapping times is one merged outage; every other
vantage that could see that country then either did not see it, or was blind itself (its own
`vantage` or `self` outage overlapped it), or did not answer. Consensus is the global rules' own
(deploy/rules/global.yml): `confirmed` when at least `min_vantages` saw it and more than half of
the vantages that could tell; `partial_visibility` when fewer did (a path between some vantages and
the country broke, not the country); `single_vantage` when only one vantage could tell at all.
Outages of a vantage's own (uplink, process) are never merged: they are `own`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.outages.outage import Outage, Scope

__all__ = ["MIN_VANTAGES", "MergedOutage", "VantageOutages", "merge"]

MIN_VANTAGES = 2  # k of the global rules
_OWN_SCOPES = frozenset({Scope.VANTAGE, Scope.SELF})


@dataclass(frozen=True, slots=True)
class VantageOutages:
    """One vantage's answer: its outages and the countries it probes; or why it gave none."""

    vantage: str
    source: str  # where it was read: a URL, or "journal" / "memory" for our own
    outages: tuple[Outage, ...] = ()
    countries: frozenset[str] = frozenset()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"vantage": self.vantage, "source": self.source, "error": self.error}


@dataclass(slots=True)
class MergedOutage:
    scope: Scope
    key: str
    country: str | None
    sightings: list[Outage] = field(default_factory=list)  # each vantage's own outage, oldest first
    not_seen_by: list[str] = field(default_factory=list)  # could see the country, saw nothing
    blind: list[str] = field(default_factory=list)  # could not see for part of it (own outage)
    unavailable: list[str] = field(default_factory=list)  # did not answer
    consensus: str = ""

    @property
    def seen_by(self) -> list[str]:
        return sorted({outage.vantage for outage in self.sightings})

    @property
    def first_seen(self) -> float:
        return min(outage.started_at for outage in self.sightings)

    @property
    def last_seen(self) -> float | None:
        """When the last vantage saw it end; None while any of them still sees it."""
        ends = [outage.ended_at for outage in self.sightings]
        return None if None in ends else max(end for end in ends if end is not None)

    def as_dict(self, sighting: Callable[[Outage], dict[str, Any]] = Outage.as_dict) -> dict[str, Any]:
        """`sighting` writes each vantage's outage (the API's public view counts its targets)."""
        return {
            "scope": self.scope.value,
            "key": self.key,
            "country": self.country,
            "consensus": self.consensus,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "seen_by": self.seen_by,
            "not_seen_by": self.not_seen_by,
            "blind": self.blind,
            "unavailable": self.unavailable,
            "sightings": [sighting(outage) for outage in self.sightings],
        }


def merge(answers: Sequence[VantageOutages], min_vantages: int = MIN_VANTAGES) -> list[MergedOutage]:
    """The outages of every answering vantage, merged; newest first."""
    answered = [answer for answer in answers if answer.error is None]
    unavailable = sorted(answer.vantage for answer in answers if answer.error is not None)
    own: dict[str, list[Outage]] = {
        answer.vantage: [outage for outage in answer.outages if outage.scope in _OWN_SCOPES]
        for answer in answered
    }
    merged = []
    for scope_key, outages in _by_scope_key(answered).items():
        if scope_key[0] in _OWN_SCOPES:
            merged += [_own(outage) for outage in outages]
            continue
        for cluster in _overlapping(outages):
            entry = MergedOutage(scope_key[0], scope_key[1], cluster[0].country, sightings=cluster)
            _judge(entry, answered, own, unavailable, min_vantages)
            merged.append(entry)
    return sorted(merged, key=lambda entry: entry.first_seen, reverse=True)


def _by_scope_key(answered: Iterable[VantageOutages]) -> dict[tuple[Scope, str], list[Outage]]:
    grouped: dict[tuple[Scope, str], list[Outage]] = {}
    for answer in answered:
        for outage in answer.outages:
            if outage.absorbed_by is None:  # a part of a wider outage of that vantage: in its context
                grouped.setdefault((outage.scope, outage.key), []).append(outage)
    return grouped


def _end(outage: Outage) -> float:
    return math.inf if outage.ended_at is None else outage.ended_at


def _overlapping(outages: list[Outage]) -> list[list[Outage]]:
    """Sweep by start time: an outage that starts before the cluster's latest end joins it."""
    clusters: list[list[Outage]] = []
    cluster_end = -math.inf
    for outage in sorted(outages, key=lambda outage: outage.started_at):
        if clusters and outage.started_at <= cluster_end:
            clusters[-1].append(outage)
        else:
            clusters.append([outage])
            cluster_end = -math.inf
        cluster_end = max(cluster_end, _end(outage))
    return clusters


def _overlaps(outage: Outage, start: float, end: float) -> bool:
    return outage.started_at <= end and _end(outage) >= start


def _judge(
    entry: MergedOutage,
    answered: Sequence[VantageOutages],
    own: dict[str, list[Outage]],
    unavailable: list[str],
    min_vantages: int,
) -> None:
    start, end = entry.first_seen, max(_end(outage) for outage in entry.sightings)
    seen = set(entry.seen_by)
    for answer in answered:
        if answer.vantage in seen or (entry.country is not None and entry.country not in answer.countries):
            continue
        if any(_overlaps(outage, start, end) for outage in own[answer.vantage]):
            entry.blind.append(answer.vantage)
        else:
            entry.not_seen_by.append(answer.vantage)
    entry.unavailable = list(unavailable)
    voting = len(seen) + len(entry.not_seen_by)
    if len(seen) >= min_vantages and 2 * len(seen) > voting:
        entry.consensus = "confirmed"
    elif voting >= 2:
        entry.consensus = "partial_visibility"
    else:
        entry.consensus = "single_vantage"


def _own(outage: Outage) -> MergedOutage:
    return MergedOutage(outage.scope, outage.key, outage.country, sightings=[outage], consensus="own")
