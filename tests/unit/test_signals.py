"""Slow but up, and resolvers that disagree: the per-target signals beside up and down."""

from __future__ import annotations

from monitor.catalog.schema import AnalysisOptions
from monitor.outages.consistency import TamperState, consistent
from monitor.outages.slowness import SpeedState
from monitor.probing.failures import Failure
from monitor.probing.result import ResolverAnswer

OPTIONS = AnalysisOptions.model_validate(
    {"slow_factor": 3, "slow_min_seconds": "500ms", "slow_baseline_probes": 10}
)


def feed(speed: SpeedState, seconds: list[float], start: float = 0.0) -> list[bool]:
    return [speed.observe(start + i, s, OPTIONS, 3, 2) for i, s in enumerate(seconds)]


def test_no_baseline_no_slowness() -> None:
    speed = SpeedState()
    assert feed(speed, [0.1, 5.0, 5.0, 5.0]) == [False] * 4 and not speed.slow


def test_slow_after_three_slow_probes_dated_by_the_first_and_normal_after_two() -> None:
    speed = SpeedState()
    feed(speed, [0.2] * 6)
    changes = feed(speed, [2.0, 2.0, 2.0], start=100)
    assert changes == [False, False, True] and speed.slow and speed.slow_since == 100
    assert speed.baseline() == 0.2  # slow probes never enter the baseline
    assert feed(speed, [0.2, 0.2], start=200) == [False, True]
    assert not speed.slow and speed.normal_since == 200 and speed.slow_since is None


def test_both_a_ratio_and_an_absolute_margin_are_needed() -> None:
    fast = SpeedState()
    feed(fast, [0.01] * 6)
    feed(fast, [0.3] * 5, start=100)  # 30 times slower, but only 0.29 s more: noise on a fast site
    assert not fast.slow
    slowish = SpeedState()
    feed(slowish, [2.0] * 6)
    feed(slowish, [3.0] * 5, start=100)  # one second more, but 1.5 times: a busy day
    assert not slowish.slow


def test_an_interrupted_run_starts_over() -> None:
    speed = SpeedState()
    feed(speed, [0.2] * 6)
    feed(speed, [2.0, 2.0, 0.2, 2.0, 2.0], start=100)
    assert not speed.slow


def answer(resolver: str, *addresses: str, rcode: str | None = "NOERROR") -> ResolverAnswer:
    return ResolverAnswer(resolver, rcode, addresses)


ASNS = {"198.51.100.1": 64500, "198.51.100.2": 64500, "203.0.113.9": 64501}


def agree(*answers: ResolverAnswer) -> bool | None:
    return consistent(answers, ASNS.get, lambda address: address.startswith("10."))


def test_answers_agree_on_a_shared_address_or_a_shared_asn() -> None:
    assert agree(answer("a", "198.51.100.1"), answer("b", "198.51.100.1", "203.0.113.9")) is True
    assert agree(answer("a", "198.51.100.1"), answer("b", "198.51.100.2")) is True  # a CDN's pool


def test_answers_disagree_on_other_networks_on_a_bogon_and_on_no_such_name() -> None:
    assert agree(answer("a", "198.51.100.1"), answer("b", "203.0.113.9")) is False
    assert agree(answer("a", "198.51.100.1"), answer("b", "10.10.34.35")) is False
    assert agree(answer("a", "198.51.100.1"), answer("b", rcode="NXDOMAIN")) is False


def test_silent_resolvers_and_unknown_networks_tell_nothing() -> None:
    silent = ResolverAnswer("b", None, failure=Failure.DNS_TIMEOUT)
    assert agree(answer("a", "198.51.100.1"), silent) is None
    assert agree(answer("a", "198.51.100.1"), answer("b", "192.0.2.7")) is None  # its ASN unknown yet


def test_tampered_after_repeated_disagreement_and_clean_after_repeated_agreement() -> None:
    state = TamperState()
    lie = (answer("a", "198.51.100.1"), answer("b", "10.10.34.35"))
    assert [state.observe(t, False, lie, 2) for t in (10, 11)] == [False, True]
    assert state.tampered and state.since == 10 and state.answers == lie
    assert state.observe(12, None, (), 2) is False and state.tampered  # no answer: no news
    assert [state.observe(t, True, (), 2) for t in (20, 21)] == [False, True]
    assert not state.tampered and state.clean_since == 20
