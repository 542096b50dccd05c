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

from monitor.catalog.schema import AnalysisOptions
from monitor.outages.outage import Scope
from monitor.outages.state import Health

__all__ = [
    "COUNTRY_STATES",
    "RULES",
    "CauseKind",
    "CountryState",
    "OutageKey",
    "Rule",
    "Snapshot",
    "TargetView",
    "Verdict",
    "Wanted",
    "judge",
]

OutageKey = tuple[Scope, str]
COUNTRY_STATES = ("normal", "degraded", "shutdown", "unknown")
VANTAGE: OutageKey = (Scope.VANTAGE, "vantage")
_RELEASING = (Scope.COUNTRY, Scope.NETWORK)  # the rows whose end gives their targets a fresh start
SELF: OutageKey = (Scope.SELF, "self")


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


@dataclass(frozen=True, slots=True)
class Wanted:
    scope: Scope
    key: str
    started_at: float
    members: tuple[str, ...]
    country: str | None = None
    asn: int | None = None

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
    """One row of the table; the texts are the README's "Outage states" table, word for word."""

    scope: Scope
    who: str
    member_dark: str
    threshold: str
    settle: str
    find: RowFn
    recovered: EndFn


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
    for country in sorted({view.country for view in offered}):
        counted = members.get(country, [])
        dark = [view for view in counted if _dark_for_group(view, snapshot.options)]
        summary = verdict.countries[country] = _country_state(snapshot, counted, dark, control_share)
        if summary.state == "shutdown":
            crossing = len(counted) - int(snapshot.options.shutdown_ratio * len(counted))
            started = _kth((view.group_dark_since or snapshot.now for view in dark), crossing)
            members_dark = tuple(sorted(view.name for view in dark))
            wanted = Wanted(Scope.COUNTRY, country, started or snapshot.now, members_dark, country=country)
            groups.append(Group(wanted, settled=True))
        elif summary.state == "unknown" and (key := (Scope.COUNTRY, country)) in snapshot.open_since:
            # No target has a state yet (a restart): no evidence either way, the outage stays.
            wanted = Wanted(Scope.COUNTRY, country, snapshot.open_since[key], (), country=country)
            groups.append(Group(wanted, settled=True))
    return groups


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
    return CountryState(state, ratio, len(counted), len(dark), _ratios_by_category(counted, dark))


def _country_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    counted = _country_members(snapshot, (v for v in views.values() if v.country == key[1] and not v.control))
    members = counted.get(key[1], [])
    back = [max(view.recovered_at, started_at) for view in members if view.recovered_at is not None]
    needed = int(snapshot.options.shutdown_ratio * len(members)) + 1
    return _kth(back, needed)


def _find_networks(
    snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict, seen: SeenUp
) -> list[Group]:
    networks: dict[tuple[str, int], list[TargetView]] = defaultdict(list)
    for view in offered:
        if view.asn is not None and _reachable_for(snapshot, view, _network_key(view.country, view.asn)):
            networks[(view.country, view.asn)].append(view)
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
        groups.append(Group(wanted, settled=_settled(snapshot, members, seen)))
    return groups


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
        groups.append(Group(wanted, settled=_settled(snapshot, [view], seen)))
    return groups


def _site_recovered(
    snapshot: Snapshot, key: OutageKey, started_at: float, views: Mapping[str, TargetView]
) -> float | None:
    view = views.get(key[1])
    return view.recovered_at if view is not None else None


def _dark_start(view: TargetView) -> float:
    """A target released by a wider outage is dark for narrower rows from that outage's end on:
    each stretch of failure belongs to one outage."""
    dark_since = view.flapping_since if view.flapping_since is not None else view.group_dark_since
    return max(dark_since or 0.0, view.released_at or 0.0)


def _settled(snapshot: Snapshot, members: Sequence[TargetView], seen: SeenUp) -> bool:
    """Long enough for a wider event to show: the wider groups around have been seen up since,
    or `settle` has passed (when there is nobody to be seen)."""
    since = max(_dark_start(view) for view in members)
    return snapshot.now - since >= snapshot.settle or seen.rules_out_wider(members, since)


