"""Outage logic on a fake clock: each scenario feeds probe results and reads outages and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.catalog.catalog import Catalog, parse_catalog
from monitor.outages.analysis import Analyzer
from monitor.outages.journal import Journal
from monitor.outages.outage import Scope
from monitor.outages.state import Health, TargetState
from monitor.probing.failures import Failure, Phase
from monitor.probing.result import ProbeResult
from monitor.serving.exposition import analysis_text

INTERVAL = 10.0
# Three networks in KZ with three sites each, one geo-blocked site, and four controls abroad.
NETWORKS = {
    9198: ["kazinform", "akorda", "egov"],
    29355: ["kcell", "halyk", "kaspi"],
    48503: ["tele2", "zakon", "vlast"],
}


def catalog_text(geo_blocked: bool = True) -> str:
    lines = [
        "defaults: {interval: 10s, timeout: 5s, resolvers: ['127.0.0.1:1'], down_after: 3, up_after: 2}",
        "analysis: {settle: 10s, evaluate_every: 1s}",
        "targets:",
    ]
    for asn, names in NETWORKS.items():
        lines += [
            f"  - {{name: {name}, tcp: 'h:1', country: KZ, category: news, asn: {asn}}}" for name in names
        ]
    if geo_blocked:
        lines.append("  - {name: geoblocked, tcp: 'h:1', country: KZ, category: government, asn: 9198}")
    lines.append("controls:")
    lines += [
        f"  - {{name: control{index}, tcp: 'h:1', country: NL, category: control, asn: {100 + index}}}"
        for index in range(4)
    ]
    return "\n".join(lines) + "\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """Drives an Analyzer through whole probe rounds on a fake clock."""

    def __init__(self, journal: Journal | None = None, catalog: Catalog | None = None) -> None:
        self.clock = Clock()
        self.analyzer = Analyzer(journal, clock=self.clock)
        self.catalog = catalog or parse_catalog(catalog_text())
        self.analyzer.set_catalog(self.catalog)
        self.analyzer.restore()
        self.down: set[str] = {"geoblocked"}

    def round(self, count: int = 1) -> None:
        for _ in range(count):
            for target in self.catalog.targets:
                failed = target.name in self.down
                self.analyzer.record(
                    ProbeResult(
                        target=target.name,
                        started_at=self.clock.now,
                        duration_seconds=0.01,
                        success=not failed,
                        failure=Failure.TCP_TIMEOUT if failed else None,
                        failed_phase=Phase.CONNECT if failed else None,
                    )
                )
            self.clock.now += INTERVAL
            self.analyzer.evaluate()

    def outages(self, scope: Scope | None = None) -> list[str]:
        return sorted(
            f"{outage.scope.value}:{outage.key}"
            for outage in self.analyzer.outages()
            if scope is None or outage.scope is scope
        )

    def metrics(self) -> str:
        return analysis_text(self.analyzer)


@pytest.fixture
def world() -> World:
    world = World()
    world.round(6)  # warm up: everyone but the geo-blocked site is up
    assert world.outages() == []
    return world


def test_hysteresis_needs_n_failures_to_go_down_and_m_successes_to_come_back() -> None:
    state = TargetState(down_after=3, up_after=2)
    ok = ProbeResult("t", 0.0, 0.1, True)
    bad = ProbeResult("t", 0.0, 0.1, False, Failure.TCP_RESET, Phase.CONNECT)
    assert [state.observe(ok), state.observe(ok)] == [False, True] and state.health is Health.UP
    assert [state.observe(bad), state.observe(bad), state.health] == [False, False, Health.UP]
    assert state.observe(bad) and state.health is Health.DOWN
    assert [state.observe(ok), state.observe(bad), state.observe(ok), state.health] == [
        False,
        False,
        False,
        Health.DOWN,
    ]
    assert state.observe(ok) and state.health is Health.UP


def test_one_site_down_is_one_site_outage(world: World) -> None:
    world.down.add("kazinform")
    world.round(5)
    assert world.outages() == ["site:kazinform"]
    outage = world.analyzer.open[(Scope.SITE, "kazinform")]
    assert outage.evidence["tcp_timeout"] >= 3
    assert 'monitor_country_state{country="KZ",state="normal"} 1.0' in world.metrics()
    world.down.discard("kazinform")
    world.round(3)
    assert world.analyzer.open == {}
    assert world.analyzer.outages()[0].ended_at is not None


def test_one_network_down_is_one_network_outage_and_no_site_outages(world: World) -> None:
    world.down.update(NETWORKS[29355])
    world.round(6)
    assert world.outages() == ["network:KZ/AS29355"]
    metrics = world.metrics()
    assert 'monitor_country_state{country="KZ",state="shutdown"} 0.0' in metrics
    assert 'monitor_outages_open{scope="network"} 1.0' in metrics


def test_the_whole_country_down_is_a_shutdown_within_a_bounded_number_of_intervals(world: World) -> None:
    blackout_at = world.clock.now
    world.down.update(name for names in NETWORKS.values() for name in names[:2])  # 6 of 9 down
    rounds = 0
    while (Scope.COUNTRY, "KZ") not in world.analyzer.open:
        world.round()
        rounds += 1
        assert rounds <= 5
    assert world.outages() == ["country:KZ"]  # no network or site outages beside it
    outage = world.analyzer.open[(Scope.COUNTRY, "KZ")]
    assert outage.started_at == blackout_at
    assert "geoblocked" not in outage.targets
    metrics = world.metrics()
    assert 'monitor_country_state{country="KZ",state="shutdown"} 1.0' in metrics
    assert 'monitor_group_reachable_ratio{category="all",country="KZ"} 0.333' in metrics


def test_our_own_vantage_offline_opens_only_a_vantage_outage(world: World) -> None:
    world.down.update(target.name for target in world.catalog.targets)
    world.round(10)
    assert world.outages() == ["vantage:vantage"]
    metrics = world.metrics()
    assert "monitor_vantage_online 0.0" in metrics
    assert 'monitor_country_state{country="KZ",state="unknown"} 1.0' in metrics
    assert 'monitor_target_up{category="news"' not in metrics  # held states show as unknown
    assert 'monitor_target_up{category="control"' in metrics
    assert "monitor_group_reachable_ratio{" not in metrics  # blind: no share, not a 100 % one
    assert world.analyzer.countries["KZ"].ratio is None
    world.down = {"geoblocked"}
    world.round(6)
    assert world.analyzer.open == {}
    assert world.outages() == ["vantage:vantage"]
    assert "monitor_vantage_online 1.0" in world.metrics()


def test_a_flapping_target_opens_no_outages(world: World) -> None:
    for _ in range(10):
        world.down.add("kazinform")
        world.round(2)
        world.down.discard("kazinform")
        world.round(1)
    assert world.outages() == []


def test_a_target_down_from_the_start_never_counts_towards_a_shutdown() -> None:
    world = World()
    world.down.update(["kazinform", "akorda", "kcell", "halyk"])  # down from the start, never seen up
    world.round(8)
    assert world.outages() == []
    assert 'monitor_country_state{country="KZ",state="normal"} 1.0' in world.metrics()


def test_restart_in_the_middle_of_an_outage_keeps_its_start(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal.sqlite"
    first = World(Journal(journal_path))
    first.round(6)
    first.down.update(name for names in NETWORKS.values() for name in names)
    first.round(6)
    started = first.analyzer.open[(Scope.COUNTRY, "KZ")].started_at
    assert first.analyzer.journal.sync(
        first.analyzer.outages(), {n: s.last_up_at for n, s in first.analyzer.states.items() if s.last_up_at}
    )
    second = World(Journal(journal_path))
    second.clock.now = first.clock.now + 30
    second.analyzer.warm_at = 0  # the warm-up guard is tested below; here the restored state matters
    second.down = first.down
    second.round(6)
    assert [(outage.scope, outage.started_at) for outage in second.analyzer.open.values()] == [
        (Scope.COUNTRY, started)
    ]


def test_restart_does_not_close_outages_before_targets_have_a_state_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    first = World(journal)
    first.round(6)
    first.down.add("kazinform")
    first.round(6)
    assert journal.sync(first.analyzer.outages(), {})
    second = World(Journal(tmp_path / "journal.sqlite"))
    second.down = first.down
    second.analyzer.evaluate()
    assert second.outages() == ["site:kazinform"]


def test_an_unwritable_journal_keeps_outages_in_memory_and_counts_errors(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    world = World(Journal(blocked / "journal.sqlite"))
    world.round(6)
    world.down.add("kazinform")
    world.round(5)
    assert world.outages() == ["site:kazinform"]
    metrics = world.metrics()
    assert "monitor_journal_healthy 0.0" in metrics
    assert "monitor_journal_errors_total 0.0" not in metrics


def test_a_network_failing_over_several_rounds_is_one_network_outage_with_the_default_settle() -> None:
    world = World(catalog=parse_catalog(catalog_text().replace("{settle: 10s, ", "{")))
    world.round(8)
    world.down.add("kcell")
    world.round(1)
    world.down.update(["halyk", "kaspi"])
    world.round(10)
    assert world.outages() == ["network:KZ/AS29355"]
    assert world.analyzer.open[(Scope.NETWORK, "KZ/AS29355")].evidence["tcp_timeout"] >= 6


ALL_KZ = [name for names in NETWORKS.values() for name in names]


def default_settle_world() -> World:
    world = World(catalog=parse_catalog(catalog_text().replace("{settle: 10s, ", "{")))
    world.round(8)
    return world


@pytest.mark.parametrize("recovery", ["all at once", "staggered", "in reverse, slowly"])
def test_a_country_coming_back_opens_no_site_or_network_outage(recovery: str) -> None:
    world = default_settle_world()  # settle 45 s: targets that are slow to come back outlast it
    world.down.update(ALL_KZ)
    world.round(10)
    if recovery == "all at once":
        world.down = {"geoblocked"}
        world.round(30)
    else:
        order = ALL_KZ if recovery == "staggered" else ALL_KZ[::-1]
        for name in order:
            world.down.discard(name)
            world.round(2 if recovery == "staggered" else 3)
        world.round(30)
    assert world.outages() == ["country:KZ"]
    assert world.analyzer.open == {}


def test_sites_still_dark_after_the_grace_open_outages_dated_from_the_country_end() -> None:
    world = default_settle_world()
    world.down.update(ALL_KZ)
    world.round(10)
    world.down = {"geoblocked", "kazinform", "kcell"}  # two sites on two networks stay dark
    world.round(40)
    assert world.outages() == ["country:KZ", "site:kazinform", "site:kcell"]
    country = next(o for o in world.analyzer.outages() if o.scope is Scope.COUNTRY)
    assert world.analyzer.open[(Scope.SITE, "kazinform")].started_at == country.ended_at
    assert world.analyzer.cause_of("kazinform") == {
        "scope": "site",
        "key": "kazinform",
        "state": "open",
        "outage_id": world.analyzer.open[(Scope.SITE, "kazinform")].id,
    }


def test_a_network_left_dark_after_the_country_came_back_is_one_network_outage() -> None:
    world = default_settle_world()
    world.down.update(ALL_KZ)
    world.round(10)
    world.down = {"geoblocked", *NETWORKS[29355]}
    world.round(40)
    assert world.outages() == ["country:KZ", "network:KZ/AS29355"]


def test_open_site_and_network_outages_become_part_of_a_country_outage() -> None:
    world = World()
    world.round(6)
    world.down.update(["kazinform", *NETWORKS[29355]])
    world.round(6)
    assert world.outages() == ["network:KZ/AS29355", "site:kazinform"]
    world.down.update(ALL_KZ)
    world.round(3)
    outages = {outage.key: outage for outage in world.analyzer.outages()}
    country = outages["KZ"]
    assert list(world.analyzer.open) == [(Scope.COUNTRY, "KZ")]
    assert outages["kazinform"].absorbed_by == country.id == outages["KZ/AS29355"].absorbed_by
    assert outages["kazinform"].ended_at == country.started_at
    assert world.analyzer.cause_of("kazinform") == {
        "scope": "country",
        "key": "KZ",
        "state": "open",
        "outage_id": country.id,
    }
    # Each failure is evidence of one outage: after the absorption, of the country only.
    site_failures, country_failures = outages["kazinform"].failures, country.failures
    world.round(2)
    assert outages["kazinform"].failures == site_failures
    assert country.failures == country_failures + 2 * len(ALL_KZ)


def test_a_site_flapping_slowly_is_one_outage_for_the_whole_flapping_period() -> None:
    world = World()
    world.round(6)
    for _ in range(10):  # down and up for 40 s each: every segment outlasts the hysteresis
        world.down.add("kazinform")
        world.round(4)
        world.down.discard("kazinform")
        world.round(4)
    assert "kazinform" in world.analyzer.flapping
    assert 'monitor_target_flapping{category="news",country="KZ",target="kazinform"} 1.0' in world.metrics()
    world.round(30)
    # The first segment is an outage of its own (a flap cannot be told from an outage yet);
    # from the second segment on, one outage spans the flapping period.
    first, flapping = sorted(world.analyzer.outages(), key=lambda outage: outage.started_at)
    assert (first.key, flapping.key) == ("kazinform", "kazinform")
    assert first.ended_at is not None and first.ended_at - first.started_at == 40
    assert flapping.ended_at is not None and flapping.ended_at - flapping.started_at > 600
    assert world.analyzer.flapping == set()


def test_a_country_dark_twice_with_a_brief_restoration_is_two_country_outages_and_no_flapping() -> None:
    """The demo's January 2022: dark, back for a moment, dark again but for a whitelist, restored.
    The sites went down and up twice, but those changes were the country's, not flaps."""
    text = catalog_text().replace("{settle: 10s, ", "{").replace("down_after: 3", "down_after: 2")
    world = World(catalog=parse_catalog(text))
    world.round(8)
    world.down.update(ALL_KZ)
    world.round(6)
    world.down = {"geoblocked"}
    world.round(2)
    world.down.update(name for name in ALL_KZ if name not in ("kazinform", "kcell", "tele2"))
    world.round(6)
    world.down = {"geoblocked"}
    world.round(30)
    assert world.outages() == ["country:KZ", "country:KZ"]
    assert world.analyzer.flapping == set()


def test_a_result_that_may_change_a_verdict_asks_for_an_evaluation_before_the_next_round() -> None:
    world = World()
    world.round(6)

    def record(success: bool) -> bool:
        return world.analyzer.record(
            ProbeResult(
                target="kazinform",
                started_at=world.clock.now,
                duration_seconds=0.01,
                success=success,
                failure=None if success else Failure.TCP_TIMEOUT,
                failed_phase=None if success else Phase.CONNECT,
            )
        )

    # down_after 3, group_down_after 2: dark for its country and network at the second failure,
    # down at the third; up again at the second success.
    assert [record(False), record(False), record(False), record(False)] == [False, True, True, False]
    assert [record(True), record(True), record(True)] == [False, True, False]
