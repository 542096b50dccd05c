"""DNS tampering: do the configured resolvers agree on a name? OONI's dns_consistency rule: two
answers agree when they share an address or an ASN; an answer in reserved space (a bogon) while
another resolver answers normally, or "no such name" while another gives addresses, disagree.
A resolver that did not answer (timeout, SERVFAIL) is no evidence either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.probing.result import ResolverAnswer

__all__ = ["TamperState", "consistent"]

AsnOf = Callable[[str], int | None]
IsBogon = Callable[[str], bool]


def consistent(answers: Sequence[ResolverAnswer], asn_of: AsnOf, is_bogon: IsBogon) -> bool | None:
    """True when every pair of answers agrees, False when one pair disagrees, None when it
    cannot tell yet (fewer than two answers, or disjoint addresses whose ASNs are not known)."""
    answered = [answer for answer in answers if answer.rcode is not None]
    if len(answered) < 2:
        return None
    verdict: bool | None = True
    for index, first in enumerate(answered):
        for second in answered[index + 1 :]:
            pair = _agree(first, second, asn_of, is_bogon)
            if pair is False:
                return False
            if pair is None:
                verdict = None
    return verdict


def _agree(first: ResolverAnswer, second: ResolverAnswer, asn_of: AsnOf, is_bogon: IsBogon) -> bool | None:
    if not first.addresses or not second.addresses:
        return not first.addresses and not second.addresses  # NXDOMAIN or empty against addresses
    first_bogon = all(is_bogon(address) for address in first.addresses)
    second_bogon = all(is_bogon(address) for address in second.addresses)
    if first_bogon != second_bogon:
        return False
    if set(first.addresses) & set(second.addresses):
        return True
    first_asns = {asn_of(address) for address in first.addresses}
    second_asns = {asn_of(address) for address in second.addresses}
    if None in first_asns or None in second_asns:
        return None
    return bool(first_asns & second_asns)


@dataclass(slots=True)
class TamperState:
    """Tampered after `after` inconsistent probes in a row, clean after as many consistent ones."""

    tampered: bool = False
    since: float | None = None  # first disagreeing probe of the run that made it tampered
    clean_since: float | None = None  # first agreeing probe after that
    answers: tuple[ResolverAnswer, ...] = ()  # the latest disagreeing answers, for the evidence
    _run: int = 0
    _run_started_at: float | None = None

    def observe(
        self, at: float, agrees: bool | None, answers: tuple[ResolverAnswer, ...], after: int
    ) -> bool:
        """True when the state changed."""
        if agrees is None:
            return False
        if not agrees:
            self.answers = answers
        if agrees is not self.tampered:  # agreeing while clean, or disagreeing while tampered
            self._run = 0
            return False
        if self._run == 0:
            self._run_started_at = at
        self._run += 1
        if self._run < after:
            return False
        self.tampered, self._run = not agrees, 0
        self.since = self._run_started_at if self.tampered else None
        self.clean_since = None if self.tampered else self._run_started_at
        return True
