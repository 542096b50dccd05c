"""TCP layer: one connect to the first resolved address, timed and classified."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from monitor.catalog.catalog import Target
from monitor.probing.failures import Phase, ProbeFailure, failure_for_os_error
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
    except BaseException as exc:
        sock.close()
        if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            raise ProbeFailure(failure_for_os_error(exc, Phase.CONNECT), Phase.CONNECT, str(exc)) from None
        raise
    trace.note("connected")
    return sock


async def probe_tcp(target: Target, addresses: tuple[str, ...], trace: ProbeTrace) -> None:
    sock = await connect(addresses[0], target.port, trace)
    with contextlib.suppress(OSError):
        sock.close()
