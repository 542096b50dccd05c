"""Runs the layers for one target under one deadline and turns whatever happens into a ProbeResult."""

from __future__ import annotations

import asyncio
import logging
import time

from monitor.catalog.catalog import Target
from monitor.probing.dns import probe_dns, resolve_host
from monitor.probing.failures import ProbeFailure, timeout_failure, unexpected_failure
from monitor.probing.http import HTTPClient, probe_http
from monitor.probing.result import ProbeResult, ProbeTrace
from monitor.probing.tcp import probe_tcp
from monitor.probing.tls import probe_tls

__all__ = ["Prober"]

log = logging.getLogger(__name__)


class Prober:
    def __init__(self) -> None:
        self._http = HTTPClient()

    async def probe(self, target: Target, debug: bool = False) -> ProbeResult:
        trace = ProbeTrace(target.name, debug, target.redact)
        deadline = time.monotonic() + target.timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._layers(target, deadline, trace)
        except ProbeFailure as failure:
            return trace.finish(failure)
        except TimeoutError:
            return trace.finish(
                ProbeFailure(
                    timeout_failure(trace.phase), trace.phase, f"deadline of {target.timeout:g}s reached"
                )
            )
        except Exception as exc:  # a bug or an exotic error must cost one probe, not the daemon
            log.warning(
                "probe of %s: unexpected %s in %s: %s",
                target.name,
                type(exc).__name__,
                trace.phase.value,
                target.redact(str(exc)),
            )
            return trace.finish(
                ProbeFailure(unexpected_failure(trace.phase), trace.phase, f"{type(exc).__name__}: {exc}")
            )
        return trace.finish()

    async def _layers(self, target: Target, deadline: float, trace: ProbeTrace) -> None:
        if target.kind == "dns":
            await probe_dns(target, deadline, trace)
            return
        trace.addresses = await resolve_host(target.host, target, deadline, trace)
        if target.kind == "tcp":
            await probe_tcp(target, trace.addresses, trace)
        elif target.kind == "tls":
            await probe_tls(target, trace.addresses, trace)
        else:
            await probe_http(self._http, target, trace.addresses, deadline, trace)

    async def close(self) -> None:
        await self._http.close()
