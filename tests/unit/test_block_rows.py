"""The end-user blocks as a second signal in the rule table: hand-made cells beside hand-made
targets, verdicts out. A cell is one network's blocks in one region (`blocks.CellView`)."""

from __future__ import annotations

from monitor.catalog.schema import LivenessOptions
from monitor.outages.blocks import Cell, CellView
from monitor.outages.outage import Scope
from monitor.outages.rules import CauseKind, Snapshot, judge
from tests.unit.test_rules import NOW, SETTLE, kz, snapshot, up

ROUND = 60.0
LIVENESS = LivenessOptions(round=f"{ROUND:g}s", timeout="1s")
MOBILE = (20, 21)
FIXED = (10, 11, 12)


def cell(
    asn: int,
    *,
    dark_since: float | None = None,
    blocks: int = 10,
    region: str | None = None,
    seen_up_at: float = NOW - 1,
    back_since: float | None = None,
    **extra: object,
) -> CellView:
    """`blocks` blocks usually up; all down since `dark_since`, else all seen up at `seen_up_at`."""
    kind = "mobile" if asn in MOBILE else "fixed"
    dark = dark_since is not None
    return CellView(
        Cell("KZ", asn, region, kind),
        up=0 if dark else blocks,
        down=blocks if dark else 0,
        baseline=float(blocks),
        dark_since=dark_since,
        back_since=back_since,
        up_times=() if dark else (seen_up_at,) * blocks,
        down_since=(dark_since,) * blocks if dark else (),  # type: ignore[arg-type]
        probed_times=(dark_since if dark else seen_up_at,) * blocks,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def country(dark: dict[int, float] | None = None, **extra: object) -> tuple[CellView, ...]:
    """Three fixed and two mobile networks' blocks; those in `dark` down since the value."""
    dark = dark or {}
    return tuple(cell(asn, dark_since=dark.get(asn), **extra) for asn in (*FIXED, *MOBILE))


def sites() -> list:  # type: ignore[type-arg]
    """Nine sites on the fixed networks and one on each mobile network, all up."""
    return [*kz({}), up("kcell", 20), up("tele2", 21)]


def with_cells(cells: tuple[CellView, ...], targets: list | None = None, **extra: object) -> Snapshot:  # type: ignore[type-arg]
    return snapshot(sites() if targets is None else targets, cells=cells, liveness=LIVENESS, **extra)


def test_without_a_baseline_blocks_say_nothing() -> None:
    cells = tuple(
        CellView(view.cell, 0, 10, None, NOW - 300, None)
        for view in country({asn: NOW - 300 for asn in FIXED})
    )
    assert judge(with_cells(cells)).wanted == {}


def test_a_network_dark_by_its_blocks_alone_opens_once_its_country_was_seen_up_since() -> None:
    verdict = judge(with_cells(country({10: NOW - 30})))
    network = verdict.wanted[(Scope.NETWORK, "KZ/AS10")]
    assert network.started_at == NOW - 30
    assert network.members == ("blocks:KZ/AS10",)
    assert network.details["signals"] == ["blocks"]
    assert network.details["blocks"] == {
        "up": 0,
        "down": 10,
        "baseline": 10.0,
        "down_by_network": {"AS10": 10},
    }
    assert verdict.cause["blocks:KZ/AS10"] == ((Scope.NETWORK, "KZ/AS10"), CauseKind.OPEN)
    assert verdict.countries["KZ"].verdict == "network"


def test_a_narrower_group_waits_for_the_wider_groups_blocks_to_be_seen_up_or_three_rounds() -> None:
    not_seen = country({10: NOW - 30}, seen_up_at=NOW - 40)  # the rest last probed before it went dark
    verdict = judge(with_cells(not_seen))
    assert verdict.wanted == {}
    assert verdict.cause["blocks:KZ/AS10"] == ((Scope.NETWORK, "KZ/AS10"), CauseKind.PENDING)
    waited = SETTLE + 3 * ROUND  # rounds run long while dark blocks time out
    later = country({10: NOW - waited}, seen_up_at=NOW - waited - 10)
    assert list(judge(with_cells(later)).wanted) == [(Scope.NETWORK, "KZ/AS10")]


def test_a_network_dark_by_its_targets_and_blocks_is_confirmed_by_both() -> None:
    targets = [*kz({"a1": NOW - 50, "a2": NOW - 50, "a3": NOW - 50}), up("kcell", 20), up("tele2", 21)]
    verdict = judge(with_cells(country({10: NOW - 20}), targets))
    network = verdict.wanted[(Scope.NETWORK, "KZ/AS10")]
    assert network.details["signals"] == ["blocks", "targets"]
    assert network.started_at == NOW - 50  # its targets show it: dated by them
    assert network.members == ("a1", "a2", "a3", "blocks:KZ/AS10")
    just_targets = judge(with_cells(country(), targets)).wanted[(Scope.NETWORK, "KZ/AS10")]
    assert just_targets.details["signals"] == ["targets"] and "blocks" not in just_targets.details


def test_the_mobile_networks_dark_by_their_blocks_are_mobile_only_while_their_websites_stay_up() -> None:
    dark = {20: NOW - 40, 21: NOW - 35}
    verdict = judge(with_cells(country(dark)))
    assert list(verdict.wanted) == [(Scope.MOBILE, "KZ/mobile")]
    mobile = verdict.wanted[(Scope.MOBILE, "KZ/mobile")]
    assert mobile.started_at == NOW - 35 and mobile.details["signals"] == ["blocks"]
    assert mobile.members == ("blocks:KZ/AS20", "blocks:KZ/AS21")
    assert verdict.countries["KZ"].verdict == "mobile_only"
    assert "kcell" not in verdict.cause  # the operator's website is up


def test_one_mobile_network_dark_is_that_network_not_the_mobile_networks() -> None:
    verdict = judge(with_cells(country({20: NOW - 40})))
    assert list(verdict.wanted) == [(Scope.NETWORK, "KZ/AS20")]


def test_a_country_dark_by_its_blocks_on_several_networks_is_a_shutdown() -> None:
    dark = {asn: NOW - 60 + asn for asn in (*FIXED, *MOBILE)}
    verdict = judge(with_cells(country(dark)))
    assert list(verdict.wanted) == [(Scope.COUNTRY, "KZ")]
    shutdown = verdict.wanted[(Scope.COUNTRY, "KZ")]
    # over half of the 50 blocks down with AS12, but dated when the last dark network went: its
    # blocks may have been down for a narrower event before
    assert shutdown.started_at == NOW - 60 + 21
    assert shutdown.details["signals"] == ["blocks"]
    assert shutdown.verdict == "whitelist"  # its sites answer from abroad: they survive
    assert verdict.countries["KZ"].state == "shutdown"


def test_a_region_dark_by_its_blocks_on_two_networks_while_the_rest_is_up() -> None:
    cells = (
        cell(10, region="KZ-75", dark_since=NOW - 50),
        cell(11, region="KZ-75", dark_since=NOW - 45),
        cell(10, region="KZ-71"),
        cell(11, region="KZ-71"),
        cell(12, region="KZ-71"),
    )
    verdict = judge(with_cells(cells))
    assert list(verdict.wanted) == [(Scope.REGION, "KZ/KZ-75")]
    assert verdict.wanted[(Scope.REGION, "KZ/KZ-75")].details["region"] == "KZ-75"


def test_the_gate_comes_first_blocks_open_nothing_while_we_cannot_see_out() -> None:
    verdict = judge(with_cells(country({10: NOW - 300}), vantage_online=False, vantage_changed_at=NOW - 310))
    assert set(verdict.wanted) == {(Scope.VANTAGE, "vantage")}


def test_an_outage_of_blocks_ends_when_its_blocks_came_back() -> None:
    back = cell(10, back_since=NOW - 12)
    cells = (back, *country()[1:])
    verdict = judge(with_cells(cells, open_since={(Scope.NETWORK, "KZ/AS10"): NOW - 300}))
    assert verdict.ended_at[(Scope.NETWORK, "KZ/AS10")] == NOW - 12


def test_cells_still_dark_when_the_country_ended_are_held_then_dark_from_its_end() -> None:
    country_key = (Scope.COUNTRY, "KZ")
    straggler = cell(10, dark_since=NOW - 600, explained_by=country_key)
    cells = (straggler, *country(back_since=NOW - 5)[1:])
    verdict = judge(with_cells(cells, open_since={country_key: NOW - 600}))
    assert country_key in verdict.ended_at
    assert verdict.cause["blocks:KZ/AS10"] == (country_key, CauseKind.RECOVERING)
    assert verdict.released["blocks:KZ/AS10"][1] == country_key
    ended = verdict.released["blocks:KZ/AS10"][0]
    after_grace = NOW + 5 * SETTLE + 1
    released = cell(10, dark_since=NOW - 600, released_at=ended, released_from=country_key)
    later = judge(with_cells((released, *country()[1:]), now=after_grace))
    network = later.wanted[(Scope.NETWORK, "KZ/AS10")]
    assert network.started_at == ended


def test_mobile_networks_with_fewer_blocks_than_min_blocks_each_count_together() -> None:
    small = tuple(cell(asn, dark_since=NOW - 40, blocks=2) for asn in MOBILE)  # 4 >= min_blocks (3)
    verdict = judge(with_cells((*country()[:3], *small)))
    assert list(verdict.wanted) == [(Scope.MOBILE, "KZ/mobile")]


def test_a_group_dark_by_its_targets_also_claims_its_dark_cells() -> None:
    """Else they could open a narrower outage of their own while the wider one is open."""
    dark = {name: NOW - 50 for name in ("a1", "a2", "a3", "b1", "b2", "b3")}
    targets = [*kz(dark), up("kcell", 20), up("tele2", 21)]
    cells = country({10: NOW - 45, 20: NOW - 45})  # two networks' blocks: not the country's half
    verdict = judge(with_cells(cells, targets))
    shutdown = verdict.wanted[(Scope.COUNTRY, "KZ")]
    assert shutdown.details["signals"] == ["targets"]
    assert {"blocks:KZ/AS10", "blocks:KZ/AS20"} <= set(shutdown.members)
    assert list(verdict.wanted) == [(Scope.COUNTRY, "KZ")]


def test_a_country_is_not_dated_from_its_mobile_networks_blocks_dark_before_it() -> None:
    """The mobile networks hold most of the blocks and went dark first (mobile_only); the
    country is dark from when its fixed networks went too."""
    mobile = tuple(cell(asn, dark_since=NOW - 300, blocks=20) for asn in MOBILE)
    fixed = tuple(cell(asn, dark_since=NOW - 30) for asn in FIXED)
    verdict = judge(with_cells((*fixed, *mobile)))
    assert list(verdict.wanted) == [(Scope.COUNTRY, "KZ")]
    assert verdict.wanted[(Scope.COUNTRY, "KZ")].started_at == NOW - 30
