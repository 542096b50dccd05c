"""TLS layer: handshake with SNI and verification; certificate expiry and protocol version."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl

from cryptography import x509

from monitor.catalog.catalog import Target, TLSOptions
from monitor.probing.failures import Failure, Phase, ProbeFailure, failure_for_os_error
from monitor.probing.result import ProbeTrace
from monitor.probing.tcp import connect

__all__ = ["classify_tls_error", "client_context", "handshake", "probe_tls", "record_peer"]


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


def classify_tls_error(exc: BaseException) -> ProbeFailure:
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | EOFError):
        return ProbeFailure(Failure.TLS_RESET, Phase.TLS, f"connection closed during handshake: {exc}")
    return ProbeFailure(failure_for_os_error(exc, Phase.TLS), Phase.TLS, str(exc))


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
    except (OSError, EOFError) as exc:
        sock.close()
        raise classify_tls_error(exc) from None
    except BaseException:
        sock.close()
        raise
    record_peer(transport.get_extra_info("ssl_object"), trace)
    return transport


async def probe_tls(target: Target, addresses: tuple[str, ...], trace: ProbeTrace) -> None:
    sock = await connect(addresses[0], target.port, trace)
    server_name = target.tls.server_name or target.host
    transport = await handshake(sock, server_name, client_context(target.tls), trace)
    with contextlib.suppress(Exception):
        transport.abort()
