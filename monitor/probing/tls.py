"""TLS layer: handshake with SNI and verification; certificate expiry and protocol version."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl

from cryptography import x509

from monitor.catalog.catalog import Target, TLSConnectSpec
from monitor.catalog.schema import TLSOptions
from monitor.probing.context import ProbeContext
from monitor.probing.dns import addresses_of
from monitor.probing.failures import Phase
from monitor.probing.result import ProbeTrace
from monitor.probing.tcp import connect

__all__ = ["client_context", "handshake", "probe_tls", "record_peer"]


@functools.cache
def _context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def client_context(options: TLSOptions) -> ssl.SSLContext:
    """One shared context per (CA file, verification) pair: building one costs milliseconds."""
    return _context(options.ca_file, options.insecure_skip_verify)


def record_peer(ssl_object: ssl.SSLObject | None, trace: ProbeTrace) -> None:
    if ssl_object is None:
        return
    trace.tls_version = ssl_object.version()
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        expiry = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
        trace.cert_expiry = expiry if trace.cert_expiry is None else min(trace.cert_expiry, expiry)
    trace.note(f"{trace.tls_version}, certificate valid until {trace.cert_expiry}")


async def handshake(
    sock: socket.socket, server_name: str, context: ssl.SSLContext, trace: ProbeTrace
) -> asyncio.Transport:
    """TLS over an already connected socket; the returned transport owns the socket."""
    trace.enter(Phase.TLS)
    trace.note(f"TLS handshake, SNI {server_name}")
    try:
        transport, _ = await asyncio.get_running_loop().create_connection(
            asyncio.Protocol, sock=sock, ssl=context, server_hostname=server_name, ssl_handshake_timeout=3600
        )
    except BaseException:
        sock.close()
        raise
    record_peer(transport.get_extra_info("ssl_object"), trace)
    return transport


async def probe_tls(target: Target, context: ProbeContext) -> None:
    spec = target.spec_as(TLSConnectSpec)
    addresses = await addresses_of(spec.host, target, context)
    sock = await connect(addresses[0], spec.port, context.trace)
    server_name = spec.tls.server_name or spec.host
    transport = await handshake(sock, server_name, client_context(spec.tls), context.trace)
    with contextlib.suppress(Exception):
        transport.abort()