class SeenUp:
    """Who has been seen up since when, per country and network, built once per verdict: a
    narrower outage may open as soon as the groups around it were seen up after it went dark (a
    probe that started after a cut fails), instead of waiting `settle` blindly."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.options = snapshot.options
        self.counted: Counter[tuple[str, int | None]] = Counter()
        self.up_at: dict[tuple[str, int | None], list[float]] = defaultdict(list)
        self.networks: dict[str, set[int | None]] = defaultdict(set)
        for view in snapshot.targets:
            if view.control or not _normally_reachable(view, snapshot.now, self.options.baseline_window):
                continue
            for key in ((view.country, view.asn), (view.country, None)):
                self.counted[key] += 1
                if view.health is Health.UP and view.failing == 0 and view.last_up_at is not None:
                    self.up_at[key].append(view.last_up_at)
            self.networks[view.country].add(view.asn)
        for times in self.up_at.values():
            times.sort()

    def _up_since(self, key: tuple[str, int | None], since: float) -> int:
        times = self.up_at.get(key, [])
        return len(times) - bisect.bisect_left(times, since)

    def rules_out_wider(self, members: Sequence[TargetView], since: float) -> bool:
        options = self.options
        country = members[0].country
        counted = self.counted[(country, None)]
        country_fine = (
            counted < options.min_targets
            or len(self.networks[country]) < options.min_asns
            or self._up_since((country, None), since) > options.shutdown_ratio * counted
        )
        if len(members) > 1 or members[0].asn is None:
            return country_fine
        network = (country, members[0].asn)
        return country_fine and (
            self.counted[network] < options.min_network_targets or self._up_since(network, since) >= 1
        )


RULES: tuple[Rule, ...] = (
    Rule(
        Scope.COUNTRY,
        who="the normally reachable targets of one country",
        member_dark="down, or failing `group_down_after` (2) probes in a row",
        threshold="up share / controls' up share ≤ `shutdown_ratio` (0.5), at least `min_targets` (3) "
        "counted, dark ones on at least `min_asns` (2) networks",
        settle="none: many targets on several networks corroborate each other",
        find=_find_countries,
        recovered=_country_recovered,
    ),
    Rule(
        Scope.NETWORK,
        who="the normally reachable targets of one country and ASN, at least `min_network_targets` (2)",
        member_dark="down, or failing `group_down_after` (2) probes in a row",
        threshold="every member",
        settle="until the country was seen up since the last member went dark, or `settle` at most",
        find=_find_networks,
        recovered=_network_recovered,
    ),
    Rule(
        Scope.SITE,
        who="one target seen up within `baseline_window`",
        member_dark="down, or flapping",
        threshold="itself",
        settle="until its network and country were seen up since it went dark, or `settle` at most",
        find=_find_sites,
        recovered=_site_recovered,
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
    offered = [view for view in snapshot.targets if not view.control]
    for rule in RULES:
        claimed: set[str] = set()
        for group in rule.find(snapshot, offered, verdict, seen):
            key = group.wanted.outage_key
            opens = key in snapshot.open_since or (group.settled and not verdict.frozen)
            if opens:
                verdict.wanted[key] = group.wanted
            for name in group.wanted.members:
                verdict.cause[name] = (key, CauseKind.OPEN if opens else CauseKind.PENDING)
            claimed.update(group.wanted.members)
        offered = [view for view in offered if view.name not in claimed]
        _date_ends(snapshot, rule, views, verdict)
        if verdict.frozen:
            _keep_explanations(snapshot, offered, verdict)
        else:
            offered = _hold_recovering(snapshot, _released(snapshot, rule.scope, offered, verdict), verdict)
    return verdict


def _date_ends(snapshot: Snapshot, rule: Rule, views: Mapping[str, TargetView], verdict: Verdict) -> None:
    for key, started_at in snapshot.open_since.items():
        if key[0] is rule.scope and key not in verdict.wanted:
            ended = rule.recovered(snapshot, key, started_at, views)
            ended = snapshot.now if ended is None else ended
            verdict.ended_at[key] = min(max(ended, started_at), snapshot.now)


def _released(
    snapshot: Snapshot, scope: Scope, offered: list[TargetView], verdict: Verdict
) -> list[TargetView]:
    """Targets whose explanation (this row's outage, open or still settling) ends with this
    verdict and that have not come back yet: released, they get a fresh start for the narrower
    rows. (Only unclaimed targets are offered here: their group is no longer dark.)"""
    kept = []
    for view in offered:
        key = view.explained_by
        if key is not None and key[0] is scope and scope in _RELEASING and view.recovered_at is None:
            ended = verdict.ended_at.get(key, snapshot.now)
            view = replace(view, released_at=ended, released_from=key)
            verdict.released[view.name] = (ended, key)
        kept.append(view)
    return kept


def _keep_explanations(snapshot: Snapshot, offered: Sequence[TargetView], verdict: Verdict) -> None:
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


def _ratios_by_category(counted: Sequence[TargetView], dark: Sequence[TargetView]) -> dict[str, float]:
    totals = Counter(view.category for view in counted)
    downs = Counter(view.category for view in dark)
    ratios = {category: (total - downs[category]) / total for category, total in totals.items()}
    ratios["all"] = (len(counted) - len(dark)) / len(counted)
    return ratios
