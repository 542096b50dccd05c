"""Trinocular's belief that a /24 block is up (Quan, Heidemann, Pradkin, SIGCOMM 2013).

Each answer updates the belief by Bayes: a reply is likely from an up block in proportion to its
availability A (the share of its responsive addresses that answer), and from a down block only by
chance ((1 - loss) / 256). A round asks until the answer agrees with a decided belief (up above
0.9, down below 0.1), or `max_probes` have been sent: then the block stays as it is, or unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DOWN_BELOW", "UP_ABOVE", "BlockState", "RoundOutcome", "initial_belief", "state_of", "updated"]

UP_ABOVE = 0.9
DOWN_BELOW = 0.1
_FLOOR, _CEILING = 0.01, 0.99
_LOSS = 0.01
_REPLY_WHEN_DOWN = (1 - _LOSS) / 256
MIN_AVAILABILITY, MAX_AVAILABILITY = 0.1, 0.99  # a block answering never or always still teaches nothing


class BlockState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


def initial_belief() -> float:
    return 0.5


def state_of(belief: float) -> BlockState:
    if belief > UP_ABOVE:
        return BlockState.UP
    if belief < DOWN_BELOW:
        return BlockState.DOWN
    return BlockState.UNKNOWN


def updated(belief: float, availability: float, reply: bool) -> float:
    """The belief after one answer (`reply`: a host answered), clamped to [0.01, 0.99]."""
    available = min(max(availability, MIN_AVAILABILITY), MAX_AVAILABILITY)
    if_up = available if reply else 1 - available
    if_down = _REPLY_WHEN_DOWN if reply else 1 - _REPLY_WHEN_DOWN
    posterior = if_up * belief / (if_up * belief + if_down * (1 - belief))
    return min(max(posterior, _FLOOR), _CEILING)


@dataclass(slots=True)
class RoundOutcome:
    """One block's round so far: its belief, probes sent and whether to ask again."""

    belief: float
    availability: float
    max_probes: int
    probes: int = 0
    replies: int = 0

    def observe(self, reply: bool) -> bool:
        """Take one answer; True while the round should ask another address."""
        self.probes += 1
        self.replies += reply
        self.belief = updated(self.belief, self.availability, reply)
        state = state_of(self.belief)
        agrees = (state is BlockState.UP and reply) or (state is BlockState.DOWN and not reply)
        return not agrees and self.probes < self.max_probes

    @property
    def state(self) -> BlockState:
        return state_of(self.belief)
