"""One target in, one ProbeResult out: the PROBES table, one deadline, and the classifiers.

A new kind of probe is a module with one `ProbeFn` and one entry in `PROBES` (as in
blackbox_exporter's `Probers` map); the prober owns what every probe has: the deadline, the
trace, and turning whatever happened into one failure string.
"""

from __future__ import annotations

import asyncio
import logging
import time

from monitor.catalog.catalog import Target
from monitor.catalog.schema import Kind
from monitor.probing.context import ProbeContext, ProbeFn
from monitor.probing.dns import probe_dns
from monitor.probing.failures import ProbeFailure, classify, timeout_failure, unexpected_failure
from monitor.probing.http import HTTPClient, probe_http
from monitor.probing.result import ProbeResult, ProbeTrace
from monitor.probing.tcp import probe_tcp
from monitor.probing.tls import probe_tls

__all__ = ["PROBES", "Prober"]

log = logging.getLogger(__name__)

PROBES: dict[Kind, ProbeFn] = {
    "http": probe_http,
    "dns": probe_dns,
    "tcp": probe_tcp,
    "tls": probe_tls,
}


class Prober:
    def __init__(self) -> None:
        self._http = HTTPClient()

    async def probe(self, target: Target, debug: bool = False) -> ProbeResult:
        trace = ProbeTrace(target.name, debug, target.redact)
        deadline = time.monotonic() + target.timeout
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                await PROBES[target.kind](target, ProbeContext(trace, deadline, self._http))
        except Exception as exc:  # a bug or an exotic error must cost one probe, not the daemon
            return trace.finish(self._failure(target, trace, exc, timeout.expired()))
        return trace.finish()

    @staticmethod
    def _failure(target: Target, trace: ProbeTrace, exc: Exception, expired: bool) -> ProbeFailure:
        phase = trace.phase
        if expired:
            return ProbeFailure(timeout_failure(phase), phase, f"deadline of {target.timeout:g}s reached")
        failure = classify(exc, phase)
        if failure is not None:
            return failure
        log.warning(
            "probe of %s: unexpected %s in %s: %s",
            target.name,
            type(exc).__name__,
            phase.value,
            target.redact(str(exc)),
        )
        return ProbeFailure(unexpected_failure(phase), phase, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self._http.close()
