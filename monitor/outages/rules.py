"""The verdict model as a rule table: a pure function from one snapshot of target states to the
outages that should be open now and the cause of every dark target.

`RULES` has one row per scope, highest first. The vantage gate and our own health sit in front:
while we cannot see out, the rows below are frozen (nothing opens or closes). A target a row
claims (its group is dark) is not offered to the rows below it; its cause is that row's outage.

One dating convention for every row: an outage starts at the first failed probe of the member
whose failure took the group over its threshold, and ends at the first successful probe of the
member whose recovery brought it back.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from monitor.catalog.schema import AnalysisOptions, LivenessOptions
from monitor.outages import block_signal
from monitor.outages.block_signal import Darkness
from monitor.outages.blocks import CellView
from monitor.outages.outage import SCOPE_VERDICT, Scope
from monitor.outages.state import Health
from monitor.probing.result import ResolverAnswer

__all__ = [
    "BLIND_VERDICTS",
    "COUNTRY_STATES",
    "RULES",
    "VERDICTS",
    "CauseKind",
    "CountryState",
    "OutageKey",
    "Rule",
    "Snapshot",
    "TargetView",
    "Verdict",
    "Wanted",
    "covers",
    "judge",
]

OutageKey = tuple[Scope, str]
COUNTRY_STATES = ("normal", "degraded", "shutdown", "unknown")
# A country's one verdict at a time (monitor_country_verdict), widest first: the gates, then the
# verdict of its widest outage, else normal (or unknown before any target has a state).
VERDICTS = (
    "self",
    "vantage",
    "unknown",
    "full",
    "whitelist",
    "regional",
    "mobile_only",
    "network",
    "throttled",
    "dns_tampering",
    "site",
    "normal",
)
# the verdicts that say nothing about the country: we cannot see it (yet)
BLIND_VERDICTS = ("self", "vantage", "unknown")
VANTAGE: OutageKey = (Scope.VANTAGE, "vantage")
# the rows whose end gives their targets a fresh start
_RELEASING = (Scope.COUNTRY, Scope.REGION, Scope.MOBILE, Scope.NETWORK)
SELF: OutageKey = (Scope.SELF, "self")
_NAMED_SURVIVORS = 50  # a whitelist's evidence names this many of its survivors, and counts them all
# Which outages a wider one takes over when it claims all their members (the book absorbs them).
_WIDER = {
    Scope.SITE: (Scope.NETWORK, Scope.MOBILE, Scope.REGION, Scope.COUNTRY),
    Scope.NETWORK: (Scope.MOBILE, Scope.REGION, Scope.COUNTRY),
    Scope.MOBILE: (Scope.COUNTRY,),
    Scope.REGION: (Scope.MOBILE, Scope.COUNTRY),  # all of a region's dark ones on mobile networks
}


@dataclass(frozen=True, slots=True)
class TargetView:
    """One target as the rules see it, at the snapshot's time."""

    name: str
    country: str
    asn: int | None
    control: bool
    category: str
    health: Health
    failing: int  # failed probes in a row
    run_started_at: float | None  # first probe of the current run of failures or successes
    last_up_at: float | None
    state_since: float | None = None  # when it went down or came up (first probe of that run)
    flapping_since: float | None = None
    explained_by: OutageKey | None = None  # its cause at the last verdict (open or settling)
    released_at: float | None = None  # when the wider outage that explained it ended
    released_from: OutageKey | None = None
    kind: str = "http"  # of probe: only URL targets can show throttling
    region: str | None = None
    network_kind: str | None = None  # mobile, fixed, hosting, transit (the catalog's networks:)
    slow_since: float | None = None  # up but slow against its own baseline, since
    normal_since: float | None = None  # back to its usual speed, since
    speed: tuple[float, float] | None = None  # (baseline median, latest) probe seconds
    tampered_since: float | None = None  # its resolvers disagree, since
    clean_since: float | None = None  # they agree again, since
    dns_answers: tuple[ResolverAnswer, ...] = ()  # the disagreeing answers

    @property
    def dark_since(self) -> float | None:
        """Start of the current dark period for narrower rows: down, or flapping."""
        if self.flapping_since is not None:
            return self.flapping_since
        return self.state_since if self.health is Health.DOWN else None

    @property
    def recovered_at(self) -> float | None:
        """First successful probe of the current run of successes, when up and not flapping (a
        target dark for a group may have failed too few times to be down: its state is older)."""
        if self.health is Health.UP and self.failing == 0 and self.flapping_since is None:
            return self.run_started_at
        return None

    @property
    def group_dark_since(self) -> float | None:
        """Start of its darkness for the country and network rows, which also count targets
        failing but not down yet."""
        return self.state_since if self.health is Health.DOWN else self.run_started_at


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    targets: tuple[TargetView, ...]
    open_since: Mapping[OutageKey, float]  # start of each outage open now
    options: AnalysisOptions
    settle: float
    recovery_grace: float
    vantage_online: bool = True
    vantage_changed_at: float = 0.0  # start of the current online or offline period
    blind_since: float | None = None  # our own event loop: start of the current blind spell
    last_stall_at: float | None = None  # end of our event loop's latest stall
    warm_at: float = 0.0  # before this, states are too young to open or close anything
    cells: tuple[CellView, ...] = ()  # the end-user blocks, per country, network and region
    liveness: LivenessOptions = field(default_factory=LivenessOptions)


@dataclass(frozen=True, slots=True)
class Wanted:
    scope: Scope
    key: str
    started_at: float
    members: tuple[str, ...]
    country: str | None = None
    asn: int | None = None
    verdict: str = ""  # "whitelist" or "full" for a country; empty: the scope's, or as it was
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outage_key(self) -> OutageKey:
        return (self.scope, self.key)


class CauseKind(StrEnum):
    OPEN = "open"  # the outage is open (or opens with this verdict)
    PENDING = "pending"  # the group is dark, its outage waits for `settle`
    RECOVERING = "recovering"  # its outage ended; the target gets `recovery_grace` to come back


