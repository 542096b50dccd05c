"""An outage: what went dark (scope and key), when, and the evidence gathered while it lasted."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["SCOPE_VERDICT", "Outage", "Scope"]


class Scope(StrEnum):
    SITE = "site"
    NETWORK = "network"
    MOBILE = "mobile"  # every mobile network of a country, its fixed networks up
    REGION = "region"  # one ISO 3166-2 region of a country, the rest of it up
    COUNTRY = "country"
    THROTTLING = "throttling"  # up but slow: a country, else one network
    DNS = "dns"  # the resolvers disagree on a country's names
    VANTAGE = "vantage"  # our uplink: the controls abroad are unreachable
    SELF = "self"  # our own process: the event loop stalled, results were held


# The one verdict of each scope; a country outage is `full` or `whitelist` (some survive).
SCOPE_VERDICT = {
    Scope.SITE: "site",
    Scope.NETWORK: "network",
    Scope.MOBILE: "mobile_only",
    Scope.REGION: "regional",
    Scope.COUNTRY: "full",
    Scope.THROTTLING: "throttled",
    Scope.DNS: "dns_tampering",
    Scope.VANTAGE: "vantage",
    Scope.SELF: "self",
}


@dataclass(slots=True)
class Outage:
    scope: Scope
    key: str  # target name, "KZ/AS9198", "KZ/mobile", "KZ/KZ-75", "KZ", "vantage" or "self"
    started_at: float
    country: str | None = None
    asn: int | None = None
    targets: list[str] = field(default_factory=list)
    ended_at: float | None = None
    failures: int = 0
    evidence: Counter[str] = field(default_factory=Counter)
    absorbed_by: str | None = None  # the id of the wider outage it became part of
    verdict: str = ""  # SCOPE_VERDICT, or "whitelist" for a country while some targets survive
    details: dict[str, Any] = field(default_factory=dict)  # the rule's evidence: survivors, regions...
    phases: list[dict[str, Any]] = field(default_factory=list)  # each change of verdict: {verdict, at}
    vantage: str = ""  # where the monitor that saw it runs ("" when unnamed)
    path: dict[str, Any] = field(default_factory=dict)  # where its packets stop (outages/paths.py)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def effective_verdict(self) -> str:
        return self.verdict or SCOPE_VERDICT[self.scope]

    def context(self, others: Iterable[Outage]) -> list[Outage]:
        """The outages it absorbed and the others of its country that overlapped it, oldest first:
        what went dark before, with and after it."""
        end = self.ended_at if self.ended_at is not None else float("inf")
        return sorted(
            (
                other
                for other in others
                if other.id != self.id
                and (
                    other.absorbed_by == self.id
                    or (
                        other.country == self.country
                        and other.started_at <= end
                        and (other.ended_at is None or other.ended_at >= self.started_at)
                    )
                )
            ),
            key=lambda other: other.started_at,
        )

    @classmethod
    def from_dict(cls, data: Any) -> Outage:
        """An outage as `as_dict` gives it (the JSON of /api/outages); ValueError says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("an outage must be a JSON object")
        try:
            scope = Scope(data["scope"])
            started_at, ended_at = float(data["started_at"]), data.get("ended_at")
            targets = data.get("targets") or []
            return cls(
                scope,
                str(data["key"]),
                started_at,
                country=data.get("country"),
                asn=data.get("asn"),
                targets=[str(name) for name in targets] if isinstance(targets, list) else [],
                ended_at=None if ended_at is None else float(ended_at),
                failures=int(data.get("failures", 0)),
                evidence=Counter({str(k): int(v) for k, v in dict(data.get("evidence", {})).items()}),
                absorbed_by=data.get("absorbed_by"),
                verdict=str(data.get("verdict", "")),
                details=dict(data.get("details", {})),
                phases=list(data.get("phases", [])),
                vantage=str(data.get("vantage", "")),
                path=dict(data.get("path") or {}),
                id=str(data["id"]),
            )
        except KeyError as exc:
            raise ValueError(f"an outage needs {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"outage {data.get('id', '?')}: {exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope.value,
            "key": self.key,
            "country": self.country,
            "asn": self.asn,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_seconds": None if self.ended_at is None else round(self.ended_at - self.started_at, 3),
            "failures": self.failures,
            "evidence": dict(self.evidence.most_common()),
            "targets": self.targets,
            "absorbed_by": self.absorbed_by,
            "verdict": self.effective_verdict,
            "details": self.details,
            "phases": self.phases,
            "vantage": self.vantage,
            "path": self.path or None,
        }
