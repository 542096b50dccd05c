"""Trinocular's belief per block: Bayes updates, thresholds, and when a round stops asking."""

from __future__ import annotations

from monitor.probing.belief import BlockState, RoundOutcome, initial_belief, state_of, updated


def _round(
    belief: float, answers: list[bool], availability: float = 0.9, max_probes: int = 15
) -> RoundOutcome:
    outcome = RoundOutcome(belief, availability, max_probes)
    for reply in answers:
        if not outcome.observe(reply):
            break
    return outcome


def test_one_reply_makes_an_unknown_block_up() -> None:
    assert state_of(initial_belief()) is BlockState.UNKNOWN
    outcome = _round(initial_belief(), [True])
    assert outcome.state is BlockState.UP and outcome.probes == 1


def test_a_dense_block_that_stops_answering_is_down_within_one_round() -> None:
    outcome = _round(0.99, [False] * 15)
    assert outcome.state is BlockState.DOWN
    assert outcome.probes == 3  # 0.99 -> 0.91 -> 0.50 -> 0.09


def test_one_lost_reply_is_asked_again_and_the_block_stays_up() -> None:
    outcome = _round(0.99, [False, True, False])
    assert outcome.state is BlockState.UP and outcome.probes == 2


def test_an_agreeing_answer_ends_the_round_after_one_probe() -> None:
    assert _round(0.99, [True]).probes == 1
    assert _round(0.01, [False]).probes == 1


def test_a_sparse_block_stays_unknown_rather_than_down_after_max_probes() -> None:
    outcome = _round(0.99, [False] * 20, availability=0.3)
    assert outcome.state is BlockState.UNKNOWN and outcome.probes == 15


def test_belief_stays_within_its_clamp_and_moves_the_right_way() -> None:
    for belief in (0.01, 0.2, 0.5, 0.8, 0.99):
        for availability in (0.0, 0.1, 0.5, 1.0):
            up, down = updated(belief, availability, True), updated(belief, availability, False)
            assert 0.01 <= down <= belief <= up <= 0.99
