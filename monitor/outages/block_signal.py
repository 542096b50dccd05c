"""The end-user blocks as a second, independent signal for the verdict rows: which countries,
mobile networks, regions and networks are dark by their blocks, when such a group may open, and
when it came back. The rows (rules.py) merge these with what the targets say.

A group is dark as a sum of its cells (`darkness`); a narrower group waits until every wider
group around it was seen up, or probed all over, by its own blocks since it went dark (blocks are
probed once a round, so a country going dark shows network by network), or `settle` and three
rounds at most (the rows' wait).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from monitor.catalog.schema import AnalysisOptions, LivenessOptions
from monitor.outages.blocks import CellView, is_dark
from monitor.outages.outage import Scope

__all__ = [
    "Darkness",
    "back_at",
    "dark_countries",
    "dark_mobile",
    "dark_networks",
    "dark_regions",
    "darkness",
    "fixed_up",
    "settled",
]

_G = TypeVar("_G", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Darkness:
    """A group that is dark by its blocks, with the evidence its outage keeps."""

    cells: tuple[CellView, ...]  # its dark cells: the members the group claims
    up: int
    down: int
    baseline: float
    started_at: float

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(sorted(view.name for view in self.cells))

    @property
    def networks(self) -> set[int]:
        return {view.asn for view in self.cells}

    def evidence(self) -> dict[str, object]:
        """Blocks up, down and usually up, and the dark ones' blocks down per network."""
        down: dict[str, int] = defaultdict(int)
        for view in self.cells:
            down[f"AS{view.asn}"] += view.down
        return {
            "up": self.up,
            "down": self.down,
            "baseline": round(self.baseline, 1),
            "down_by_network": dict(sorted(down.items())),
        }


def _baseline(cells: Iterable[CellView]) -> float:
    return sum(view.baseline or 0.0 for view in cells)


def darkness(
    cells: Sequence[CellView], options: LivenessOptions, min_blocks: float | None = None
) -> Darkness | None:
    """The group of `cells` if it is dark: a baseline of at least `min_blocks` (the catalog's
    unless given) and its summed counts dark. It started when the block went down that took it
    over the threshold, and not before the last of its dark cells went dark: blocks already down
    for a narrower event (the mobile networks, one region) must not date a wider one from that
    event (or, for a group released by a wider outage, when that ended)."""
    counted = [view for view in cells if view.baseline is not None]
    baseline = _baseline(counted)
    up, down = sum(view.up for view in counted), sum(view.down for view in counted)
    least = options.min_blocks if min_blocks is None else min_blocks
    if baseline < least or not is_dark(up, down, baseline, options.dark_ratio):
        return None
    dark = tuple(view for view in counted if view.dark_since is not None)
    if not dark:
        return None  # dark only as a sum of cells none of which is yet
    went_down = sorted(since for view in counted for since in view.down_since)
    crossing = went_down[min(int((1 - options.dark_ratio) * baseline), len(went_down) - 1)]
    started = max(crossing, *(max(view.dark_since or 0.0, view.released_at or 0.0) for view in dark))
    return Darkness(dark, up, down, baseline, started)


def _watched(cells: Sequence[CellView], options: LivenessOptions) -> bool:
    """Enough baseline to tell: a group with less can be neither dark nor seen up."""
    return _baseline(cells) >= options.min_blocks


def _by(cells: Iterable[CellView], group_of: Callable[[CellView], _G | None]) -> dict[_G, list[CellView]]:
    groups: dict[_G, list[CellView]] = defaultdict(list)
    for view in cells:
        group = group_of(view)
        if group is not None:
            groups[group].append(view)
    return groups


def dark_countries(
    offered: Sequence[CellView],
    every: Sequence[CellView],
    analysis: AnalysisOptions,
    options: LivenessOptions,
) -> dict[str, Darkness]:
    """Countries dark on at least `min_asns` networks, unless it is all one region's or all the
    mobile networks' while the rest of the country is watched and not dark."""
    found = {}
    for country, cells in _by(offered, lambda view: view.country).items():
        dark = darkness(cells, options)
        if dark is None or len(dark.networks) < analysis.min_asns:
            continue
        regions = {view.region for view in dark.cells}
        if (
            len(regions) == 1
            and None not in regions
            and _rest_fine(
                [view for view in every if view.country == country and view.region not in regions], options
            )
        ):
            continue
        if all(view.network_kind == "mobile" for view in dark.cells) and fixed_up(every, country, options):
            continue
        found[country] = dark
    return found


