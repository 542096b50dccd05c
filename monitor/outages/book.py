"""The book of outages: applies each verdict (open, close, absorb), attributes every failure once,
and keeps the journal in step. Everything that writes happens here, after the pure judge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from monitor.outages.journal import Journal
from monitor.outages.outage import SCOPE_VERDICT, Outage, Scope
from monitor.outages.rules import CauseKind, OutageKey, Verdict, Wanted, covers
from monitor.probing.failures import Failure

__all__ = ["OutageBook"]

log = logging.getLogger(__name__)

_BASELINE_SYNC_SECONDS = 60.0
_PER_MEMBER = ("answers", "seconds")  # details per member: DNS answers, throttled probe times
_ALWAYS_JUDGED = (Scope.VANTAGE, Scope.SELF)  # the gate rows are not frozen by blindness
# The order outages open in, widest first, so that a wider one exists when a narrower one would
# be absorbed by it; a country's throttling opens before its networks' (shorter keys first).
_BREADTH = {
    Scope.SELF: 9,
    Scope.VANTAGE: 8,
    Scope.COUNTRY: 7,
    Scope.MOBILE: 6,
    Scope.REGION: 5,
    Scope.NETWORK: 4,
    Scope.SITE: 3,
    Scope.THROTTLING: 2,
    Scope.DNS: 1,
}


class OutageBook:
    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self.vantage = ""  # stamped on each outage it opens
        self.open: dict[OutageKey, Outage] = {}
        self.opened_total: Counter[Scope] = Counter()
        self.cause: dict[str, tuple[OutageKey, CauseKind]] = {}  # from the latest verdict
        self.released: dict[str, tuple[float, OutageKey]] = {}  # target -> (when, the wider outage)
        self._closed_unsynced: list[Outage] = []
        self._dirty = True
        self._baseline_synced_at = 0.0
        self._baselines_written = 0
        self._syncing = False

    def restore(self) -> dict[str, float]:
        """Open outages from the journal after a restart; returns the saved last-up times."""
        if self.journal is None:
            return {}
        outages, baselines = self.journal.load()
        for outage in outages:
            self.open[(outage.scope, outage.key)] = outage
        if outages:
            log.info("resumed %d open outages from the journal", len(outages))
        return baselines

    # -- applying a verdict --------------------------------------------------------------------

    def reconcile(
        self,
        verdict: Verdict,
        now: float,
        streak_failures: Callable[[str], Mapping[Failure, int]],
    ) -> None:
        previous = self.cause
        self.cause = verdict.cause
        self.released.update(verdict.released)
        for key in sorted(verdict.wanted, key=lambda key: (-_BREADTH[key[0]], len(key[1]))):
            if key not in self.open:
                self._open(verdict.wanted[key], previous, streak_failures, now)
            else:
                self._update(self.open[key], verdict.wanted[key], now)
        for key, outage in list(self.open.items()):
            if key in verdict.wanted or (verdict.frozen and outage.scope not in _ALWAYS_JUDGED):
                continue
            wider = self._absorbing(outage, verdict)
            if wider is not None:
                self._close(key, max(outage.started_at, wider.started_at), absorbed_by=wider)
            elif not self._pending(outage, verdict):
                self._close(key, verdict.ended_at.get(key, now))

    def _open(
        self,
        wanted: Wanted,
        previous: Mapping[str, tuple[OutageKey, CauseKind]],
        streak_failures: Callable[[str], Mapping[Failure, int]],
        now: float,
    ) -> None:
        outage = Outage(
            wanted.scope,
            wanted.key,
            wanted.started_at,
            country=wanted.country,
            asn=wanted.asn,
            targets=list(wanted.members),
            vantage=self.vantage,
        )
        self._update(outage, wanted, now)
        for name in wanted.members:
            cause = previous.get(name)
            if cause is not None and cause[1] == CauseKind.OPEN and cause[0] in self.open:
                continue  # its failures so far are evidence of the narrower outage it had
            for failure, count in streak_failures(name).items():
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

    def _update(self, outage: Outage, wanted: Wanted, at: float) -> None:
        """The rule's latest evidence and members; a change of verdict (full to whitelist) is a
        new phase."""
        verdict = wanted.verdict or outage.verdict
        if not verdict and wanted.scope is not Scope.COUNTRY:  # a country's may be undecided yet
            verdict = SCOPE_VERDICT[wanted.scope]
        if verdict != outage.verdict:
            outage.verdict = verdict
            outage.phases.append({"verdict": verdict, "at": at if outage.phases else outage.started_at})
            self._dirty = True
        details = dict(wanted.details)
        for key in _PER_MEMBER:  # keep the evidence of members that are fine again
            if key in details and isinstance(previous := outage.details.get(key), dict):
                details[key] = {**previous, **details[key]}
        if details and details != outage.details:
            outage.details = details
            self._dirty = True
        joined = set(wanted.members) - set(outage.targets)
        if joined:  # members that went dark (slow, tampered) after it opened
            outage.targets = sorted({*outage.targets, *joined})
            self._dirty = True

    def _absorbing(self, outage: Outage, verdict: Verdict) -> Outage | None:
        """The wider open outage that now explains every member of this narrower one that is
        still dark (those back are no longer part of any outage: Almaty's whitelisted sites)."""
        causes = [cause for name in outage.targets if (cause := verdict.cause.get(name)) is not None]
        keys = {cause[0] for cause in causes}
        if not causes or len(keys) != 1 or any(cause[1] != CauseKind.OPEN for cause in causes):
            return None
        (key,) = keys
        return self.open.get(key) if covers(key, (outage.scope, outage.key)) else None

    @staticmethod
    def _pending(outage: Outage, verdict: Verdict) -> bool:
        """Members claimed by a wider group still settling: the narrower outage waits for it."""
        return bool(outage.targets) and all(
            (cause := verdict.cause.get(name)) is not None and cause[1] == CauseKind.PENDING
            for name in outage.targets
        )

    def _close(self, key: OutageKey, at: float, absorbed_by: Outage | None = None) -> None:
        outage = self.open.pop(key)
        outage.ended_at = max(at, outage.started_at)
        outage.absorbed_by = absorbed_by.id if absorbed_by else None
        self._closed_unsynced.append(outage)
        self._dirty = True
        if absorbed_by is not None:
            log.warning(
                "%s outage %s is now part of %s outage %s",
                outage.scope.value,
                outage.key,
                absorbed_by.scope.value,
                absorbed_by.key,
            )
            return
        log.warning(
            "%s outage closed: %s after %.0fs",
            outage.scope.value,
            outage.key,
            outage.ended_at - outage.started_at,
        )

    def close_removed(self, names: set[str], now: float) -> None:
        """Site outages of targets gone from the catalog end now."""
        for key in [key for key in self.open if key[0] is Scope.SITE and key[1] in names]:
            self._close(key, now)

    # -- evidence ------------------------------------------------------------------------------

    def attach_path(self, outage_id: str, path: dict[str, Any]) -> bool:
        """Where the packets of this open outage stop; False when it is no longer open."""
        outage = next((outage for outage in self.open.values() if outage.id == outage_id), None)
        if outage is None:
            return False
        outage.path = path
        self._dirty = True
        return True

    def attribute(self, name: str, failure: Failure) -> None:
        """One failed probe is evidence of one outage: the target's cause, when that is open."""
        cause = self.cause.get(name)
        if cause is None or cause[1] != CauseKind.OPEN:
            return
        outage = self.open.get(cause[0])
        if outage is not None:
            outage.failures += 1
            outage.evidence[failure.value] += 1
            self._dirty = True

    def cause_of(self, name: str) -> dict[str, str | None] | None:
        """Why a target is dark, for /api/status."""
        cause = self.cause.get(name)
        if cause is None:
            return None
        (scope, key), kind = cause
        outage = self.open.get((scope, key))
        return {"scope": scope.value, "key": key, "state": kind, "outage_id": outage.id if outage else None}

    def outages(self) -> list[Outage]:
        return sorted([*self.open.values(), *self._closed_unsynced], key=lambda outage: -outage.started_at)

    # -- journal -------------------------------------------------------------------------------

    async def sync_journal(
        self, now: float, baselines: Callable[[], dict[str, float]], *, final: bool = False
    ) -> None:
        """Outages whenever they changed; targets' last-up times every minute, as soon as a target
        is seen up for the first time (a restart must know it was reachable), and at the end."""
        journal = self.journal
        if journal is None or self._syncing:
            return
        last_up = baselines()
        baselines_due = (
            final
            or not journal.healthy
            or now - self._baseline_synced_at >= _BASELINE_SYNC_SECONDS
            or len(last_up) > self._baselines_written
        )
        if not (self._dirty or baselines_due):
            return
        outages = [*self._closed_unsynced, *self.open.values()]
        closed = len(self._closed_unsynced)
        self._dirty = False
        self._syncing = True
        try:
            written = await asyncio.to_thread(journal.sync, outages, last_up if baselines_due else {})
        finally:
            self._syncing = False
        if written:
            del self._closed_unsynced[:closed]
            if baselines_due:
                self._baseline_synced_at = now
                self._baselines_written = len(last_up)
        else:
            self._dirty = True
