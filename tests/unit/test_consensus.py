"""Outages merged across vantages: who saw what, and the consensus the global rules would reach."""

from __future__ import annotations

import pytest

from monitor.catalog.catalog import parse_catalog
from monitor.catalog.problems import ConfigError
from monitor.outages.consensus import VantageOutages, merge
from monitor.outages.outage import Outage, Scope

KZ = frozenset({"KZ"})


def _outage(
    vantage: str, start: float, end: float | None, scope: Scope = Scope.COUNTRY, key: str = "KZ"
) -> Outage:
    country = None if scope in (Scope.VANTAGE, Scope.SELF) else "KZ"
    return Outage(scope, key, start, country=country, ended_at=end, vantage=vantage)


def _answer(vantage: str, *outages: Outage) -> VantageOutages:
    return VantageOutages(vantage, f"http://{vantage}:9143", outages, KZ)


def test_a_country_dark_from_every_vantage_is_one_confirmed_outage_with_each_sighting() -> None:
    answers = [
        _answer("a", _outage("a", 100, 400)),
        _answer("b", _outage("b", 130, 390)),
        _answer("c", _outage("c", 110, None)),
    ]
    (merged,) = merge(answers)
    assert merged.consensus == "confirmed"
    assert merged.seen_by == ["a", "b", "c"] and merged.not_seen_by == []
    assert (merged.first_seen, merged.last_seen) == (100, None)  # c still sees it
    assert [s.vantage for s in merged.sightings] == ["a", "c", "b"]  # oldest first


def test_two_of_three_confirm_one_of_three_is_partial_visibility() -> None:
    two = merge([_answer("a", _outage("a", 100, 200)), _answer("b", _outage("b", 150, 250)), _answer("c")])
    assert [(m.consensus, m.not_seen_by) for m in two] == [("confirmed", ["c"])]
    one = merge([_answer("a"), _answer("b"), _answer("c", _outage("c", 100, 200))])
    assert [(m.consensus, m.seen_by, m.not_seen_by) for m in one] == [
        ("partial_visibility", ["c"], ["a", "b"])
    ]


def test_outages_that_do_not_overlap_in_time_are_not_the_same_outage() -> None:
    merged = merge([_answer("a", _outage("a", 100, 200)), _answer("b", _outage("b", 300, 400))])
    assert [(m.first_seen, m.seen_by, m.consensus) for m in merged] == [
        (300, ["b"], "partial_visibility"),
        (100, ["a"], "partial_visibility"),
    ]


def test_a_blind_vantage_does_not_vote_and_a_lone_voter_cannot_confirm() -> None:
    blind_b = _outage("b", 50, 500, Scope.VANTAGE, "vantage")
    merged = merge([_answer("a", _outage("a", 100, 200)), _answer("b", blind_b)])
    country = next(m for m in merged if m.scope is Scope.COUNTRY)
    assert (country.consensus, country.blind, country.not_seen_by) == ("single_vantage", ["b"], [])
    own = next(m for m in merged if m.scope is Scope.VANTAGE)
    assert (own.consensus, own.seen_by) == ("own", ["b"])


def test_own_outages_of_two_vantages_are_never_merged() -> None:
    merged = merge(
        [_answer("a", _outage("a", 100, 200, Scope.VANTAGE, "vantage")),
         _answer("b", _outage("b", 100, 200, Scope.VANTAGE, "vantage"))]
    )  # fmt: skip
    assert sorted(m.seen_by[0] for m in merged) == ["a", "b"] and {m.consensus for m in merged} == {"own"}


def test_unavailable_and_uninformed_vantages_do_not_vote() -> None:
    down = VantageOutages("b", "http://b:9143", error="no answer within 15s")
    elsewhere = VantageOutages("c", "http://c:9143", (), frozenset({"UZ"}))
    (merged,) = merge([_answer("a", _outage("a", 100, 200)), down, elsewhere])
    assert (merged.consensus, merged.unavailable, merged.not_seen_by) == ("single_vantage", ["b"], [])


def test_a_part_of_a_wider_outage_is_not_listed_on_its_own() -> None:
    part = Outage(Scope.NETWORK, "KZ/AS9198", 100, country="KZ", ended_at=150, absorbed_by="x", vantage="a")
    merged = merge([_answer("a", part, _outage("a", 150, 300)), _answer("b", _outage("b", 160, 300))])
    assert [(m.scope, m.consensus) for m in merged] == [(Scope.COUNTRY, "confirmed")]


def test_min_vantages_is_the_k_of_the_rule() -> None:
    answers = [_answer(name, _outage(name, 100, 200)) for name in "ab"] + [_answer("c")]
    assert merge(answers, min_vantages=3)[0].consensus == "partial_visibility"


def test_an_outage_comes_back_from_its_json_as_it_was() -> None:
    outage = Outage(
        Scope.NETWORK, "KZ/AS9198", 100.5, country="KZ", asn=9198, targets=["kcell"], verdict="network",
        vantage="fra1",
    )  # fmt: skip
    outage.evidence["tcp_timeout"] = 3
    assert Outage.from_dict(outage.as_dict()) == outage
    with pytest.raises(ValueError, match="needs 'scope'"):
        Outage.from_dict({"key": "KZ"})
    with pytest.raises(ValueError, match="outage x: "):
        Outage.from_dict({**outage.as_dict(), "id": "x", "started_at": "soon"})


def test_the_catalog_names_its_vantage_with_a_located_error_when_it_cannot_be_a_label() -> None:
    assert parse_catalog("vantage: fra1\n").vantage == "fra1"
    with pytest.raises(ConfigError) as caught:
        parse_catalog("vantage: 'two words'\n", "targets.yaml")
    assert "targets.yaml:1" in str(caught.value) and "vantage" in str(caught.value)
