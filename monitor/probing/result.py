"""The one value that flows from a probe to everything downstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.probing.failures import Failure, Phase, ProbeFailure

__all__ = ["ProbeResult", "ProbeTrace", "ResolverAnswer"]


@dataclass(frozen=True, slots=True)
class ResolverAnswer:
    """What one resolver said to a `compare_resolvers` query: its rcode ("NOERROR", "NXDOMAIN")
    and addresses, or the failure string when it gave no usable answer."""

    resolver: str
    rcode: str | None
    addresses: tuple[str, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: str
    started_at: float
    duration_seconds: float
    success: bool
    failure: Failure | None = None
    failed_phase: Phase | None = None
    detail: str = ""
    phases: dict[Phase, float] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()
    http_status: int | None = None
    redirects: int = 0
    body_bytes: int = 0
    cert_expiry: float | None = None
    tls_version: str | None = None
    dns_answer_count: int | None = None
    dns_answers: tuple[ResolverAnswer, ...] = ()  # per resolver, when the target compares them
    log: tuple[str, ...] = ()

    @property
    def dns_lookup_seconds(self) -> float:
        return self.phases.get(Phase.RESOLVE, 0.0)


class ProbeTrace:
    """Mutable scratchpad a probe writes while it runs; frozen into a ProbeResult at the end.

    It knows the phase in progress, so a deadline that fires anywhere is classified by the
    phase it interrupted.
    """

    __slots__ = (
        "_phase_started",
        "addresses",
        "body_bytes",
        "cert_expiry",
        "debug",
        "dns_answer_count",
        "dns_answers",
        "http_status",
        "lines",
        "phase",
        "phases",
        "redact",
        "redirects",
        "started_at",
        "started_mono",
        "target",
        "tls_version",
    )

    def __init__(self, target: str, debug: bool = False, redact: Callable[[str], str] = str) -> None:
        self.target = target
        self.redact = redact
        self.debug = debug
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.phase = Phase.RESOLVE
        self._phase_started = self.started_mono
        self.phases: dict[Phase, float] = {}
        self.addresses: tuple[str, ...] = ()
        self.http_status: int | None = None
        self.redirects = 0
        self.body_bytes = 0
        self.cert_expiry: float | None = None
        self.tls_version: str | None = None
        self.dns_answer_count: int | None = None
        self.dns_answers: tuple[ResolverAnswer, ...] = ()
        self.lines: list[str] = []

    def enter(self, phase: Phase) -> None:
        """Close the running phase (adding its time) and start `phase`."""
        self.close_phase()
        self.phase = phase

    def close_phase(self) -> None:
        now = time.monotonic()
        self.phases[self.phase] = self.phases.get(self.phase, 0.0) + now - self._phase_started
        self._phase_started = now

    def note(self, message: str) -> None:
        if self.debug:
            elapsed = time.monotonic() - self.started_mono
            self.lines.append(f"{elapsed * 1000:8.1f}ms {self.phase.value:<10} {self.redact(message)}")

    def finish(self, error: ProbeFailure | None = None) -> ProbeResult:
        self.close_phase()
        if error is not None:
            self.note(f"failed: {error.failure.value} {error.detail}".rstrip())
        else:
            self.note("succeeded")
        return ProbeResult(
            target=self.target,
            started_at=self.started_at,
            duration_seconds=time.monotonic() - self.started_mono,
            success=error is None,
            failure=error.failure if error else None,
            failed_phase=error.phase if error else None,
            detail=self.redact(error.detail) if error else "",
            phases=self.phases,
            addresses=self.addresses,
            http_status=self.http_status,
            redirects=self.redirects,
            body_bytes=self.body_bytes,
            cert_expiry=self.cert_expiry,
            tls_version=self.tls_version,
            dns_answer_count=self.dns_answer_count,
            dns_answers=self.dns_answers,
            log=tuple(self.lines),
        )