def dark_mobile(
    offered: Sequence[CellView], analysis: AnalysisOptions, options: LivenessOptions
) -> dict[str, Darkness]:
    """Countries whose mobile networks, at least `min_asns` of them with a baseline, are each
    dark by their blocks, with `min_blocks` among them all."""
    found = {}
    mobile = _by(offered, lambda view: view.country if view.network_kind == "mobile" else None)
    for country, cells in mobile.items():
        networks = {
            asn: group for asn, group in _by(cells, lambda view: view.asn).items() if _baseline(group) > 0
        }
        if len(networks) < analysis.min_asns or not all(
            darkness(group, options, min_blocks=0) for group in networks.values()
        ):
            continue
        dark = darkness([view for group in networks.values() for view in group], options)
        if dark is not None:
            found[country] = dark
    return found


def fixed_up(every: Sequence[CellView], country: str, options: LivenessOptions) -> bool:
    """A fixed network of the country watched and not dark by its blocks."""
    fixed = _by(
        every, lambda view: view.asn if view.country == country and view.network_kind == "fixed" else None
    )
    return any(any(view.up > 0 for view in group) and _rest_fine(group, options) for group in fixed.values())


def dark_regions(
    offered: Sequence[CellView],
    every: Sequence[CellView],
    analysis: AnalysisOptions,
    options: LivenessOptions,
) -> dict[tuple[str, str], Darkness]:
    """Regions dark on at least `min_asns` networks while the rest of their country is not."""
    found = {}
    regions = _by(offered, lambda view: (view.country, view.region) if view.region is not None else None)
    for (country, region), cells in regions.items():
        dark = darkness(cells, options)
        if dark is None or len(dark.networks) < analysis.min_asns:
            continue
        if _rest_fine([view for view in every if view.country == country and view.region != region], options):
            found[(country, region)] = dark
    return found


def dark_networks(offered: Sequence[CellView], options: LivenessOptions) -> dict[tuple[str, int], Darkness]:
    found = {}
    for network, cells in _by(offered, lambda view: (view.country, view.asn)).items():
        dark = darkness(cells, options)
        if dark is not None:
            found[network] = dark
    return found


def _rest_fine(cells: Sequence[CellView], options: LivenessOptions) -> bool:
    return _watched(cells, options) and darkness(cells, options) is None


def settled(
    scope: Scope, dark: Darkness, every: Sequence[CellView], now: float, wait: float, options: LivenessOptions
) -> bool:
    """A narrower group may open once each wider group around it (its country; the mobile
    networks; its region) was seen up by its blocks since it went dark, or had every block
    probed since (its row has judged it on fresh answers), or after `wait`."""
    if now - dark.started_at >= wait:
        return True
    country = dark.cells[0].country
    wider = [[view for view in every if view.country == country]]
    if scope in (Scope.NETWORK, Scope.REGION) and all(view.network_kind == "mobile" for view in dark.cells):
        wider.append([view for view in wider[0] if view.network_kind == "mobile"])
    regions = {view.region for view in dark.cells}
    if scope is Scope.NETWORK and len(regions) == 1 and None not in regions:
        wider.append([view for view in wider[0] if view.region in regions])
    return all(
        not _watched(cells, options)
        or _up_since(cells, dark.started_at) >= options.dark_ratio * _baseline(cells)
        or _probed_since(cells, dark.started_at)
        for cells in wider
    )


def _up_since(cells: Iterable[CellView], since: float) -> int:
    """Blocks of these cells seen up at `since` or later."""
    return sum(len(view.up_times) - bisect.bisect_left(view.up_times, since) for view in cells)


def _probed_since(cells: Iterable[CellView], since: float) -> bool:
    """Every watched block of these cells was probed at `since` or later."""
    return all(not view.probed_times or view.probed_times[0] >= since for view in cells)


def back_at(cells: Iterable[CellView], started_at: float) -> float | None:
    """When the group's blocks came back: the last of its cells that went dark after `started_at`
    and is back; None when its blocks had no part in it."""
    back = [
        view.back_since for view in cells if view.back_since is not None and view.back_since >= started_at
    ]
    return max(back, default=None)
