"""The rule table row by row: hand-made snapshots in, verdicts out (no clock, no state)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

from monitor.catalog.schema import AnalysisOptions
from monitor.outages.outage import Scope
from monitor.outages.rules import RULES, CauseKind, Snapshot, TargetView, covers, judge
from monitor.outages.state import Health

NOW = 10_000.0
SETTLE = 40.0
README = Path(__file__).resolve().parents[2] / "README.md"


def up(name: str, asn: int = 1, country: str = "KZ", since: float = 0.0, **extra: object) -> TargetView:
    fields = dict(
        name=name,
        country=country,
        asn=asn,
        control=False,
        category="news",
        health=Health.UP,
        failing=0,
        run_started_at=since,
        state_since=since,
        last_up_at=NOW - 5,
    )
    fields.update(extra)
    return TargetView(**fields)  # type: ignore[arg-type]


def down(name: str, asn: int = 1, since: float = NOW - 100, **extra: object) -> TargetView:
    return up(
        name,
        asn,
        health=Health.DOWN,
        failing=5,
        run_started_at=since,
        state_since=since,
        last_up_at=since - 10,
        **extra,
    )


def controls(count: int = 4, failing: int = 0) -> list[TargetView]:
    return [
        up(f"control{i}", asn=100 + i, country="NL", control=True, failing=1 if i < failing else 0)
        for i in range(count)
    ]


def snapshot(targets: list[TargetView], **extra: object) -> Snapshot:
    fields: dict[str, object] = dict(
        now=NOW,
        targets=tuple([*targets, *controls()]),
        open_since={},
        options=AnalysisOptions(),
        settle=SETTLE,
        recovery_grace=5 * SETTLE,
    )
    fields.update(extra)
    return Snapshot(**fields)  # type: ignore[arg-type]


def kz(dark: dict[str, float], asns: int = 3, per_asn: int = 3) -> list[TargetView]:
    """`asns` networks of `per_asn` sites, named a1..c3; those in `dark` down since the value."""
    views = []
    for index in range(asns):
        for number in range(1, per_asn + 1):
            name = f"{'abcdef'[index]}{number}"
            asn = 10 + index
            views.append(down(name, asn, since=dark[name]) if name in dark else up(name, asn))
    return views


def wanted_keys(snapshot: Snapshot) -> list[str]:
    return sorted(f"{scope.value}:{key}" for scope, key in judge(snapshot).wanted)


# -- country row ---------------------------------------------------------------------------------


def test_country_row_claims_the_dark_targets_and_dates_the_start_by_the_member_that_crossed() -> None:
    dark = {name: NOW - 60 + i for i, name in enumerate(["a1", "a2", "b1", "b2", "c1", "c2"])}
    verdict = judge(snapshot(kz(dark)))
    assert list(verdict.wanted) == [(Scope.COUNTRY, "KZ")]
    country = verdict.wanted[(Scope.COUNTRY, "KZ")]
    # 9 counted, shutdown at share <= 0.5: the 5th target to go dark took it over.
    assert country.started_at == NOW - 60 + 4
    assert {name for name, (key, _) in verdict.cause.items() if key == (Scope.COUNTRY, "KZ")} == set(dark)
    assert verdict.countries["KZ"].state == "shutdown"


def test_country_row_needs_several_networks() -> None:
    dark = {name: NOW - 60 for name in ["a1", "a2", "a3"]}
    verdict = judge(snapshot(kz(dark, asns=2)))
    assert (Scope.COUNTRY, "KZ") not in verdict.wanted
    assert list(verdict.wanted) == [(Scope.NETWORK, "KZ/AS10")]


def test_country_row_does_not_count_targets_never_seen_up() -> None:
    geo_blocked = [replace(down(f"g{i}", 10 + i), last_up_at=None) for i in range(5)]
    verdict = judge(snapshot([*kz({}), *geo_blocked]))
    assert verdict.wanted == {} and verdict.countries["KZ"].state == "normal"


def test_country_ends_when_the_recovery_of_a_member_lifts_the_share_over_the_threshold() -> None:
    views = kz({name: NOW - 300 for name in ["a1", "a2", "a3", "b1", "b2", "b3"]})
    back = {"a1": NOW - 30, "a2": NOW - 20, "b1": NOW - 10}  # 3 + 3 up of 9: over 0.5 with the 5th
    country = (Scope.COUNTRY, "KZ")
    views = [
        replace(
            view, health=Health.UP, failing=0, run_started_at=back[view.name], state_since=back[view.name]
        )
        if view.name in back
        else replace(view, explained_by=country)
        for view in views
    ]
    verdict = judge(snapshot(views, open_since={country: NOW - 290}))
    assert verdict.wanted == {}
    assert verdict.ended_at[country] == NOW - 20
    assert verdict.released == {name: (NOW - 20, country) for name in ["a3", "b2", "b3"]}


# -- network row ---------------------------------------------------------------------------------


def seen_last_at(views: list[TargetView], at: float) -> list[TargetView]:
    return [replace(view, last_up_at=at) if view.health is Health.UP else view for view in views]


def test_network_row_waits_until_the_country_was_seen_up_since_its_last_member_went_dark() -> None:
    dark = {"a1": NOW - 100, "a2": NOW - 100, "a3": NOW - SETTLE / 2}
    not_seen_since = seen_last_at(kz(dark), NOW - SETTLE)  # the others' latest probes began before
    verdict = judge(snapshot(not_seen_since))
    assert verdict.wanted == {}
    assert verdict.cause["a1"] == ((Scope.NETWORK, "KZ/AS10"), CauseKind.PENDING)  # no site outage meanwhile
    seen_since = seen_last_at(kz(dark), NOW - 1)  # a probe started after a cut would have failed
    verdict = judge(snapshot(seen_since))
    assert list(verdict.wanted) == [(Scope.NETWORK, "KZ/AS10")]
    assert verdict.wanted[(Scope.NETWORK, "KZ/AS10")].started_at == NOW - SETTLE / 2
    dark["a3"] = NOW - SETTLE  # nobody seen since, but `settle` has passed
    assert wanted_keys(snapshot(seen_last_at(kz(dark), NOW - 2 * SETTLE))) == ["network:KZ/AS10"]


# -- site row ------------------------------------------------------------------------------------


def test_site_row_waits_until_its_network_was_seen_up_since_it_went_dark() -> None:
    dark_since = NOW - SETTLE / 2
    views = seen_last_at(kz({"a1": dark_since}), NOW - 1)
    peers_not_seen = [replace(v, last_up_at=dark_since - 1) if v.name in ("a2", "a3") else v for v in views]
    assert judge(snapshot(peers_not_seen)).wanted == {}
    assert wanted_keys(snapshot(views)) == ["site:a1"]


def test_site_row_never_opens_for_a_target_never_seen_up() -> None:
    never_up = replace(down("z9", 99, since=NOW - 10 * SETTLE), last_up_at=None)
    assert judge(snapshot([*kz({}), never_up])).wanted == {}


def test_a_flapping_target_keeps_its_site_outage_while_up() -> None:
    flapping = replace(up("a1", 10, since=NOW - 5), flapping_since=NOW - 200)
    open_site = {(Scope.SITE, "a1"): NOW - 200}
    verdict = judge(snapshot([flapping, *kz({})[1:]], open_since=open_site))
    assert list(verdict.wanted) == [(Scope.SITE, "a1")]
    calm = replace(flapping, flapping_since=None)
    verdict = judge(snapshot([calm, *kz({})[1:]], open_since=open_site))
    assert verdict.ended_at[(Scope.SITE, "a1")] == NOW - 5


# -- no churn: release and recovery grace --------------------------------------------------------


def test_targets_still_dark_when_the_country_ends_are_released_and_held_for_the_grace() -> None:
    views = kz({name: NOW - 300 for name in ["a1", "a2", "a3", "b1", "b2", "b3", "c1"]})
    back = {"a2", "a3", "b2", "b3", "c1"}  # a1 and b1 still down
    views = [
        replace(v, health=Health.UP, failing=0, run_started_at=NOW - 4, state_since=NOW - 4)
        if v.name in back
        else v
        for v in views
    ]
    country = (Scope.COUNTRY, "KZ")
    views = [replace(view, explained_by=country) for view in views]
    verdict = judge(snapshot(views, open_since={country: NOW - 290}))
    assert verdict.wanted == {}
    assert set(verdict.released) == {"a1", "b1"}
    assert verdict.cause["a1"] == (country, CauseKind.RECOVERING)
    later = [
        replace(view, explained_by=None, released_at=NOW - 4, released_from=country)
        if view.name in ("a1", "b1")
        else replace(view, explained_by=None)
        for view in views
    ]
    within = judge(snapshot(later, now=NOW + 5 * SETTLE - 10))
    assert within.wanted == {} and within.cause["b1"][1] == CauseKind.RECOVERING
    after = judge(snapshot(later, now=NOW + 5 * SETTLE))
    assert sorted(after.wanted) == [(Scope.SITE, "a1"), (Scope.SITE, "b1")]
    assert after.wanted[(Scope.SITE, "a1")].started_at == NOW - 4  # from the country's end on


# -- the gate ------------------------------------------------------------------------------------


def test_while_the_vantage_is_offline_only_the_vantage_outage_is_wanted_and_the_rest_is_frozen() -> None:
    views = kz({name: NOW - 300 for name in ["a1", "a2", "a3", "b1", "b2", "b3"]})
    verdict = judge(snapshot(views, vantage_online=False, vantage_changed_at=NOW - 30))
    assert list(verdict.wanted) == [(Scope.VANTAGE, "vantage")] and verdict.frozen
    assert verdict.wanted[(Scope.VANTAGE, "vantage")].started_at == NOW - 30
    assert verdict.countries["KZ"].state == "unknown" and verdict.countries["KZ"].ratio is None


def test_just_after_the_vantage_came_back_nothing_opens_for_settle() -> None:
    views = kz({"a1": NOW - 300})
    assert judge(snapshot(views, vantage_changed_at=NOW - SETTLE + 1)).frozen
    assert wanted_keys(snapshot(views, vantage_changed_at=NOW - SETTLE)) == ["site:a1"]


def test_a_blind_spell_of_our_own_is_a_self_outage_and_freezes_nothing() -> None:
    verdict = judge(snapshot(kz({"a1": NOW - 300}), blind_since=NOW - 50, last_stall_at=NOW - 45))
    assert set(verdict.wanted) == {(Scope.SITE, "a1"), (Scope.SELF, "self")}
    healthy = judge(snapshot(kz({}), open_since={(Scope.SELF, "self"): NOW - 50}, last_stall_at=NOW - 45))
    assert healthy.ended_at[(Scope.SELF, "self")] == NOW - 45


def test_the_readme_outage_states_table_matches_the_rule_rows_one_to_one() -> None:
    readme = README.read_text()
    table = readme[readme.index("| scope | who may go dark together") :]
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), table.splitlines()))[2:]
    gate_rows = [row for row in rows if row.startswith(("| **self**", "| **vantage**"))]
    rule_rows = [row for row in rows if row not in gate_rows]
    assert len(gate_rows) == 2
    assert len(rule_rows) == len(RULES)
    for row, rule in zip(rule_rows, RULES, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells == [
            f"**{rule.scope.value}**",
            rule.who,
            rule.member_dark,
            rule.threshold,
            rule.settle,
            rule.verdict,
        ], row


def test_a_country_outage_ends_with_the_recovery_of_targets_that_failed_without_going_down() -> None:
    """Dark for the country after two failures, never down (down_after 3): back with the first
    success of their new run, not at the last change of their state long before."""
    names = ["a1", "a2", "a3", "b1", "b2", "b3"]
    views = [
        replace(view, state_since=0.0, run_started_at=NOW - 8) if view.name in names else view
        for view in kz({})
    ]
    country = (Scope.COUNTRY, "KZ")
    verdict = judge(snapshot(views, open_since={country: NOW - 60}))
    assert verdict.ended_at[country] == NOW - 8


# -- the typed verdicts --------------------------------------------------------------------------


def _placed(views: list[TargetView], regions: dict[str, str], kinds: dict[int, str]) -> list[TargetView]:
    return [replace(v, region=regions.get(v.name[0]), network_kind=kinds.get(v.asn or 0)) for v in views]


def country_verdict(snap: Snapshot, country: str = "KZ") -> str:
    return judge(snap).countries[country].verdict


def test_a_region_dark_while_the_rest_answers_is_regional_not_the_country() -> None:
    # a (AS10) and b (AS11) sites in Almaty, c and d elsewhere: Almaty is 6 of 12, all dark
    views = _placed(
        kz({f"{x}{n}": NOW - 100 for x in "ab" for n in (1, 2, 3)}, asns=4),
        {"a": "KZ-75", "b": "KZ-75", "c": "KZ-71", "d": "KZ-71"},
        {},
    )
    snap = snapshot(views)
    assert wanted_keys(snap) == ["region:KZ/KZ-75"]
    verdict = judge(snap)
    assert verdict.wanted[(Scope.REGION, "KZ/KZ-75")].details["networks"] == {"AS10": 3, "AS11": 3}
    assert verdict.countries["KZ"].verdict == "regional"
    assert verdict.countries["KZ"].by_region == {"KZ-71": 1.0, "KZ-75": 0.0}


def test_every_region_dark_is_the_country() -> None:
    dark = {f"{x}{n}": NOW - 100 for x in "abcd" for n in (1, 2, 3)}
    views = _placed(kz(dark, asns=4), {"a": "KZ-75", "b": "KZ-75", "c": "KZ-71", "d": "KZ-71"}, {})
    assert wanted_keys(snapshot(views)) == ["country:KZ"]


def test_every_mobile_network_dark_while_a_fixed_one_answers_is_mobile_only() -> None:
    views = _placed(
        kz({f"{x}{n}": NOW - 100 for x in "ab" for n in (1, 2, 3)}, asns=5),
        {},
        {10: "mobile", 11: "mobile", 12: "fixed"},
    )
    snap = snapshot(views)
    assert wanted_keys(snap) == ["mobile:KZ/mobile"]
    assert country_verdict(snap) == "mobile_only"


def test_mobile_networks_dark_without_a_fixed_one_up_are_not_mobile_only() -> None:
    views = _placed(
        kz({f"{x}{n}": NOW - 100 for x in "ab" for n in (1, 2, 3)}, asns=5),
        {},
        {10: "mobile", 11: "mobile", 12: "hosting"},
    )
    assert wanted_keys(snapshot(views)) == ["network:KZ/AS10", "network:KZ/AS11"]


def test_one_mobile_network_dark_is_that_network() -> None:
    views = _placed(
        kz({f"a{n}": NOW - 100 for n in (1, 2, 3)}), {}, {10: "mobile", 11: "mobile", 12: "fixed"}
    )
    assert wanted_keys(snapshot(views)) == ["network:KZ/AS10"]


def test_a_shutdown_with_survivors_seen_up_since_is_a_whitelist_naming_them() -> None:
    dark = {name: NOW - 100 for name in ("a1", "a2", "b1", "b2", "c1", "c2")}
    views = kz(dark, asns=3, per_asn=3)  # a3, b3, c3 answer, seen up 5 s ago
    verdict = judge(snapshot(views))
    wanted = verdict.wanted[(Scope.COUNTRY, "KZ")]
    assert wanted.verdict == "whitelist" and wanted.details["survivors"] == ["a3", "b3", "c3"]
    assert verdict.countries["KZ"].verdict == "whitelist"


def test_a_shutdown_with_fewer_survivors_is_full_and_undecided_while_one_is_not_seen_since() -> None:
    dark = {name: NOW - 100 for name in ("a1", "a2", "a3", "b1", "b2", "b3", "c1")}
    views = kz(dark)
    assert judge(snapshot(views)).wanted[(Scope.COUNTRY, "KZ")].verdict == "full"
    stale = [replace(v, last_up_at=NOW - 200) if v.name == "c2" else v for v in views]
    assert judge(snapshot(stale)).wanted[(Scope.COUNTRY, "KZ")].verdict == ""


def _slow(view: TargetView, since: float = NOW - 30) -> TargetView:
    return replace(view, slow_since=since, speed=(0.2, 1.5))


def _normal(view: TargetView) -> TargetView:
    return replace(view, speed=(0.2, 0.21))


def test_a_network_all_of_whose_sites_are_slow_is_throttled_and_never_dark() -> None:
    views = [_slow(v) if v.asn == 10 else _normal(v) for v in kz({})]
    verdict = judge(snapshot(views))
    assert wanted_keys(snapshot(views)) == ["throttling:KZ/AS10"]
    assert verdict.wanted[(Scope.THROTTLING, "KZ/AS10")].details["seconds"]["a1"] == {
        "baseline": 0.2,
        "latest": 1.5,
    }
    assert verdict.countries["KZ"].verdict == "throttled" and verdict.countries["KZ"].state == "normal"


def test_most_of_a_country_slow_is_one_country_throttling() -> None:
    views = [_normal(v) if v.name in ("c2", "c3") else _slow(v) for v in kz({})]
    assert wanted_keys(snapshot(views)) == ["throttling:KZ"]


def test_slow_controls_mean_our_own_uplink_is_slow_and_nothing_is_throttled() -> None:
    views = [_slow(v) if v.asn == 10 else _normal(v) for v in kz({})]
    slow_controls = [_slow(v) for v in controls()]
    snap = snapshot(views)
    snap = replace(snap, targets=(*views, *slow_controls))
    assert wanted_keys(snap) == []


def test_one_tampered_name_is_dns_tampering_of_its_country() -> None:
    views = [*kz({}), up("dns-x", kind="dns", tampered_since=NOW - 20)]
    snap = snapshot(views)
    assert wanted_keys(snap) == ["dns:KZ"]
    assert country_verdict(snap) == "dns_tampering"


def test_the_country_verdict_is_the_widest_outage_and_the_gates_come_first() -> None:
    views = [*kz({f"a{n}": NOW - 100 for n in (1, 2, 3)}), up("dns-x", kind="dns", tampered_since=NOW - 20)]
    assert country_verdict(snapshot(views)) == "network"
    assert country_verdict(snapshot(kz({}))) == "normal"
    assert country_verdict(snapshot(views, vantage_online=False)) == "vantage"
    assert country_verdict(snapshot(views, blind_since=NOW - 5)) == "self"


def test_a_country_throttling_covers_its_networks_and_wider_scopes_cover_narrower() -> None:
    assert covers((Scope.THROTTLING, "KZ"), (Scope.THROTTLING, "KZ/AS10"))
    assert not covers((Scope.THROTTLING, "KZ/AS10"), (Scope.THROTTLING, "KZ"))
    assert not covers((Scope.THROTTLING, "KG"), (Scope.THROTTLING, "KZ/AS10"))
    assert covers((Scope.MOBILE, "KZ/mobile"), (Scope.NETWORK, "KZ/AS10"))
    assert covers((Scope.COUNTRY, "KZ"), (Scope.REGION, "KZ/KZ-75"))
    assert not covers((Scope.REGION, "KZ/KZ-75"), (Scope.MOBILE, "KZ/mobile"))


def test_a_throttling_ends_when_its_first_member_is_back_to_its_usual_speed() -> None:
    views = [
        replace(_normal(v), normal_since=NOW - 12)
        if v.name == "a1"
        else (_slow(v) if v.asn == 10 else _normal(v))
        for v in kz({})
    ]
    key = (Scope.THROTTLING, "KZ/AS10")
    verdict = judge(snapshot(views, open_since={key: NOW - 60}))
    assert key not in verdict.wanted and verdict.ended_at[key] == NOW - 12


def test_a_target_that_began_failing_before_its_country_came_back_is_that_outage_recovering() -> None:
    # the country is back; c4 failed once just before the end, too late to be claimed
    back = [replace(view, run_started_at=NOW - 5) for view in kz({})]  # all back 5 s ago
    views = [*back, replace(up("c4", 12), failing=1, run_started_at=NOW - 8)]
    verdict = judge(snapshot(views, open_since={(Scope.COUNTRY, "KZ"): NOW - 300}))
    assert (Scope.COUNTRY, "KZ") in verdict.ended_at
    assert verdict.cause["c4"] == ((Scope.COUNTRY, "KZ"), CauseKind.RECOVERING)


def test_sites_coming_back_at_a_shutdowns_end_are_no_survivors_when_the_dark_ones_flicker() -> None:
    """The demo's "dark again" ending in Almaty dark: everything is restored, then Almaty cut
    again. Sites back 2 s ago are the end of the shutdown; the Almaty ones that answered one probe
    in between are dark again from 1 s ago, which must not become the shutdown's start."""
    back = ("a3", "b3", "c3")
    dark = {name: NOW - 1 for name in ("a1", "a2", "b1", "b2", "c1", "c2")}
    views = [
        replace(view, run_started_at=NOW - 2, last_up_at=NOW) if view.name in back else view
        for view in kz(dark)
    ]
    assert judge(snapshot(views)).wanted[(Scope.COUNTRY, "KZ")].verdict == "whitelist"  # not yet open
    open_since = {(Scope.COUNTRY, "KZ"): NOW - 20}
    assert judge(snapshot(views, open_since=open_since)).wanted[(Scope.COUNTRY, "KZ")].verdict == "full"
