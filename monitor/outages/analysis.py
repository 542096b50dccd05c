"""From per-target states to what went dark: site, network, country, or our own vantage point.

Evaluated every few seconds over the whole catalog (cheap: one pass over the targets), never per
probe. The rules, in the order they are applied:

1. Vantage: when most control targets abroad fail, the problem is ours. A vantage outage opens,
   every other target's results are held (not counted) and no other outage opens or closes.
2. Country: among a country's *normally reachable* targets (up within `baseline_window` before
   the reference time: now, or the start of an open country outage), the share that is up (not
   down and not failing `country_down_after` times in a row), divided by the share of controls
   that are up. At or under `shutdown_ratio`, with the down targets on at
   least `min_asns` networks, the country is in `shutdown`; under `degraded_ratio`, `degraded`.
3. Network: every normally reachable target of one ASN (at least `min_network_targets`) down while
   the country as a whole is not in shutdown.
4. Site: a target down for `settle` seconds that no network or country outage explains.

`settle` (by default `interval * (down_after + 1) + timeout`) is how long a site or network must
have been failing before its outage opens, so that a wider event has time to show first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from monitor.catalog.catalog import Catalog, Target
from monitor.catalog.schema import AnalysisOptions
from monitor.outages.asn import ASNResolver
from monitor.outages.journal import Journal
from monitor.outages.outage import Outage, Scope
from monitor.outages.state import Health, TargetState
from monitor.probing.result import ProbeResult

__all__ = ["Analyzer", "CountryState"]

log = logging.getLogger(__name__)

COUNTRY_STATES = ("normal", "degraded", "shutdown", "unknown")
_BASELINE_SYNC_SECONDS = 60.0


@dataclass(slots=True)
class CountryState:
    state: str = "unknown"
    ratio: float | None = None
    counted: int = 0
    down: int = 0
    by_category: dict[str, float] | None = None


class Analyzer:
    def __init__(self, journal: Journal | None = None, clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.clock = clock
        self.options = AnalysisOptions()
        self.targets: dict[str, Target] = {}
        self.states: dict[str, TargetState] = {}
        self.asn_resolver: ASNResolver | None = None
        self.resolved_asn: dict[str, int] = {}
        self.open: dict[tuple[Scope, str], Outage] = {}
        self.opened_total: Counter[Scope] = Counter()
        self.countries: dict[str, CountryState] = {}
        self.vantage_online = True
        self.vantage_online_since = clock()
        self.warmup_until = clock()
        self.settle = 0.0
        self._covering: dict[str, list[Outage]] = {}
        self._dark_networks: set[str] = set()  # "KZ/AS9198" keys whose targets are all down
        self._closed_unsynced: list[Outage] = []
        self._dirty = True
        self._baseline_synced_at = 0.0
        self._syncing = False
        self._lookups: set[asyncio.Task[None]] = set()

    # -- configuration and restart -------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        self.options = catalog.analysis
        self.targets = dict(catalog.by_name)
        for name in set(self.states) - set(self.targets):
            del self.states[name]
        for target in catalog.targets:
            state = self.states.get(target.name)
            if state is None:
                self.states[target.name] = TargetState(target.down_after, target.up_after)
            else:
                state.down_after, state.up_after = target.down_after, target.up_after
        longest = max(
            (target.interval * max(target.down_after, target.up_after) for target in catalog.targets),
            default=0.0,
        )
        self.settle = self.options.settle if self.options.settle is not None else _default_settle(catalog)
        self.warmup_until = max(self.warmup_until, self.clock() + longest + self.settle)
        self.asn_resolver = ASNResolver(catalog.asn_lookup, catalog.resolvers)
        for key, outage in list(self.open.items()):
            if outage.scope is Scope.SITE and outage.key not in self.targets:
                self._close(key, self.clock())

    def restore(self) -> None:
        """Pick up open outages and baselines from the journal after a restart."""
        if self.journal is None:
            return
        outages, baselines = self.journal.load()
        for outage in outages:
            self.open[(outage.scope, outage.key)] = outage
        for name, last_up_at in baselines.items():
            state = self.states.get(name)
            if state is not None and state.last_up_at is None:
                state.last_up_at = last_up_at
        if outages:
            log.info("resumed %d open outages from the journal", len(outages))
        self._reindex()

    # -- input ---------------------------------------------------------------------------------

    def record(self, result: ProbeResult) -> None:
        target = self.targets.get(result.target)
        state = self.states.get(result.target)
        if target is None or state is None:
            return
        if not target.is_control and not self.vantage_online:
            return  # held: while we cannot see out, nothing we see about targets is evidence
        state.observe(result)
        if result.failure is not None:
            for outage in self._covering.get(target.name, ()):
                outage.failures += 1
                outage.evidence[result.failure.value] += 1
                self._dirty = True
        if target.is_control:
            self._update_vantage(result.started_at)
        elif target.asn is None and result.addresses:
            self._lookup_asn(target.name, result.addresses[0])

    def _lookup_asn(self, name: str, address: str) -> None:
        resolver = self.asn_resolver
        if resolver is None or not resolver.needs_lookup(address):
            if resolver is not None and (asn := resolver.cached(address)) is not None:
                self.resolved_asn[name] = asn
            return

        async def lookup() -> None:
            asn = await resolver.lookup(address)
            if asn is not None:
                self.resolved_asn[name] = asn

        with contextlib.suppress(RuntimeError):  # no running loop: lookups only in the daemon
            task = asyncio.get_running_loop().create_task(lookup())
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    def asn_of(self, target: Target) -> int | None:
        return target.asn if target.asn is not None else self.resolved_asn.get(target.name)

    def _update_vantage(self, at: float) -> None:
        controls = [self.states[name] for name, target in self.targets.items() if target.is_control]
        if not controls:
            return
        needed = self.options.vantage_quorum * len(controls)
        failing = sum(1 for state in controls if state.failures_in_a_row > 0)
        up = sum(1 for state in controls if state.health is Health.UP and state.failures_in_a_row == 0)
        if self.vantage_online and failing > len(controls) - needed:
            self.vantage_online = False
            log.warning(
                "vantage point offline: %d of %d controls abroad failing; holding target states",
                failing,
                len(controls),
            )
        elif not self.vantage_online and up >= needed:
            self.vantage_online = True
            self.vantage_online_since = at
            log.warning("vantage point back online")

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self) -> None:
        now = self.clock()
        if not self.vantage_online:
            self._open_vantage_outage(now)
            for summary in self.countries.values():  # blind: no state and no share, not "normal, 100 %"
                summary.state, summary.ratio, summary.by_category = "unknown", None, None
            return
        if (Scope.VANTAGE, "vantage") in self.open:
            self._close((Scope.VANTAGE, "vantage"), now)
        may_change = now >= self.warmup_until and now - self.vantage_online_since >= self.settle
        members = self._members_by_country()
        control_ratio = self._control_ratio()
        for country, targets in members.items():
            self._evaluate_country(country, targets, control_ratio, now, may_change)
        if may_change:
            self._evaluate_networks(members, now)
            self._evaluate_sites(now)
            self._close_orphans(now)
        self._reindex()

    def _members_by_country(self) -> dict[str, list[Target]]:
        members: dict[str, list[Target]] = defaultdict(list)
        for target in self.targets.values():
            if not target.is_control:
                members[target.country].append(target)
        return members

    def _control_ratio(self) -> float:
        controls = [self.states[name] for name, target in self.targets.items() if target.is_control]
        if not controls:
            return 1.0
        return sum(1 for state in controls if state.health is Health.UP) / len(controls)

    def normally_reachable(self, state: TargetState, reference: float) -> bool:
        if state.health is Health.UP:
            return True
        return state.last_up_at is not None and state.last_up_at >= reference - self.options.baseline_window

    def _evaluate_country(
        self, country: str, targets: list[Target], control_ratio: float, now: float, may_change: bool
    ) -> None:
        key = (Scope.COUNTRY, country)
        outage = self.open.get(key)
        reference = outage.started_at if outage else now
        counted = [
            target for target in targets if self.normally_reachable(self.states[target.name], reference)
        ]
        down = [target for target in counted if self._dark_for_country(self.states[target.name])]
        up = [
            target
            for target in counted
            if self.states[target.name].health is Health.UP and target not in down
        ]
        summary = self.countries.setdefault(country, CountryState())
        summary.counted, summary.down = len(up) + len(down), len(down)
        summary.by_category = _ratios_by_category(up, down)
        if not up and not down:
            summary.state, summary.ratio = "unknown", None
            return
        ratio = len(up) / (len(up) + len(down))
        normalised = min(1.0, ratio / control_ratio) if control_ratio > 0 else ratio
        summary.ratio = normalised
        down_networks = {self.asn_of(target) for target in down}
        options = self.options
        if (
            normalised <= options.shutdown_ratio
            and summary.counted >= options.min_targets
            and len(down_networks) >= options.min_asns
        ):
            summary.state = "shutdown"
        elif normalised <= options.degraded_ratio:
            summary.state = "degraded"
        else:
            summary.state = "normal"
        if not may_change:
            return
        if summary.state == "shutdown" and outage is None:
            needed = len(up) + len(down) - int(options.shutdown_ratio * (len(up) + len(down)))
            started = sorted(self._streak_start(target) for target in down)[
                max(0, min(needed, len(down)) - 1)
            ]
            self._open(
                Outage(
                    Scope.COUNTRY,
                    country,
                    started,
                    country=country,
                    targets=sorted(target.name for target in down),
                ),
                [t.name for t in down],
            )
        elif summary.state != "shutdown" and outage is not None:
            self._close(key, now)

    def _dark_for_country(self, state: TargetState) -> bool:
        """Down, or failing `country_down_after` times in a row: many targets failing together on
        several networks corroborate each other, so the country needs fewer repeats than a site."""
        return state.health is Health.DOWN or state.failures_in_a_row >= self.options.country_down_after

    def _evaluate_networks(self, members: dict[str, list[Target]], now: float) -> None:
        self._dark_networks = set()
        for country, targets in members.items():
            country_dark = (Scope.COUNTRY, country) in self.open
            networks: dict[int, list[Target]] = defaultdict(list)
            for target in targets:
                asn = self.asn_of(target)
                if asn is not None and self.normally_reachable(self.states[target.name], now):
                    networks[asn].append(target)
            for asn, network in networks.items():
                key = (Scope.NETWORK, f"{country}/AS{asn}")
                all_down = all(self.states[target.name].health is Health.DOWN for target in network)
                if all_down and len(network) >= self.options.min_network_targets:
                    self._dark_networks.add(key[1])
                if all_down and len(network) >= self.options.min_network_targets and key not in self.open:
                    started = max(self._streak_start(target) for target in network)
                    if not country_dark and now - started >= self.settle:
                        names = sorted(target.name for target in network)
                        self._open(
                            Outage(Scope.NETWORK, key[1], started, country=country, asn=asn, targets=names),
                            names,
                        )
                elif not all_down and key in self.open:
                    self._close(key, now)

    def _evaluate_sites(self, now: float) -> None:
        for name, target in self.targets.items():
            if target.is_control:
                continue
            state = self.states[name]
            key = (Scope.SITE, name)
            if state.health is Health.DOWN:
                if key in self.open or state.last_up_at is None or self._explained(target):
                    continue
                if now - (state.changed_at or now) >= self.settle:
                    self._open(
                        Outage(
                            Scope.SITE,
                            name,
                            self._streak_start(target),
                            country=target.country,
                            asn=self.asn_of(target),
                            targets=[name],
                        ),
                        [name],
                    )
            elif key in self.open and state.health is Health.UP:
                self._close(key, state.changed_at or now)

    def _close_orphans(self, now: float) -> None:
        for key, outage in list(self.open.items()):
            if outage.scope is Scope.NETWORK and not any(
                name in self.targets and self.states[name].health is Health.DOWN for name in outage.targets
            ):
                self._close(key, now)

    def _explained(self, target: Target) -> bool:
        """Whether a wider event (open, or about to open once it has settled) covers the target."""
        country = self.countries.get(target.country)
        if (Scope.COUNTRY, target.country) in self.open or (country and country.state == "shutdown"):
            return True
        asn = self.asn_of(target)
        return asn is not None and f"{target.country}/AS{asn}" in self._dark_networks

    def _streak_start(self, target: Target) -> float:
        state = self.states[target.name]
        return state.streak_started_at or state.changed_at or self.clock()

    def _open_vantage_outage(self, now: float) -> None:
        key = (Scope.VANTAGE, "vantage")
        if key in self.open:
            return
        controls = [name for name, target in self.targets.items() if target.is_control]
        starts = [
            self.states[name].streak_started_at or now
            for name in controls
            if self.states[name].failures_in_a_row > 0
        ]
        self._open(Outage(Scope.VANTAGE, "vantage", max(starts, default=now), targets=controls), [])
        self._reindex()

    def _open(self, outage: Outage, members: list[str]) -> None:
        for name in members:
            for failure, count in self.states[name].streak_failures.items():
                outage.evidence[failure.value] += count
                outage.failures += count
        self.open[(outage.scope, outage.key)] = outage
        self.opened_total[outage.scope] += 1
        self._dirty = True
        log.warning(
            "%s outage opened: %s (since %s)",
            outage.scope.value,
            outage.key,
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(outage.started_at)),
        )

    def _close(self, key: tuple[Scope, str], at: float) -> None:
        outage = self.open.pop(key)
        outage.ended_at = max(at, outage.started_at)
        self._closed_unsynced.append(outage)
        self._dirty = True
        log.warning(
            "%s outage closed: %s after %.0fs",
            outage.scope.value,
            outage.key,
            outage.ended_at - outage.started_at,
        )

    def _reindex(self) -> None:
        covering: dict[str, list[Outage]] = defaultdict(list)
        for outage in self.open.values():
            if outage.scope is Scope.VANTAGE:
                for name in outage.targets:
                    covering[name].append(outage)
                continue
            names = (
                outage.targets
                if outage.scope is not Scope.COUNTRY
                else [
                    name
                    for name, target in self.targets.items()
                    if target.country == outage.key and not target.is_control
                ]
            )
            for name in names:
                covering[name].append(outage)
        self._covering = covering

    # -- journal -------------------------------------------------------------------------------

    async def sync_journal(self) -> None:
        journal = self.journal
        if journal is None or self._syncing:
            return
        now = self.clock()
        baselines_due = now - self._baseline_synced_at >= _BASELINE_SYNC_SECONDS
        if not (self._dirty or baselines_due or not journal.healthy):
            return
        outages = [*self._closed_unsynced, *self.open.values()]
        baselines = (
            {name: state.last_up_at for name, state in self.states.items() if state.last_up_at is not None}
            if baselines_due or not journal.healthy
            else {}
        )
        closed = len(self._closed_unsynced)
        self._dirty = False
        self._syncing = True
        try:
            written = await asyncio.to_thread(journal.sync, outages, baselines)
        finally:
            self._syncing = False
        if written:
            del self._closed_unsynced[:closed]
            if baselines:
                self._baseline_synced_at = now
        else:
            self._dirty = True

    async def close(self) -> None:
        for task in list(self._lookups):
            task.cancel()
        self._dirty = True
        await self.sync_journal()
        if self.journal is not None:
            self.journal.close()

    def outages(self) -> list[Outage]:
        return sorted([*self.open.values(), *self._closed_unsynced], key=lambda outage: -outage.started_at)


def _default_settle(catalog: Catalog) -> float:
    """Long enough after a target's first failure for every other target to have been probed
    `down_after` times too, so that a wider event shows before a site or network outage opens."""
    return max(
        (target.interval * (target.down_after + 1) + target.timeout for target in catalog.targets),
        default=0.0,
    )


def _ratios_by_category(up: list[Target], down: list[Target]) -> dict[str, float]:
    totals: Counter[str] = Counter(target.category for target in [*up, *down])
    ups: Counter[str] = Counter(target.category for target in up)
    ratios = {category: ups[category] / total for category, total in totals.items()}
    if totals:
        ratios["all"] = len(up) / (len(up) + len(down))
    return ratios
