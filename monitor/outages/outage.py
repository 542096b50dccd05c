"""An outage: what went dark (scope and key), when, and the evidence gathered while it lasted."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Outage", "Scope"]


class Scope(StrEnum):
    SITE = "site"
    NETWORK = "network"
    COUNTRY = "country"
    VANTAGE = "vantage"  # our uplink: the controls abroad are unreachable
    SELF = "self"  # our own process: the event loop stalled, results were held


@dataclass(slots=True)
class Outage:
    scope: Scope
    key: str  # target name, "KZ/AS9198", "KZ", "vantage" or "self"
    started_at: float
    country: str | None = None
    asn: int | None = None
    targets: list[str] = field(default_factory=list)
    ended_at: float | None = None
    failures: int = 0
    evidence: Counter[str] = field(default_factory=Counter)
    absorbed_by: str | None = None  # the id of the wider outage it became part of
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

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
        }