@dataclass(slots=True)
class CountryState:
    state: str = "unknown"
    ratio: float | None = None
    counted: int = 0
    down: int = 0
    by_category: dict[str, float] | None = None
    by_region: dict[str, float] = field(default_factory=dict)  # up share of each region's counted
    by_network_kind: dict[str, float] = field(default_factory=dict)  # ... of each kind of network
    verdict: str = "unknown"  # one of VERDICTS


@dataclass(slots=True)
class Verdict:
    wanted: dict[OutageKey, Wanted] = field(default_factory=dict)
    ended_at: dict[OutageKey, float] = field(default_factory=dict)  # for open ones no longer wanted
    cause: dict[str, tuple[OutageKey, CauseKind]] = field(default_factory=dict)
    released: dict[str, tuple[float, OutageKey]] = field(default_factory=dict)  # explanations ended now
    countries: dict[str, CountryState] = field(default_factory=dict)
    frozen: bool = False  # blind or warming up: outages below the gate neither open nor close


@dataclass(frozen=True, slots=True)
class Group:
    """A dark group found by a row: its claimed members, its start, whether it may open yet."""

    wanted: Wanted
    settled: bool


RowFn = Callable[[Snapshot, Sequence[TargetView], Verdict, "SeenUp"], list[Group]]
EndFn = Callable[[Snapshot, OutageKey, float, Mapping[str, TargetView]], float | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table; the texts are the README's "Outage states" table, word for word.
    Rows of one `family` offer what they leave to the next; each family starts from every target
    the darkness rows did not claim (a slow target is up: never dark, never down)."""

    scope: Scope
    who: str
    member_dark: str
    threshold: str
    settle: str
    verdict: str
    find: RowFn
    recovered: EndFn
    family: str = "dark"


def covers(wider: OutageKey, narrower: OutageKey) -> bool:
    """Whether an outage of `wider` takes over one of `narrower` that it claims all members of."""
    if wider[0] is Scope.THROTTLING and narrower[0] is Scope.THROTTLING:
        return narrower[1].startswith(wider[1] + "/")  # a country's throttling covers its networks'
    return wider[0] in _WIDER.get(narrower[0], ())


# -- the rows ------------------------------------------------------------------------------------


def _reachable_for(snapshot: Snapshot, view: TargetView, key: OutageKey) -> bool:
    """Normally reachable at the reference time: the start of the group's open outage, or now
    (a shutdown lasting days keeps counting the targets that were up when it began)."""
    reference = snapshot.open_since.get(key, snapshot.now)
    return _normally_reachable(view, reference, snapshot.options.baseline_window)


def _normally_reachable(view: TargetView, reference: float, window: float) -> bool:
    if view.health is Health.UP:
        return True
    return view.last_up_at is not None and view.last_up_at >= reference - window


def _dark_for_group(view: TargetView, options: AnalysisOptions) -> bool:
    """Several targets failing together corroborate each other: a group needs fewer repeats."""
    return view.health is Health.DOWN or view.failing >= options.group_down_after


def _country_members(snapshot: Snapshot, views: Iterable[TargetView]) -> dict[str, list[TargetView]]:
    members: dict[str, list[TargetView]] = defaultdict(list)
    for view in views:
        known = view.health is not Health.UNKNOWN or _dark_for_group(view, snapshot.options)
        if known and _reachable_for(snapshot, view, (Scope.COUNTRY, view.country)):
            members[view.country].append(view)
    return members


def _control_up_share(snapshot: Snapshot) -> float:
    controls = [view for view in snapshot.targets if view.control]
    if not controls:
        return 1.0
    return sum(1 for view in controls if view.health is Health.UP) / len(controls)


def _kth(times: Iterable[float], k: int) -> float | None:
    ordered = sorted(times)
    return ordered[min(max(k, 1), len(ordered)) - 1] if ordered else None


def _find_countries(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    control_share = _control_up_share(snapshot)
    members = _country_members(snapshot, offered)
    groups = []
    cells = _offered_cells(snapshot, verdict)
    by_blocks = block_signal.dark_countries(cells, snapshot.cells, snapshot.options, snapshot.liveness)
    for country in sorted({view.country for view in offered} | set(by_blocks)):
        counted = members.get(country, [])
        dark = [view for view in counted if _dark_for_group(view, snapshot.options)]
        summary = verdict.countries[country] = _country_state(snapshot, counted, dark, control_share)
        if summary.state == "shutdown" and _one_region_dark(snapshot, counted, dark):
            summary.state = "degraded"  # the region's outage, not the country's
        elif summary.state == "shutdown":
            crossing = len(counted) - int(snapshot.options.shutdown_ratio * len(counted))
            groups.append(Group(_country_wanted(snapshot, country, counted, dark, crossing), settled=True))
        elif (
            summary.state == "unknown"
            and country not in by_blocks
            and (key := (Scope.COUNTRY, country)) in snapshot.open_since
        ):
            # No target has a state yet (a restart): no evidence either way, the outage stays.
            wanted = Wanted(Scope.COUNTRY, country, snapshot.open_since[key], (), country=country)
            groups.append(Group(wanted, settled=True))
        if country in by_blocks and snapshot.vantage_online:
            summary.state = "shutdown"  # its people are cut off, whatever its sites say

    def by_blocks_only(key: OutageKey, darkness: Darkness) -> Wanted:
        counted = members.get(key[1], [])
        dark = [view for view in counted if _dark_for_group(view, snapshot.options)]
        return _country_wanted(snapshot, key[1], counted, dark, None, darkness.started_at)

    found = {(Scope.COUNTRY, country): darkness for country, darkness in by_blocks.items()}
    return _with_blocks(snapshot, cells, groups, found, by_blocks_only)


def _country_wanted(
    snapshot: Snapshot,
    country: str,
    counted: Sequence[TargetView],
    dark: Sequence[TargetView],
    crossing: int | None,
    started: float | None = None,
) -> Wanted:
    """A country dark by its targets (from the `crossing`th of them), or by its blocks since
    `started`; `full` or `whitelist` by what its targets say."""
    if started is None:
        started = (
            _kth((view.group_dark_since or snapshot.now for view in dark), crossing or 1) or snapshot.now
        )
    # survivors are judged against the outage's own start once it is open: the dark members'
    # start moves later when one of them flickers back (a region's restore-then-cut)
    began = snapshot.open_since.get((Scope.COUNTRY, country), started)
    return Wanted(
        Scope.COUNTRY,
        country,
        started,
        tuple(sorted(view.name for view in dark)),
        country=country,
        **_full_or_whitelist(snapshot, counted, dark, began),
    )


def _full_or_whitelist(
    snapshot: Snapshot, counted: Sequence[TargetView], dark: Sequence[TargetView], started: float
) -> dict[str, Any]:
    """`whitelist` when at least `whitelist_min` targets were seen up since the shutdown began
    (a name that resolves is no sign of a site reachable, so not `dns:` targets), each up since
    before it began or for `recovery_grace` (a restoration coming back site by site is none);
    undecided ("", the verdict stays as it was) while a target is neither dark nor seen since."""
    dark_names = {view.name for view in dark}
    seen = [
        view
        for view in counted
        if view.kind != "dns"
        and view.name not in dark_names
        and view.recovered_at is not None
        and (view.last_up_at or 0.0) >= started
    ]
    survivors = sorted(
        view.name
        for view in seen
        if view.recovered_at is not None
        and (view.recovered_at <= started or snapshot.now - view.recovered_at >= snapshot.recovery_grace)
    )
    decided = dark_names | {view.name for view in seen}
    undecided = any(view.name not in decided and view.kind != "dns" for view in counted)
    verdict = "" if undecided else "whitelist" if len(survivors) >= snapshot.options.whitelist_min else "full"
    details = {"survivors": survivors[:_NAMED_SURVIVORS], "survivors_total": len(survivors)}
    return {"verdict": verdict, "details": {**details, **_extent(dark)}}


def _extent(dark: Sequence[TargetView]) -> dict[str, Any]:
    """The regions and networks a dark group spans, with how many of its targets in each."""
    regions = Counter(view.region for view in dark if view.region is not None)
    networks = Counter(f"AS{view.asn}" for view in dark if view.asn is not None)
    return {"regions": dict(sorted(regions.items())), "networks": dict(sorted(networks.items()))}


def _one_region_dark(snapshot: Snapshot, counted: Sequence[TargetView], dark: Sequence[TargetView]) -> bool:
    """The dark targets all in one region while at least `min_targets` elsewhere in the country
    answer: that is the region's outage, not the country's."""
    regions = {view.region for view in dark}
    if len(regions) != 1 or None in regions:
        return False
    elsewhere = [view for view in counted if view.region not in regions]
    return len(elsewhere) >= snapshot.options.min_targets


def _share_dark(counted: Sequence[TargetView], dark: Sequence[TargetView], options: AnalysisOptions) -> bool:
    """The country's threshold, for any group of it: up share at most `shutdown_ratio`, at least
    `min_targets` counted, the dark ones on at least `min_asns` networks."""
    return (
        len(counted) >= options.min_targets
        and (len(counted) - len(dark)) / len(counted) <= options.shutdown_ratio
        and len({view.asn for view in dark}) >= options.min_asns
    )


def _country_state(
    snapshot: Snapshot, counted: Sequence[TargetView], dark: Sequence[TargetView], control_share: float
) -> CountryState:
    if not counted or not snapshot.vantage_online:
        return CountryState("unknown", None, len(counted), len(dark))
    options = snapshot.options
    share = (len(counted) - len(dark)) / len(counted)
    ratio = min(1.0, share / control_share) if control_share > 0 else share
    if (
        ratio <= options.shutdown_ratio
        and len(counted) >= options.min_targets
        and len({view.asn for view in dark}) >= options.min_asns
    ):
        state = "shutdown"
    elif ratio <= options.degraded_ratio:
        state = "degraded"
    else:
        state = "normal"
    by_category, by_region, by_kind = _up_shares(counted, dark)
    return CountryState(state, ratio, len(counted), len(dark), by_category, by_region, by_kind)


def _country_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    counted = _country_members(snapshot, (v for v in views.values() if v.country == key[1] and not v.control))
    return _share_back(snapshot, counted.get(key[1], []), started_at)


_Group = TypeVar("_Group", tuple[str, int], tuple[str, str], str)


def _candidates(
    snapshot: Snapshot,
    offered: Sequence[TargetView],
    group_of: Callable[[TargetView], _Group | None],
    outage_key: Callable[[_Group], OutageKey],
    min_networks: int,
) -> dict[_Group, list[TargetView]]:
    """The normally reachable members of each group (`group_of`; None: in no group) that has dark
    members on at least `min_networks` networks: only those can be dark, and a verdict over
    10,000 targets costs the other groups one pass."""
    dark: dict[_Group, set[int | None]] = defaultdict(set)
    for view in offered:
        group = group_of(view)
        if group is not None and _dark_for_group(view, snapshot.options):
            dark[group].add(view.asn)
    wanted = {group for group, asns in dark.items() if len(asns) >= min_networks}
    members: dict[_Group, list[TargetView]] = defaultdict(list)
    for view in offered if wanted else ():
        group = group_of(view)
        if group is not None and group in wanted and _reachable_for(snapshot, view, outage_key(group)):
            members[group].append(view)
    return members


def _find_networks(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    networks = _candidates(
        snapshot,
        offered,
        lambda view: (view.country, view.asn) if view.asn is not None else None,
        lambda network: _network_key(*network),
        min_networks=1,
    )
    groups = []
    for (country, asn), members in sorted(networks.items()):
        if len(members) < snapshot.options.min_network_targets or not all(
            _dark_for_group(view, snapshot.options) for view in members
        ):
            continue
        started = max(_dark_start(view) for view in members)
        wanted = Wanted(
            Scope.NETWORK,
            _network_key(country, asn)[1],
            started,
            tuple(sorted(view.name for view in members)),
            country=country,
            asn=asn,
        )
        groups.append(Group(wanted, settled=_settled(snapshot, Scope.NETWORK, members, seen)))
    cells = _offered_cells(snapshot, verdict)
    found = {
        _network_key(*network): darkness
        for network, darkness in block_signal.dark_networks(cells, snapshot.liveness).items()
    }

    def by_blocks_only(key: OutageKey, darkness: Darkness) -> Wanted:
        country, asn = darkness.cells[0].country, darkness.cells[0].asn
        dark = _dark_targets(snapshot, offered, lambda view: view.country == country and view.asn == asn)
        return Wanted(Scope.NETWORK, key[1], darkness.started_at, _names(dark), country=country, asn=asn)

    return _with_blocks(snapshot, cells, groups, found, by_blocks_only)


def _network_key(country: str, asn: int) -> OutageKey:
    return (Scope.NETWORK, f"{country}/AS{asn}")


def _network_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    country, _, asn = key[1].partition("/AS")
    back = [
        view.recovered_at
        for view in views.values()
        if view.country == country and str(view.asn) == asn and view.recovered_at is not None
    ]
    return min(back, default=None)


def _offered_cells(snapshot: Snapshot, verdict: Verdict) -> list[CellView]:
    """The cells no wider row claimed or holds."""
    return [view for view in snapshot.cells if view.name not in verdict.cause]


def _dark_targets(
    snapshot: Snapshot, offered: Sequence[TargetView], member: Callable[[TargetView], bool]
) -> list[TargetView]:
    return [view for view in offered if member(view) and _dark_for_group(view, snapshot.options)]


def _names(views: Iterable[TargetView]) -> tuple[str, ...]:
    return tuple(sorted(view.name for view in views))


def _with_blocks(
    snapshot: Snapshot,
    cells: Sequence[CellView],
    groups: list[Group],
    by_blocks: Mapping[OutageKey, Darkness],
    by_blocks_only: Callable[[OutageKey, Darkness], Wanted],
) -> list[Group]:
    """A row's groups with the blocks as a second signal: a group dark by its targets, its blocks
    or both (`signals`; both: confirmed), claiming its dark targets and its dark cells (`cells`:
    those offered to the row) whichever signal showed it, dated by its targets when they show it
    (probed every interval, not once a round), else by its blocks, settled when either signal is."""
    if not snapshot.cells:
        return groups
    wait = snapshot.settle + 3 * snapshot.liveness.round  # a round runs long while blocks time out
    by_targets = {group.wanted.outage_key: group for group in groups}
    merged = []
    for key in sorted({*by_targets, *by_blocks}):
        group, darkness = by_targets.get(key), by_blocks.get(key)
        signals = [name for name, seen in (("blocks", darkness), ("targets", group)) if seen is not None]
        if darkness is None:
            assert group is not None
            dark_cells = [view.name for view in _cells_of(key, cells) if view.dark_since is not None]
            wanted = replace(group.wanted, members=tuple(sorted({*group.wanted.members, *dark_cells})))
            settled = group.settled
        else:
            blocks_settled = key[0] is Scope.COUNTRY or block_signal.settled(
                key[0], darkness, snapshot.cells, snapshot.now, wait, snapshot.liveness
            )
            wanted = by_blocks_only(key, darkness) if group is None else group.wanted
            wanted = replace(wanted, members=tuple(sorted({*wanted.members, *darkness.members})))
            settled = blocks_settled or (group is not None and group.settled)
        details = {**wanted.details, "signals": signals}
        if darkness is not None:
            details["blocks"] = darkness.evidence()
        merged.append(Group(replace(wanted, details=details), settled))
    return merged


def _cells_of(key: OutageKey, cells: Iterable[CellView]) -> list[CellView]:
    """The cells of a country, mobile, region or network outage's group."""
    country, _, rest = key[1].partition("/")
    member: Callable[[CellView], bool] = {
        Scope.COUNTRY: lambda view: True,
        Scope.MOBILE: lambda view: view.network_kind == "mobile",
        Scope.REGION: lambda view: view.region == rest,
        Scope.NETWORK: lambda view: f"AS{view.asn}" == rest,
    }.get(key[0], lambda view: False)
    return [view for view in cells if view.country == country and member(view)]


def _find_sites(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    groups = []
    for view in offered:
        key = (Scope.SITE, view.name)
        if view.dark_since is None or not _reachable_for(snapshot, view, key):
            continue
        wanted = Wanted(
            Scope.SITE, view.name, _dark_start(view), (view.name,), country=view.country, asn=view.asn
        )
        groups.append(Group(wanted, settled=_settled(snapshot, Scope.SITE, [view], seen)))
    return groups


def _site_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    view = views.get(key[1])
    return view.recovered_at if view is not None else None


def _find_regions(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    regions = _candidates(
        snapshot,
        offered,
        lambda view: (view.country, view.region) if view.region is not None else None,
        lambda region: _region_key(*region),
        min_networks=snapshot.options.min_asns,
    )
    groups = []
    options = snapshot.options
    for (country, region), counted in sorted(regions.items()):
        dark = [view for view in counted if _dark_for_group(view, options)]
        if not _share_dark(counted, dark, options) or not _rest_of_country_up(snapshot, country, region):
            continue
        crossing = len(counted) - int(snapshot.options.shutdown_ratio * len(counted))
        wanted = Wanted(
            Scope.REGION,
            _region_key(country, region)[1],
            _kth((_dark_start(view) for view in dark), crossing) or snapshot.now,
            tuple(sorted(view.name for view in dark)),
            country=country,
            details={"region": region, **_extent(dark)},
        )
        groups.append(Group(wanted, settled=_settled(snapshot, Scope.REGION, dark, seen)))
    cells = _offered_cells(snapshot, verdict)
    found = {
        _region_key(*region): darkness
        for region, darkness in block_signal.dark_regions(
            cells, snapshot.cells, options, snapshot.liveness
        ).items()
    }

    def by_blocks_only(key: OutageKey, darkness: Darkness) -> Wanted:
        country, region = darkness.cells[0].country, darkness.cells[0].region
        dark = _dark_targets(
            snapshot, offered, lambda view: view.country == country and view.region == region
        )
        return Wanted(
            Scope.REGION,
            key[1],
            darkness.started_at,
            _names(dark),
            country=country,
            details={"region": region, **_extent(dark)},
        )

    return _with_blocks(snapshot, cells, groups, found, by_blocks_only)


def _region_key(country: str, region: str) -> OutageKey:
    return (Scope.REGION, f"{country}/{region}")


def _rest_of_country_up(snapshot: Snapshot, country: str, region: str) -> bool:
    """At least `min_targets` of the country outside the region, and most of them up."""
    rest = [
        view
        for view in snapshot.targets
        if view.country == country
        and view.region != region
        and not view.control
        and view.health is not Health.UNKNOWN
        and _normally_reachable(view, snapshot.now, snapshot.options.baseline_window)
    ]
    up = sum(1 for view in rest if not _dark_for_group(view, snapshot.options))
    return len(rest) >= snapshot.options.min_targets and up > snapshot.options.shutdown_ratio * len(rest)


def _region_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    country, _, region = key[1].partition("/")
    members = [
        view
        for view in views.values()
        if view.country == country and view.region == region and _reachable_for(snapshot, view, key)
    ]
    return _share_back(snapshot, members, started_at)


def _share_back(snapshot: Snapshot, members: Sequence[TargetView], started_at: float) -> float | None:
    """When more than `shutdown_ratio` of the members were back: the group's end."""
    back = [max(view.recovered_at, started_at) for view in members if view.recovered_at is not None]
    return _kth(back, int(snapshot.options.shutdown_ratio * len(members)) + 1)


def _find_mobile(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    mobile = _candidates(
        snapshot,
        offered,
        lambda view: view.country if view.network_kind == "mobile" else None,
        _mobile_key,
        min_networks=snapshot.options.min_asns,
    )
    groups = []
    for country, members in sorted(mobile.items()):
        if (
            len({view.asn for view in members}) < snapshot.options.min_asns
            or not all(_dark_for_group(view, snapshot.options) for view in members)
            or not _fixed_network_up(snapshot, country)
        ):
            continue
        wanted = Wanted(
            Scope.MOBILE,
            _mobile_key(country)[1],
            max(_dark_start(view) for view in members),
            tuple(sorted(view.name for view in members)),
            country=country,
            details=_extent(members),
        )
        groups.append(Group(wanted, settled=_settled(snapshot, Scope.MOBILE, members, seen)))
    cells = _offered_cells(snapshot, verdict)
    found = {
        _mobile_key(country): darkness
        for country, darkness in block_signal.dark_mobile(cells, snapshot.options, snapshot.liveness).items()
        if _fixed_network_up(snapshot, country)
        or block_signal.fixed_up(snapshot.cells, country, snapshot.liveness)
    }

    def by_blocks_only(key: OutageKey, darkness: Darkness) -> Wanted:
        country = darkness.cells[0].country
        dark = _dark_targets(
            snapshot, offered, lambda view: view.country == country and view.network_kind == "mobile"
        )
        return Wanted(
            Scope.MOBILE, key[1], darkness.started_at, _names(dark), country=country, details=_extent(dark)
        )

    return _with_blocks(snapshot, cells, groups, found, by_blocks_only)


def _mobile_key(country: str) -> OutageKey:
    return (Scope.MOBILE, f"{country}/mobile")


def _fixed_network_up(snapshot: Snapshot, country: str) -> bool:
    return any(
        view.country == country and view.network_kind == "fixed" and view.recovered_at is not None
        for view in snapshot.targets
    )


def _mobile_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    country = key[1].partition("/")[0]
    back = [
        view.recovered_at
        for view in views.values()
        if view.country == country and view.network_kind == "mobile" and view.recovered_at is not None
    ]
    return min(back, default=None)


def _find_throttling(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    """Slow but up, against each target's own baseline: a country when most of its answering
    targets on several networks are slow, else each network all of whose answering targets are."""
    options = snapshot.options
    if not any(view.slow_since is not None for view in offered) or _controls_slow(snapshot):
        return []  # nothing slow, or our own uplink is slow: nothing about the world
    answering = [
        view
        for view in offered
        if view.kind == "http" and view.speed is not None and view.recovered_at is not None
    ]
    groups = []
    claimed: set[str] = set()
    by_country: dict[str, list[TargetView]] = defaultdict(list)
    for view in answering:
        by_country[view.country].append(view)
    for country, views in sorted(by_country.items()):
        slow = [view for view in views if view.slow_since is not None]
        if not _share_dark(views, slow, options):
            continue
        crossing = len(views) - int(options.shutdown_ratio * len(views))
        started = _kth((view.slow_since or snapshot.now for view in slow), crossing) or snapshot.now
        groups.append(Group(_throttled(country, started, slow), settled=True))
        claimed.update(view.name for view in slow)
    networks: dict[tuple[str, int], list[TargetView]] = defaultdict(list)
    for view in answering:
        if view.asn is not None and view.name not in claimed:
            networks[(view.country, view.asn)].append(view)
    for (country, asn), views in sorted(networks.items()):
        if len(views) >= options.min_network_targets and all(view.slow_since is not None for view in views):
            started = max(view.slow_since or snapshot.now for view in views)
            groups.append(Group(_throttled(f"{country}/AS{asn}", started, views, asn), settled=True))
    return groups


def _throttled(key: str, started: float, slow: Sequence[TargetView], asn: int | None = None) -> Wanted:
    return Wanted(
        Scope.THROTTLING,
        key,
        started,
        tuple(sorted(view.name for view in slow)),
        country=key.partition("/")[0],
        asn=asn,
        details={
            "seconds": {
                view.name: {"baseline": round(view.speed[0], 3), "latest": round(view.speed[1], 3)}
                for view in slow
                if view.speed is not None
            },
            **_extent(slow),
        },
    )


def _controls_slow(snapshot: Snapshot) -> bool:
    controls = [view for view in snapshot.targets if view.control and view.speed is not None]
    return bool(controls) and 2 * sum(1 for view in controls if view.slow_since is not None) >= len(controls)


def _throttling_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    country, _, network = key[1].partition("/")
    members = [  # those the row judges: URL targets that answer
        view
        for view in views.values()
        if view.country == country
        and not view.control
        and view.kind == "http"
        and view.recovered_at is not None
        and (not network or f"AS{view.asn}" == network)
    ]
    # not slow now: back when it turned normal, or all along for one that never was slow
    back = [max(view.normal_since or started_at, started_at) for view in members if view.slow_since is None]
    if network:
        return min(back, default=None)
    return _kth(back, int(snapshot.options.shutdown_ratio * len(members)) + 1)


def _find_dns_tampering(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    tampered: dict[str, list[TargetView]] = defaultdict(list)
    for view in offered:
        if view.tampered_since is not None:
            tampered[view.country].append(view)
    groups = []
    for country, views in sorted(tampered.items()):
        wanted = Wanted(
            Scope.DNS,
            country,
            min(view.tampered_since or snapshot.now for view in views),
            tuple(sorted(view.name for view in views)),
            country=country,
            details={
                "answers": {
                    view.name: [
                        {
                            "resolver": answer.resolver,
                            "rcode": answer.rcode,
                            "addresses": list(answer.addresses),
                            "failure": answer.failure.value if answer.failure else None,
                        }
                        for answer in view.dns_answers
                    ]
                    for view in views
                }
            },
        )
        groups.append(Group(wanted, settled=True))
    return groups


def _dns_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    """When the last of its names was answered consistently again."""
    clean = [view.clean_since for view in views.values() if view.country == key[1] and view.clean_since]
    return max(clean, default=None)


def _dark_start(view: TargetView) -> float:
    """A target released by a wider outage is dark for narrower rows from that outage's end on:
    each stretch of failure belongs to one outage."""
    dark_since = view.flapping_since if view.flapping_since is not None else view.group_dark_since
    return max(dark_since or 0.0, view.released_at or 0.0)


def _settled(snapshot: Snapshot, scope: Scope, members: Sequence[TargetView], seen: SeenUp) -> bool:
    """Long enough for a wider event to show: the wider groups around have been seen up since,
    or `settle` has passed (when there is nobody to be seen)."""
    since = max(_dark_start(view) for view in members)
    return snapshot.now - since >= snapshot.settle or seen.rules_out_wider(scope, members, since)


class SeenUp:
    """Who has been seen up since when, per group (country, region, the mobile networks, network),
    built once per verdict: a narrower outage may open as soon as every wider group around it was
    seen up after it went dark (a probe that started after a cut fails), instead of waiting
    `settle` blindly."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.options = snapshot.options
        self.counted: Counter[_GroupKey] = Counter()
        self.up_at: dict[_GroupKey, list[float]] = defaultdict(list)
        self.networks: dict[_GroupKey, set[int | None]] = defaultdict(set)
        self._built = False

    def _build(self) -> None:
        """On first use: most verdicts have nothing settling and never need it."""
        self._built = True
        snapshot = self.snapshot
        for view in snapshot.targets:
            if view.control or not _normally_reachable(view, snapshot.now, self.options.baseline_window):
                continue
            for key in _groups_of(view):
                self.counted[key] += 1
                self.networks[key].add(view.asn)
                if view.health is Health.UP and view.failing == 0 and view.last_up_at is not None:
                    self.up_at[key].append(view.last_up_at)
        for times in self.up_at.values():
            times.sort()

    def _up_since(self, key: _GroupKey, since: float) -> int:
        times = self.up_at.get(key, [])
        return len(times) - bisect.bisect_left(times, since)

    def rules_out_wider(self, scope: Scope, members: Sequence[TargetView], since: float) -> bool:
        """Every group wider than `scope` that holds all the members was seen up since `since`."""
        if not self._built:
            self._build()
        options = self.options
        shared = set.intersection(*(set(_groups_of(view)) for view in members))
        for key in shared:
            if _GROUP_SCOPE[key[0]] not in _WIDER.get(scope, ()):
                continue
            counted, up = self.counted[key], self._up_since(key, since)
            if key[0] in ("country", "region"):  # their own threshold: most of them dark
                fine = (
                    counted < options.min_targets
                    or len(self.networks[key]) < options.min_asns
                    or up > options.shutdown_ratio * counted
                )
            elif key[0] == "mobile":
                fine = len(self.networks[key]) < options.min_asns or up >= 1
            else:
                fine = counted < options.min_network_targets or up >= 1
            if not fine:
                return False
        return True


_GroupKey = tuple[str, ...]
_GROUP_SCOPE = {
    "country": Scope.COUNTRY,
    "region": Scope.REGION,
    "mobile": Scope.MOBILE,
    "network": Scope.NETWORK,
}


def _groups_of(view: TargetView) -> list[_GroupKey]:
    groups: list[_GroupKey] = [("country", view.country)]
    if view.asn is not None:
        groups.append(("network", view.country, str(view.asn)))
    if view.network_kind == "mobile":
        groups.append(("mobile", view.country))
    if view.region is not None:
        groups.append(("region", view.country, view.region))
    return groups


_GROUP_DARK = (
    "down, or failing `group_down_after` (2) probes in a row; a /24 block (`blocks:`): believed down "
    "by its latest round"
)
_BLOCKS_DARK = "fewer than `dark_ratio` (0.5) of their baseline up and more than the rest believed down"
_COUNTRY_SEEN_UP = (
    "until the country was seen up since the last member went dark, or `settle` at most; by its blocks: "
    "until the wider groups' blocks were, or a round and `settle` at most"
)
_SIGNALS = "`signals` (`targets`, `blocks`, or both: confirmed) and the blocks up, down and usual"

RULES: tuple[Rule, ...] = (
    Rule(
        Scope.COUNTRY,
        who="the normally reachable targets of one country, and its blocks",
        member_dark=_GROUP_DARK,
        threshold="up share / controls' up share ≤ `shutdown_ratio` (0.5), at least `min_targets` (3) "
        "counted, dark ones on at least `min_asns` (2) networks, not all in one region while "
        f"`min_targets` elsewhere are counted; or its blocks {_BLOCKS_DARK}, on at least `min_asns` "
        "networks, not all one region's or the mobile networks' while the rest are watched and not dark",
        settle="none: many targets, or blocks, on several networks corroborate each other",
        verdict="`full`, or `whitelist` while at least `whitelist_min` (3) counted targets (not `dns:`) "
        "answer, up since it began or for `recovery_grace`; evidence: those survivors, the dark ones "
        f"per region and network, {_SIGNALS}",
        find=_find_countries,
        recovered=_country_recovered,
    ),
    Rule(
        Scope.MOBILE,
        who="the normally reachable targets on the `mobile` networks of one country (`networks:`), "
        "and their blocks",
        member_dark=_GROUP_DARK,
        threshold="every member, on at least `min_asns` (2) networks, while a target on a `fixed` "
        "network is up; or the blocks of each of at least `min_asns` watched mobile networks dark, "
        "while a fixed network answers",
        settle=_COUNTRY_SEEN_UP,
        verdict=f"`mobile_only`; evidence: the dark ones per network, {_SIGNALS}",
        find=_find_mobile,
        recovered=_mobile_recovered,
    ),
    Rule(
        Scope.REGION,
        who="the normally reachable targets of one region (`region:`, ISO 3166-2), and its blocks",
        member_dark=_GROUP_DARK,
        threshold="as the country's, and most of at least `min_targets` targets elsewhere in the country up; "
        f"or its blocks {_BLOCKS_DARK}, on at least `min_asns` networks, the rest of the country's not",
        settle=_COUNTRY_SEEN_UP,
        verdict=f"`regional`; evidence: the dark ones per network, {_SIGNALS}",
        find=_find_regions,
        recovered=_region_recovered,
    ),
    Rule(
        Scope.NETWORK,
        who="the normally reachable targets of one country and ASN, at least `min_network_targets` (2), "
        "and its blocks",
        member_dark=_GROUP_DARK,
        threshold=f"every member; or its blocks {_BLOCKS_DARK}",
        settle=_COUNTRY_SEEN_UP,
        verdict=f"`network`; evidence: {_SIGNALS}",
        find=_find_networks,
        recovered=_network_recovered,
    ),
    Rule(
        Scope.SITE,
        who="one target seen up within `baseline_window`",
        member_dark="down, or flapping",
        threshold="itself",
        settle="until its network and country were seen up since it went dark, or `settle` at most",
        verdict="`site`",
        find=_find_sites,
        recovered=_site_recovered,
    ),
    Rule(
        Scope.THROTTLING,
        who="the URL targets of one country that are up, else those of one network (at least "
        "`min_network_targets`)",
        member_dark="slow: `down_after` probes in a row over `slow_factor` (3) times, and "
        "`slow_min_seconds` (0.5s) above, the median of its last `slow_baseline_probes` (20) normal ones",
        threshold="a country: as the country's, counting slow ones; a network: every member; none "
        "while half of the controls are slow too",
        settle="none: each member was slow several probes in a row",
        verdict="`throttled`; evidence: each member's baseline and latest seconds",
        find=_find_throttling,
        recovered=_throttling_recovered,
        family="slow",
    ),
    Rule(
        Scope.DNS,
        who="the `dns:` targets of one country with `compare_resolvers`",
        member_dark="its resolvers disagreed `down_after` probes in a row: no address or ASN in common, "
        "a bogon against a normal answer, or no such name against addresses",
        threshold="one member",
        settle="none: each member disagreed several probes in a row",
        verdict="`dns_tampering`; evidence: every resolver's answer",
        find=_find_dns_tampering,
        recovered=_dns_recovered,
        family="dns",
    ),
)


# -- the judge -----------------------------------------------------------------------------------


def judge(snapshot: Snapshot) -> Verdict:
    verdict = Verdict()
    _gate(snapshot, verdict)
    verdict.frozen = (
        not snapshot.vantage_online
        or snapshot.now < snapshot.warm_at
        or snapshot.now - snapshot.vantage_changed_at < snapshot.settle
    )
    views = {view.name: view for view in snapshot.targets}
    seen = SeenUp(snapshot)
    # the scopes whose outages explain, or released, a target: only their rows release or hold
    members: list[TargetView | CellView] = [*snapshot.targets, *snapshot.cells]
    explaining = {key[0] for view in members for key in (view.explained_by, view.released_from) if key}
    offered = [view for view in snapshot.targets if not view.control]
    left: list[TargetView] | None = None  # what the darkness rows left, for the other families
    family = "dark"
    for rule in RULES:
        if rule.family != family:  # each family starts from all that the darkness rows left
            family = rule.family
            if left is None:
                left = [view for view in offered if view.name not in verdict.cause]
            offered = left
        claimed: set[str] = set()
        for group in rule.find(snapshot, offered, verdict, seen):
            key = group.wanted.outage_key
            opens = key in snapshot.open_since or (group.settled and not verdict.frozen)
            if opens:
                verdict.wanted[key] = group.wanted
            for name in group.wanted.members:
                verdict.cause[name] = (key, CauseKind.OPEN if opens else CauseKind.PENDING)
            claimed.update(group.wanted.members)
        if claimed:
            offered = [view for view in offered if view.name not in claimed]
        _date_ends(snapshot, rule, views, verdict)
        if verdict.frozen:
            _keep_explanations(snapshot, [*offered, *snapshot.cells], verdict)
        elif rule.scope in _RELEASING and (
            rule.scope in explaining or any(key[0] is rule.scope for key in verdict.ended_at)
        ):
            offered = _hold_recovering(snapshot, _released(snapshot, rule.scope, offered, verdict), verdict)
            _hold_recovering_cells(snapshot, rule.scope, verdict)
    _country_verdicts(snapshot, verdict, views)
    return verdict


def _country_verdicts(snapshot: Snapshot, verdict: Verdict, views: Mapping[str, TargetView]) -> None:
    """Each country's one verdict: the gates first, then its widest outage (open, or kept while
    frozen), else normal, or unknown while none of its targets has a state."""
    found: dict[str, list[str]] = defaultdict(list)
    kept = snapshot.open_since if verdict.frozen else {}
    for key in {*verdict.wanted, *kept}:
        wanted = verdict.wanted.get(key)
        country = wanted.country if wanted is not None else _country_of(key, views)
        if country is not None:
            found[country].append((wanted.verdict if wanted is not None else "") or SCOPE_VERDICT[key[0]])
    for country in sorted({*verdict.countries, *found}):  # the country row summed up every one
        summary = verdict.countries.setdefault(country, CountryState())
        if snapshot.blind_since is not None:
            summary.verdict = "self"
        elif not snapshot.vantage_online:
            summary.verdict = "vantage"
        elif found[country]:
            summary.verdict = min(found[country], key=VERDICTS.index)
        else:
            summary.verdict = "unknown" if summary.state == "unknown" else "normal"


def _country_of(key: OutageKey, views: Mapping[str, TargetView]) -> str | None:
    if key[0] is Scope.SITE:
        view = views.get(key[1])
        return view.country if view is not None else None
    if key[0] in (Scope.VANTAGE, Scope.SELF):
        return None
    return key[1].partition("/")[0]


def _date_ends(snapshot: Snapshot, rule: Rule, views: Mapping[str, TargetView], verdict: Verdict) -> None:
    for key, started_at in snapshot.open_since.items():
        if key[0] is rule.scope and key not in verdict.wanted:
            ended = rule.recovered(snapshot, key, started_at, views)
            back = block_signal.back_at(_cells_of(key, snapshot.cells), started_at)
            if back is not None:  # its blocks had a part: it ended when both signals were back
                ended = back if ended is None else max(ended, back)
            ended = snapshot.now if ended is None else ended
            verdict.ended_at[key] = min(max(ended, started_at), snapshot.now)


def _released(
    snapshot: Snapshot, scope: Scope, offered: list[TargetView], verdict: Verdict
) -> list[TargetView]:
    """Targets whose explanation (this row's outage, open or still settling) ends with this
    verdict and that have not come back yet: released, they get a fresh start for the narrower
    rows. (Only unclaimed targets are offered here: their group is no longer dark.)"""
    # A country's targets whose failures began before its outage ended but showed too late to be
    # claimed (probed just before the end): that stretch is the country's too.
    country_ends = {key[1]: at for key, at in verdict.ended_at.items() if key[0] is Scope.COUNTRY is scope}
    kept = []
    for view in offered:
        key = view.explained_by
        if (
            key is None
            and view.country in country_ends
            and (view.failing > 0 or view.health is Health.DOWN)
            and (view.group_dark_since or snapshot.now) <= country_ends[view.country]
        ):
            key = (Scope.COUNTRY, view.country)
        if key is not None and key[0] is scope and scope in _RELEASING and view.recovered_at is None:
            ended = verdict.ended_at.get(key, snapshot.now)
            view = replace(view, released_at=ended, released_from=key)
            verdict.released[view.name] = (ended, key)
        kept.append(view)
    return kept


def _keep_explanations(
    snapshot: Snapshot, offered: Sequence[TargetView | CellView], verdict: Verdict
) -> None:
    """Blind or warming up: what explained a target before still does."""
    for view in offered:
        key = view.explained_by
        if key is not None and view.name not in verdict.cause:
            verdict.cause[view.name] = (
                key,
                CauseKind.OPEN if key in snapshot.open_since else CauseKind.PENDING,
            )


def _gate(snapshot: Snapshot, verdict: Verdict) -> None:
    """The rows in front of the table: our own process, then our vantage point."""
    if snapshot.blind_since is not None:
        verdict.wanted[SELF] = Wanted(Scope.SELF, "self", snapshot.blind_since, ())
    elif SELF in snapshot.open_since:
        verdict.ended_at[SELF] = max(snapshot.last_stall_at or snapshot.now, snapshot.open_since[SELF])
    controls = tuple(view.name for view in snapshot.targets if view.control)
    if not snapshot.vantage_online:
        verdict.wanted[VANTAGE] = Wanted(Scope.VANTAGE, "vantage", snapshot.vantage_changed_at, controls)
        for name in controls:
            verdict.cause[name] = (VANTAGE, CauseKind.OPEN)
    elif VANTAGE in snapshot.open_since:
        verdict.ended_at[VANTAGE] = max(snapshot.vantage_changed_at, snapshot.open_since[VANTAGE])


def _hold_recovering(snapshot: Snapshot, offered: list[TargetView], verdict: Verdict) -> list[TargetView]:
    """Targets still dark from a wider outage that has ended get `recovery_grace` to come back
    before a narrower row may take them: a country comes back in a staggered way."""
    kept = []
    for view in offered:
        if (
            view.released_at is not None
            and view.released_from is not None
            and view.recovered_at is None
            and snapshot.now - view.released_at < snapshot.recovery_grace
        ):
            verdict.cause[view.name] = (view.released_from, CauseKind.RECOVERING)
            continue
        kept.append(view)
    return kept


def _hold_recovering_cells(snapshot: Snapshot, scope: Scope, verdict: Verdict) -> None:
    """Cells still dark from a wider outage of `scope` that has ended are held for
    `recovery_grace`, as targets are; after it they are dark for narrower rows from its end on."""
    for view in snapshot.cells:
        if view.name in verdict.cause or view.dark_since is None:
            continue
        released_at, released_from = view.released_at, view.released_from
        key = view.explained_by
        if key is not None and key[0] is scope and key not in verdict.wanted:
            released_at, released_from = verdict.ended_at.get(key, snapshot.now), key
            verdict.released[view.name] = (released_at, key)
        if (
            released_at is not None
            and released_from is not None
            and released_from[0] is scope
            and snapshot.now - released_at < snapshot.recovery_grace
        ):
            verdict.cause[view.name] = (released_from, CauseKind.RECOVERING)


def _up_shares(
    counted: Sequence[TargetView], dark: Sequence[TargetView]
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """The up share of the counted targets per category (and "all"), region and kind of network."""

    def shares(group_of: Callable[[TargetView], str | None]) -> dict[str, float]:
        totals = Counter(group for view in counted if (group := group_of(view)) is not None)
        downs = Counter(group for view in dark if (group := group_of(view)) is not None)
        return {group: (total - downs[group]) / total for group, total in sorted(totals.items())}

    by_category = shares(lambda view: view.category)
    by_category["all"] = (len(counted) - len(dark)) / len(counted)
    return by_category, shares(lambda view: view.region), shares(lambda view: view.network_kind)
