"""The failure taxonomy: one closed set of strings, and the one place exceptions map onto it."""

from __future__ import annotations

import asyncio
import errno
import ssl
from enum import StrEnum

__all__ = [
    "Failure",
    "Phase",
    "ProbeFailure",
    "failure_for_os_error",
    "timeout_failure",
    "unexpected_failure",
]


class Phase(StrEnum):
    """Where in a probe time was spent or a failure happened (blackbox_exporter's phases)."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    PROCESSING = "processing"
    TRANSFER = "transfer"


class Failure(StrEnum):
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_SERVFAIL = "dns_servfail"
    DNS_REFUSED = "dns_refused"
    DNS_TIMEOUT = "dns_timeout"
    DNS_BOGON = "dns_bogon"
    DNS_ERROR = "dns_error"
    TCP_REFUSED = "tcp_refused"
    TCP_TIMEOUT = "tcp_timeout"
    TCP_RESET = "tcp_reset"
    TCP_UNREACHABLE = "tcp_unreachable"
    TLS_TIMEOUT = "tls_timeout"
    TLS_RESET = "tls_reset"
    TLS_CERT_INVALID = "tls_cert_invalid"
    TLS_ERROR = "tls_error"
    HTTP_TIMEOUT = "http_timeout"
    HTTP_RESET = "http_reset"
    HTTP_STATUS = "http_status"
    HTTP_BODY_MISMATCH = "http_body_mismatch"
    HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
    HTTP_TOO_LARGE = "http_too_large"
    HTTP_PROTOCOL_ERROR = "http_protocol_error"


_MAX_DETAIL = 300


class ProbeFailure(Exception):
    """Raised inside a probe to end it with one failure string; `detail` is for humans only."""

    def __init__(self, failure: Failure, phase: Phase, detail: str = "") -> None:
        super().__init__(f"{failure}: {detail[:_MAX_DETAIL]}" if detail else str(failure))
        self.failure = failure
        self.phase = phase
        self.detail = detail[:_MAX_DETAIL]  # error text can carry a hostile server's megabyte


_TIMEOUT_BY_PHASE = {
    Phase.RESOLVE: Failure.DNS_TIMEOUT,
    Phase.CONNECT: Failure.TCP_TIMEOUT,
    Phase.TLS: Failure.TLS_TIMEOUT,
    Phase.PROCESSING: Failure.HTTP_TIMEOUT,
    Phase.TRANSFER: Failure.HTTP_TIMEOUT,
}

_RESET_BY_PHASE = {
    Phase.CONNECT: Failure.TCP_RESET,
    Phase.TLS: Failure.TLS_RESET,
    Phase.PROCESSING: Failure.HTTP_RESET,
    Phase.TRANSFER: Failure.HTTP_RESET,
}

_UNREACHABLE_ERRNOS = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EADDRNOTAVAIL,
}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def timeout_failure(phase: Phase) -> Failure:
    return _TIMEOUT_BY_PHASE[phase]


def failure_for_os_error(exc: BaseException, phase: Phase) -> Failure:
    """Map a socket-level or TLS exception raised during `phase` to a failure string."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure.TLS_CERT_INVALID
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return timeout_failure(phase)
    if isinstance(exc, ConnectionRefusedError):
        return Failure.TCP_REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)) or (
        isinstance(exc, OSError) and exc.errno in _RESET_ERRNOS
    ):
        return _RESET_BY_PHASE.get(phase, Failure.TCP_RESET)
    if isinstance(exc, ssl.SSLError):
        return Failure.TLS_ERROR
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return Failure.TCP_UNREACHABLE
    if phase is Phase.TLS:
        # A peer that closes the connection mid-handshake without a RST (EOF) is a TLS failure.
        return Failure.TLS_RESET if isinstance(exc, (EOFError, ConnectionError)) else Failure.TLS_ERROR
    if phase in (Phase.PROCESSING, Phase.TRANSFER):
        return Failure.HTTP_RESET if isinstance(exc, ConnectionError) else Failure.HTTP_PROTOCOL_ERROR
    return Failure.TCP_UNREACHABLE


_UNEXPECTED_BY_PHASE = {
    Phase.RESOLVE: Failure.DNS_ERROR,
    Phase.CONNECT: Failure.TCP_UNREACHABLE,
    Phase.TLS: Failure.TLS_ERROR,
    Phase.PROCESSING: Failure.HTTP_PROTOCOL_ERROR,
    Phase.TRANSFER: Failure.HTTP_PROTOCOL_ERROR,
}


def unexpected_failure(phase: Phase) -> Failure:
    """The failure for an exception no layer anticipated: still one string, never a crash."""
    return _UNEXPECTED_BY_PHASE[phase]
