"""From probe results to outages: target states and the vantage gate take each result; every
`evaluate_every` one immutable snapshot goes through the pure rule table (`rules.judge`) and the
book applies the verdict. The rules themselves, and the README's "Outage states", are in rules.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from monitor.catalog.catalog import Catalog, Target
from monitor.catalog.schema import AnalysisOptions, LivenessOptions
from monitor.outages.asn import ASNResolver
from monitor.outages.blocks import BlockLedger, CellView
from monitor.outages.book import OutageBook
from monitor.outages.consistency import consistent
from monitor.outages.history import ShareHistory
from monitor.outages.journal import Journal
from monitor.outages.outage import Outage, Scope
from monitor.outages.rules import CauseKind, CountryState, OutageKey, Snapshot, TargetView, judge
from monitor.outages.state import Health, TargetState
from monitor.outages.vantage import VantageGate
from monitor.probing.block_rounds import BlockResult
from monitor.probing.dns import is_bogon
from monitor.probing.failures import Failure, Phase
from monitor.probing.result import ProbeResult

__all__ = ["Analyzer", "BlindSpell"]

log = logging.getLogger(__name__)

# Our own blind spells, as (start, end of the latest stall) in Unix time, or None while healthy.
BlindSpell = Callable[[], tuple[float, float] | None]
_FLAP_WINDOW_INTERVALS = 20  # Nagios judges flapping over the last 21 checks
_WIDE_SCOPES = (Scope.COUNTRY, Scope.NETWORK)


class Analyzer:
    def __init__(
        self,
        journal: Journal | None = None,
        clock: Callable[[], float] = time.time,
        blind_spell: BlindSpell = lambda: None,
    ) -> None:
        self.clock = clock
        self.blind_spell = blind_spell
        self.book = OutageBook(journal)
        self.options = AnalysisOptions()
        self.targets: dict[str, Target] = {}
        self.catalog: Catalog | None = None
        self.states: dict[str, TargetState] = {}
        self.blocks = BlockLedger()
        self._control_states: list[TargetState] = []
        self.asn_resolver: ASNResolver | None = None
        self.resolved_asn: dict[str, int] = {}
        self.countries: dict[str, CountryState] = {}
        self.history = ShareHistory()
        self.flapping: set[str] = set()
        self.frozen = True  # blind or warming up at the last verdict: outages neither open nor close
        self.gate = VantageGate(self.options.vantage_quorum, clock())
        self.warm_at = clock()
        self.settle = 0.0
        self._last_stall_at: float | None = None
        self._views: dict[str, tuple[tuple[object, ...], TargetView]] = {}  # name -> (inputs, view)
        self._lookups: set[asyncio.Task[None]] = set()

    # -- what the endpoints read ---------------------------------------------------------------

    @property
    def journal(self) -> Journal | None:
        return self.book.journal

    @property
    def open(self) -> dict[OutageKey, Outage]:
        return self.book.open

    @property
    def opened_total(self) -> Counter[Scope]:
        return self.book.opened_total

    @property
    def vantage_online(self) -> bool:
        return self.gate.online

    def outages(self) -> list[Outage]:
        return self.book.outages()

    def cause_of(self, name: str) -> dict[str, str | None] | None:
        return self.book.cause_of(name)

    def network_kind(self, asn: int | None) -> str | None:
        return self.catalog.network_kind(asn) if self.catalog is not None else None

    def asn_of(self, target: Target) -> int | None:
        return target.asn if target.asn is not None else self.resolved_asn.get(target.name)

    # -- configuration and restart -------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._views.clear()
        self.options = catalog.analysis
        self.gate.quorum = self.options.vantage_quorum
        self.targets = dict(catalog.by_name)
        removed = set(self.states) - set(self.targets)
        for name in removed:
            del self.states[name]
            self.book.released.pop(name, None)
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
        self.warm_at = max(self.warm_at, self.clock() + longest + self.settle)
        self._control_states = [self.states[target.name] for target in catalog.targets if target.is_control]
        self.asn_resolver = ASNResolver(catalog.asn_lookup, catalog.resolvers)
        self.blocks.set_catalog(catalog.blocks, catalog.liveness, catalog.network_kind)
        self.book.close_removed(removed, self.clock())

    def restore(self) -> None:
        """Pick up open outages and baselines from the journal after a restart."""
        for name, last_up_at in self.book.restore().items():
            state = self.states.get(name)
            if state is not None and state.last_up_at is None:
                state.last_up_at = last_up_at
                state.version += 1
        for outage in self.book.open.values():  # until the first verdict, the open ones explain
            for name in self._members(outage):
                self.book.cause[name] = ((outage.scope, outage.key), CauseKind.OPEN)

    def _members(self, outage: Outage) -> list[str]:
        cells = {cell.name for cell in self.blocks.cells}
        listed = [name for name in outage.targets if name in self.targets or name in cells]
        if outage.scope is Scope.COUNTRY:
            country = [n for n, t in self.targets.items() if t.country == outage.key and not t.is_control]
            return sorted({*country, *listed})
        return listed

    # -- input ---------------------------------------------------------------------------------

    def record(self, result: ProbeResult) -> bool:
        """Take one probe result; True when it may change a verdict (a target went down or up, or
        became dark for its country and network): worth evaluating before the periodic verdict."""
        target = self.targets.get(result.target)
        state = self.states.get(result.target)
        if target is None or state is None:
            return False
        if not target.is_control and not self.gate.online:
            return False  # held: while we cannot see out, nothing we see about targets is evidence
        was_online, known = self.gate.online, state.health is not Health.UNKNOWN
        # A target's first state is a discovery (10,000 of them in the first minutes), not news.
        changed = state.observe(result) and known
        changed = changed or state.failures_in_a_row == self.options.group_down_after
        if result.failure is not None:
            self.book.attribute(target.name, result.failure)
        else:  # slowness and tampering wait for the periodic verdict: nothing urgent, and a busy
            # machine makes many targets slow at once (the controls too: then none is throttled)
            seconds = result.duration_seconds - result.phases.get(Phase.RESOLVE, 0.0)
            state.speed.observe(result.started_at, seconds, self.options, target.down_after, target.up_after)
        if result.dns_answers:
            self._observe_dns(target, state, result)
        state.version += 1
        if target.is_control:
            self.gate.update(self._control_states)
            if was_online and not self.gate.online:
                # blocks that went silent while our uplink was going are no evidence either
                self.blocks.forget_since(self.gate.changed_at - self.settle)
        elif target.asn is None and result.addresses:
            self._lookup_asn(target.name, result.addresses[0])
        return changed or self.gate.online != was_online

    def record_block(self, result: BlockResult) -> bool:
        """Take one block's round; True when a cell turned dark or came back. Held while we
        cannot see out, as targets' results are."""
        return self.gate.online and self.blocks.record(result)

    def _observe_dns(self, target: Target, state: TargetState, result: ProbeResult) -> None:
        def asn_of(address: str) -> int | None:
            resolver = self.asn_resolver
            if resolver is None:
                return None
            if resolver.needs_lookup(address):
                self._lookup_asn(None, address)
            return resolver.cached(address)

        def bogon(address: str) -> bool:
            return is_bogon(address, target.bogon_networks)

        agrees = consistent(result.dns_answers, asn_of, bogon)
        state.dns.observe(result.started_at, agrees, result.dns_answers, target.down_after)

    def _lookup_asn(self, name: str | None, address: str) -> None:
        """The ASN of `address`, looked up once in the background; `name`'s when given."""
        resolver = self.asn_resolver
        if resolver is None or not resolver.needs_lookup(address):
            if resolver is not None and name is not None and (asn := resolver.cached(address)) is not None:
                self.resolved_asn[name] = asn
            return

        async def lookup() -> None:
            asn = await resolver.lookup(address)
            if asn is not None and name is not None:
                self.resolved_asn[name] = asn

        with contextlib.suppress(RuntimeError):  # no running loop: lookups only in the daemon
            task = asyncio.get_running_loop().create_task(lookup())
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    # -- evaluation ----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = self.clock()
        spell = self.blind_spell()
        if spell is not None:
            self._last_stall_at = spell[1]
        options = self.options
        grace = options.recovery_grace if options.recovery_grace is not None else 5 * self.settle
        self.flapping = set()
        views = []
        for name, target in self.targets.items():
            view = self._view(target, self.states[name], now)
            if view.flapping_since is not None:
                self.flapping.add(name)
            views.append(view)
        return Snapshot(
            now=now,
            targets=tuple(views),
            open_since={key: outage.started_at for key, outage in self.book.open.items()},
            options=options,
            settle=self.settle,
            recovery_grace=max(grace, self.settle),
            vantage_online=self.gate.online,
            vantage_changed_at=self.gate.changed_at,
            blind_since=spell[0] if spell is not None else None,
            last_stall_at=self._last_stall_at,
            warm_at=self.warm_at,
            cells=self._cells(),
            liveness=self.catalog.liveness if self.catalog is not None else LivenessOptions(),
        )

    def _cells(self) -> tuple[CellView, ...]:
        released = self.book.released
        cells = self.blocks.views(self.book.cause, released)
        for view in cells:
            if view.dark_since is None and view.name in released:
                del released[view.name]  # back: that stretch of darkness is over
        return cells

    def _view(self, target: Target, state: TargetState, now: float) -> TargetView:
        """The target as the rules see it; rebuilt only when its state, cause, release, ASN or
        flapping (which depends on the time) changed: at 10,000 targets most views are the
        previous verdict's."""
        options = self.options
        flapping_since = state.flapping_since
        if state.changes and (flapping_since is not None or len(state.changes) >= options.flap_changes):
            window = options.flap_window or _FLAP_WINDOW_INTERVALS * target.interval
            flapping_since = state.update_flapping(now, window, options.flap_changes)
        cause = self.book.cause.get(target.name)
        released = self.book.released.get(target.name)
        if released is not None and state.health is Health.UP and state.failures_in_a_row == 0:
            del self.book.released[target.name]  # back: that stretch of darkness is over
            released = None
        asn = self.asn_of(target)
        inputs = (state.version, cause, released, asn, flapping_since)
        cached = self._views.get(target.name)
        if cached is not None and cached[0] == inputs:
            return cached[1]
        view = self._build_view(target, state, asn, cause, released, flapping_since)
        self._views[target.name] = (inputs, view)
        return view

    def _build_view(
        self,
        target: Target,
        state: TargetState,
        asn: int | None,
        cause: tuple[OutageKey, CauseKind] | None,
        released: tuple[float, OutageKey] | None,
        flapping_since: float | None,
    ) -> TargetView:
        speed, dns = state.speed, state.dns
        baseline = speed.baseline()
        return TargetView(
            name=target.name,
            country=target.country,
            asn=asn,
            control=target.is_control,
            category=target.category,
            health=state.health,
            failing=state.failures_in_a_row,
            run_started_at=state.run_started_at,
            last_up_at=state.last_up_at,
            state_since=state.changed_at,
            flapping_since=flapping_since,
            explained_by=cause[0] if cause is not None and cause[1] != CauseKind.RECOVERING else None,
            released_at=released[0] if released else None,
            released_from=released[1] if released else None,
            kind=target.kind,
            region=target.region,
            network_kind=self.network_kind(asn),
            slow_since=speed.slow_since if speed.slow else None,
            normal_since=speed.normal_since,
            speed=(baseline, speed.last_seconds) if baseline is not None and speed.last_seconds else None,
            tampered_since=dns.since if dns.tampered else None,
            clean_since=dns.clean_since,
            dns_answers=dns.answers if dns.tampered else (),
        )

    def evaluate(self) -> None:
        snapshot = self.snapshot()
        verdict = judge(snapshot)
        self.countries = verdict.countries
        self.history.record(snapshot.now, verdict.countries)
        self.frozen = verdict.frozen
        self.book.reconcile(verdict, snapshot.now, self._streak_failures)
        for name, ((scope, _), _) in verdict.cause.items():
            state = self.states.get(name)  # None: a cell of blocks
            if state is not None and scope in _WIDE_SCOPES:  # its changes are the wider event's
                state.forget_changes()

    def _streak_failures(self, name: str) -> Counter[Failure]:
        state = self.states.get(name)
        return state.streak_failures if state is not None else Counter()

    # -- journal -------------------------------------------------------------------------------

    async def sync_journal(self, *, final: bool = False) -> None:
        await self.book.sync_journal(self.clock(), self._baselines, final=final)

    def _baselines(self) -> dict[str, float]:
        return {name: state.last_up_at for name, state in self.states.items() if state.last_up_at is not None}

    async def close(self) -> None:
        for task in list(self._lookups):
            task.cancel()
        await self.sync_journal(final=True)
        if self.book.journal is not None:
            self.book.journal.close()


def _default_settle(catalog: Catalog) -> float:
    """Long enough after a target's first failure for every other target to have been probed
    `down_after` times too, so that a wider event shows before a site or network outage opens."""
    return max(
        (target.interval * (target.down_after + 1) + target.timeout for target in catalog.targets),
        default=0.0,
    )
