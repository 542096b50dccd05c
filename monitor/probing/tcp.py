"""TCP layer: one connect to the first resolved address, timed; errors go to the classifiers."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from monitor.catalog.catalog import ConnectSpec, Target
from monitor.probing.context import ProbeContext
from monitor.probing.dns import addresses_of
from monitor.probing.failures import Phase
from monitor.probing.result import ProbeTrace

__all__ = ["connect", "probe_tcp"]


async def connect(address: str, port: int, trace: ProbeTrace) -> socket.socket:
    """A connected non-blocking socket; the caller owns (and closes) it."""
    trace.enter(Phase.CONNECT)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        trace.note(f"connecting to {address} port {port}")
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    trace.note("connected")
    return sock


async def probe_tcp(target: Target, context: ProbeContext) -> None:
    spec = target.spec_as(ConnectSpec)
    addresses = await addresses_of(spec.host, target, context)
    sock = await connect(addresses[0], spec.port, context.trace)
    with contextlib.suppress(OSError):
        sock.close()
